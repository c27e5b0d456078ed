"""Top Hessian eigenvalue by power iteration on Hessian-vector products, against the exact Hessian."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dltheory.nn.curvature import stable_learning_rate, top_hessian_eigenvalue


def _exact_hessian_eigenvalues(model: nn.Module, loss_fn, x, y) -> np.ndarray:
    """Eigenvalues of the full Hessian, formed with torch.autograd.functional.hessian (float64)."""
    params = list(model.parameters())
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    flat = torch.cat([p.detach().reshape(-1) for p in params]).double()

    def loss_of(theta: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(theta, sizes)
        names = [n for n, _ in model.named_parameters()]
        named = {n: c.reshape(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        out = torch.func.functional_call(model.double(), named, (x.double(),))
        return loss_fn(out, y)

    hessian = torch.autograd.functional.hessian(loss_of, flat)
    model.float()
    return np.linalg.eigvalsh(hessian.numpy())


def test_least_squares_hessian_is_the_scaled_gram_matrix():
    """For L(w) = |X w - y|^2 / n the Hessian is 2 X^T X / n, independent of w."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 6, generator=g) * torch.linspace(0.5, 3.0, 6)
    model = nn.Linear(6, 1, bias=False)
    y = torch.randn(40, 1, generator=g)
    estimate = top_hessian_eigenvalue(model, nn.functional.mse_loss, x, y, rtol=1e-7)
    exact = np.linalg.eigvalsh(2 * x.double().T @ x.double() / 40).max()
    assert estimate.converged
    assert estimate.lambda_max == pytest.approx(exact, rel=1e-4)


def test_small_network_matches_the_exact_hessian():
    """A tanh MLP with cross-entropy: top eigenvalue within 1e-3 of the exact Hessian's."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))
    estimate = top_hessian_eigenvalue(model, nn.functional.cross_entropy, x, y, iterations=500, rtol=1e-8)
    exact = _exact_hessian_eigenvalues(model, nn.functional.cross_entropy, x, y)
    assert estimate.lambda_max == pytest.approx(exact.max(), rel=1e-3)


def test_a_dominant_negative_eigenvalue_is_shifted_away():
    """L(a, b) = -3 a^2 + b^2 (as a model's output): power iteration alone would return -6; the shifted
    iteration returns the top algebraic eigenvalue, 2."""
    model = nn.Linear(2, 1, bias=False)

    def loss(out: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        w = model.weight[0]
        return -3 * w[0] ** 2 + w[1] ** 2 + 0 * out.sum()

    x, y = torch.ones(1, 2), torch.zeros(1)
    estimate = top_hessian_eigenvalue(model, loss, x, y, iterations=200, rtol=1e-9)
    assert estimate.lambda_max == pytest.approx(2.0, rel=1e-6)


def test_gradient_descent_is_stable_below_the_limit_and_diverges_above():
    """On a quadratic, heavy-ball at 0.95 of stable_learning_rate converges, at 1.05 diverges."""
    lam = 8.0
    for momentum in (0.0, 0.9):
        limit = stable_learning_rate(lam, momentum)
        for factor, converges in ((0.95, True), (1.05, False)):
            x, v = 1.0, 0.0
            for _ in range(3000):
                v = momentum * v + lam * x
                x -= factor * limit * v
            assert (abs(x) < 1e-3) == converges, (momentum, factor, x)


def test_bad_input_is_named():
    model = nn.Linear(2, 1)
    x, y = torch.ones(1, 2), torch.zeros(1, 1)
    with pytest.raises(ValueError, match="iterations"):
        top_hessian_eigenvalue(model, nn.functional.mse_loss, x, y, iterations=0)
    with pytest.raises(ValueError, match="rtol"):
        top_hessian_eigenvalue(model, nn.functional.mse_loss, x, y, rtol=-1.0)
    frozen = nn.Linear(2, 1).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        top_hessian_eigenvalue(frozen, nn.functional.mse_loss, x, y)
    with pytest.raises(ValueError, match="momentum"):
        stable_learning_rate(1.0, momentum=1.0)
    with pytest.raises(ValueError, match="lambda_max"):
        stable_learning_rate(-1.0)
