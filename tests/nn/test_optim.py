"""EndToEndOptimizer against gradient descent on an explicitly overparameterized model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from dltheory.deeplinear import end_to_end_direction
from dltheory.nn import DeepLinear, EndToEndOptimizer, overparameterize, preconditioned_gradient


@pytest.mark.parametrize("shape", [(3, 7), (7, 3), (5, 5), (1, 9)])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_torch_preconditioned_gradient_equals_numpy_theory(shape, depth):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(shape, generator=gen, dtype=torch.float64)
    g = torch.randn(shape, generator=gen, dtype=torch.float64)
    np.testing.assert_allclose(
        preconditioned_gradient(w, g, depth).numpy(),
        end_to_end_direction(w.numpy(), g.numpy(), depth),
        atol=1e-11,
    )


def data():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(40, 6, generator=gen, dtype=torch.float64)
    y = torch.sin(x[:, :2] @ torch.randn(2, 2, generator=gen, dtype=torch.float64))
    return x, y


def model():
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2)).double()


def trajectories(depth: int, lr: float, total_time: float, weight_decay: float = 0.0):
    x, y = data()
    plain = model()
    deep = overparameterize(copy.deepcopy(plain), depth, generator=torch.Generator().manual_seed(3))
    opt_plain = EndToEndOptimizer(plain.parameters(), lr=lr, depth=depth, weight_decay=weight_decay)
    opt_deep = torch.optim.SGD(deep.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(int(round(total_time / lr))):
        for net, opt in ((plain, opt_plain), (deep, opt_deep)):
            opt.zero_grad()
            nn.functional.mse_loss(net(x), y).backward()
            opt.step()
    return plain, deep


@torch.no_grad()
def deviation(plain: nn.Module, deep: nn.Module) -> float:
    linears = [m for m in plain.modules() if isinstance(m, nn.Linear)]
    deeps = [m for m in deep.modules() if isinstance(m, DeepLinear)]
    num = sum(
        float((a.weight - b.weight).norm() ** 2 + (a.bias - b.bias).norm() ** 2)
        for a, b in zip(linears, deeps, strict=True)
    )
    den = sum(float(a.weight.norm() ** 2 + a.bias.norm() ** 2) for a in linears)
    return (num / den) ** 0.5


@pytest.mark.parametrize(("depth", "weight_decay"), [(2, 0.0), (3, 0.0), (3, 0.05)])
def test_optimizer_and_explicit_overparameterization_share_the_trajectory(depth, weight_decay):
    errors = []
    for lr in (0.2, 0.1, 0.05):
        plain, deep = trajectories(depth, lr, total_time=4.0, weight_decay=weight_decay)
        errors.append(deviation(plain, deep))
    start = model()
    moved = sum(
        float((a.weight - b.weight).detach().norm())
        for a, b in zip(plain, start, strict=True)
        if isinstance(a, nn.Linear)
    )
    assert moved > 0.2  # training went somewhere
    assert errors[-1] < 0.01
    for coarse, fine in zip(errors[:-1], errors[1:], strict=True):
        assert 0.35 < fine / coarse < 0.65, errors  # first order in lr


def test_depth_one_is_plain_gradient_descent():
    x, y = data()
    a, b = model(), model()
    opt_a, opt_b = (
        EndToEndOptimizer(a.parameters(), lr=0.1, depth=1, weight_decay=0.01),
        torch.optim.SGD(b.parameters(), lr=0.1, weight_decay=0.01),
    )
    for _ in range(5):
        for net, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            nn.functional.mse_loss(net(x), y).backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_bad_input_and_divergence_are_reported():
    layer = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        EndToEndOptimizer(layer.parameters(), lr=0.1, depth=0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        EndToEndOptimizer(layer.parameters(), lr=-1.0, depth=2)
    opt = EndToEndOptimizer(layer.parameters(), lr=0.1, depth=2)
    layer.weight.grad = torch.full_like(layer.weight, float("nan"))
    with pytest.raises(ValueError, match="not finite.*diverged"):
        opt.step()
