"""VanillaCNN: shapes, parameter counts, initial statistics, checkpointing, and learning on real MNIST."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dltheory.nn.init import conv_operator_singular_values
from dltheory.nn.models import DEFAULT_SIGMA_B2, VanillaCNN, critical_point
from dltheory.signalprop import critical_sigma_w2
from support import MNIST_FILES, has_dataset


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("in_channels", "size", "feature_size"), [(1, 28, 7), (3, 32, 8)])
def test_shapes_follow_the_paper_architecture(in_channels, size, feature_size):
    model = VanillaCNN(4, 6, in_channels=in_channels, num_classes=10, generator=_gen())
    x = torch.randn(5, in_channels, size, size)
    assert model.features(x).shape == (5, 6, feature_size, feature_size)
    assert model(x).shape == (5, 10)


@pytest.mark.parametrize(("depth", "c", "cin", "k"), [(0, 4, 1, 10), (7, 5, 3, 4), (30, 8, 1, 10)])
def test_parameter_count(depth, c, cin, k):
    model = VanillaCNN(depth, c, in_channels=cin, num_classes=k, generator=_gen())
    conv = 9 * c * c + c
    expected = (9 * cin * c + c) + 2 * conv + depth * conv + (c * k + k)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model.stack_weight.shape == (depth, c, c, 3, 3)


def test_missing_sigma_w2_is_the_critical_value():
    model = VanillaCNN(2, 4, sigma_b2=0.05, generator=_gen())
    assert model.sigma_w2 == pytest.approx(float(critical_sigma_w2("tanh", 0.05)), rel=1e-12)
    assert model.sigma_w2 == pytest.approx(1.7610, abs=1e-4)  # anchor in docs/xiao/theory.md
    default = VanillaCNN(2, 4, generator=_gen())
    assert default.sigma_b2 == DEFAULT_SIGMA_B2
    assert default.sigma_w2 == pytest.approx(float(critical_sigma_w2("tanh", DEFAULT_SIGMA_B2)), rel=1e-12)
    assert critical_point("relu") == (pytest.approx(2.0), 0.0)
    assert critical_point("linear") == (1.0, 0.0)


def test_delta_orthogonal_stack_is_gain_times_orthogonal_at_the_centre_tap():
    model = VanillaCNN(50, 6, sigma_b2=0.05, generator=_gen())
    w = model.stack_weight.detach().double()
    off_centre = w.clone()
    off_centre[:, :, :, 1, 1] = 0
    assert torch.count_nonzero(off_centre) == 0
    centre = w[:, :, :, 1, 1]
    gram = centre.transpose(1, 2) @ centre
    eye = torch.eye(6, dtype=torch.float64).expand(50, 6, 6)
    torch.testing.assert_close(gram, model.sigma_w2 * eye, atol=1e-5, rtol=0)
    # distinct layers get distinct (independent) orthogonal matrices
    assert not torch.allclose(centre[0], centre[1])


def test_block_orthogonal_stack_is_an_isometry_times_gain_of_the_circular_operator():
    model = VanillaCNN(3, 8, init="orthogonal", sigma_b2=0.05, generator=_gen())
    for layer in range(3):
        kernel = model.stack_weight[layer].detach()
        values = conv_operator_singular_values(kernel, (7, 7))
        np.testing.assert_allclose(values.numpy(), math.sqrt(model.sigma_w2), rtol=1e-5)
        # spread over the taps, not a delta: a good part of the energy sits off the centre tap
        off_centre = kernel.square().sum() - kernel[:, :, 1, 1].square().sum()
        assert off_centre > 0.1 * kernel.square().sum()


def test_gaussian_stack_and_bias_variances():
    c, depth = 16, 400
    model = VanillaCNN(depth, c, init="gaussian", sigma_w2=1.5, sigma_b2=0.04, generator=_gen())
    w = model.stack_weight.detach().double()
    n = w.numel()  # 921,600 entries: relative standard error of the variance sqrt(2/n) ~ 0.15%
    assert w.mean().abs() < 5 * math.sqrt(1.5 / (9 * c) / n)
    assert w.var().item() == pytest.approx(1.5 / (9 * c), rel=0.01)
    b = model.stack_bias.detach().double()  # 6,400 entries: standard error ~1.8%
    assert b.var().item() == pytest.approx(0.04, rel=0.08)


def test_checkpoint_policy():
    model = VanillaCNN(100, 4, checkpoint="auto", activation_memory=10**6, generator=_gen())
    assert model.segment_length(10**4) == 1  # 100 x 10 kB fits in 1 MB
    assert model.segment_length(10**5) == 10  # it does not: sqrt(100) layers per segment
    assert VanillaCNN(100, 4, checkpoint="none", generator=_gen()).segment_length(10**9) == 1
    assert VanillaCNN(100, 4, checkpoint="sqrt", generator=_gen()).segment_length(1) == 10
    assert VanillaCNN(100, 4, checkpoint=7, generator=_gen()).segment_length(1) == 7


def _model_grads(model: VanillaCNN, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("impl", ["fused", "autograd"])
def test_checkpointed_and_plain_model_gradients_are_identical(impl):
    kw = dict(depth=20, channels=4, sigma_b2=0.05, impl=impl)
    plain = VanillaCNN(**kw, checkpoint="none", generator=_gen(1)).double()
    ckpt = VanillaCNN(**kw, checkpoint="sqrt", generator=_gen(1)).double()
    x, y = torch.randn(6, 1, 28, 28, dtype=torch.float64), torch.arange(6) % 10
    for a, b in zip(_model_grads(plain, x, y), _model_grads(ckpt, x, y), strict=True):
        assert torch.equal(a, b)


def test_fused_and_autograd_models_agree():
    kw = dict(depth=15, channels=4, sigma_b2=0.05, checkpoint=4)
    fused = VanillaCNN(**kw, impl="fused", generator=_gen(2)).double()
    ref = VanillaCNN(**kw, impl="autograd", generator=_gen(2)).double()
    x, y = torch.randn(4, 1, 28, 28, dtype=torch.float64), torch.arange(4)
    torch.testing.assert_close(fused(x), ref(x), rtol=1e-12, atol=1e-12)
    for a, b in zip(_model_grads(fused, x, y), _model_grads(ref, x, y), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="init"):
        VanillaCNN(2, 4, init="xavier")
    with pytest.raises(ValueError, match="checkpoint"):
        VanillaCNN(2, 4, checkpoint="always")
    with pytest.raises(ValueError, match="depth"):
        VanillaCNN(-1, 4)
    with pytest.raises(ValueError, match="sigma_b2"):
        VanillaCNN(2, 4, activation="relu", sigma_b2=0.1)
    with pytest.raises(ValueError, match="sigma_w2"):
        VanillaCNN(2, 4, sigma_w2=-1.0)


@pytest.mark.skipif(not has_dataset("mnist", MNIST_FILES), reason="MNIST not available offline")
def test_a_deep_delta_orthogonal_network_learns_real_mnist():
    from dltheory.data import load

    x, y = load("mnist", "train")
    x = (torch.from_numpy(x[:256]).float().unsqueeze(1) / 255 - 0.1307) / 0.3081
    y = torch.from_numpy(y[:256])
    model = VanillaCNN(24, 8, sigma_b2=0.05, stem_init="gaussian", generator=_gen(0))
    groups = model.parameter_groups()
    optimizer = torch.optim.Adam(
        [{"params": groups["stem"] + groups["head"]}, {"params": groups["stack"], "lr": 1e-2 / 24}], lr=1e-2
    )
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 20))
    with torch.no_grad():
        start = F.cross_entropy(model(x), y).item()
    order = np.random.default_rng(0)
    for _ in range(120):
        idx = torch.from_numpy(order.integers(0, 256, 32))
        optimizer.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        optimizer.step()
        warmup.step()
    with torch.no_grad():
        logits = model(x)
        end = F.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(1) == y).float().mean().item()
    assert start == pytest.approx(math.log(10), abs=0.2)  # chance at initialisation
    assert end < 0.7 * start  # measured: 2.49 -> 1.57
    assert accuracy > 0.3  # chance: 0.1; measured 0.43
