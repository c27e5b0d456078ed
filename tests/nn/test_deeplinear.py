"""DeepLinear, overparameterize and collapse: same function at the swap, balanced factors, drop-in use."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from torch import nn

from dltheory.deeplinear import imbalance
from dltheory.nn import DeepLinear, collapse, overparameterize


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 5), nn.Tanh(), nn.Sequential(nn.Linear(5, 3, bias=False)), nn.Linear(3, 2)
    )


def test_deep_linear_weight_is_product_and_forward_matches():
    layer = DeepLinear([4, 3, 5, 2], bias=True, dtype=torch.float64)
    w1, w2, w3 = layer.factors
    np.testing.assert_allclose(layer.weight.detach(), (w3 @ w2 @ w1).detach())
    x = torch.randn(7, 4, dtype=torch.float64)
    np.testing.assert_allclose(layer(x).detach(), (x @ layer.weight.T + layer.bias).detach(), atol=1e-12)
    assert (layer.in_features, layer.out_features, layer.depth) == (4, 2, 3)


def test_default_init_is_balanced_and_statistically_like_nn_linear():
    torch.manual_seed(1)
    layer = DeepLinear([200, 200, 200, 100], dtype=torch.float64)
    assert max(layer.imbalance(relative=True)) < 1e-10
    entries = layer.weight.detach().ravel()
    bound = 1 / np.sqrt(200)
    assert float(entries.abs().max()) <= bound + 1e-12
    np.testing.assert_allclose(float(entries.var()), bound**2 / 3, rtol=0.05)  # U(-b, b) variance


def test_balanced_init_from_target_and_from_scale():
    layer = DeepLinear([5, 7, 7, 3], dtype=torch.float64)
    target = torch.randn(3, 5, dtype=torch.float64)
    layer.balanced_init_(target, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(layer.weight.detach(), target, atol=1e-12)
    assert np.all(imbalance([f.detach().numpy() for f in layer.factors]) < 1e-12)
    built = DeepLinear([5, 4, 3], bias=True, dtype=torch.float64, target=target)
    np.testing.assert_allclose(built.weight.detach(), target, atol=1e-12)
    assert float(built.bias.detach().abs().max()) == 0.0
    layer.balanced_init_(scale=0.25, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(float(layer.weight.detach().norm()), 0.25, rtol=1e-12)
    bottleneck = DeepLinear([5, 1, 3], dtype=torch.float64).balanced_init_(scale=2.0)
    np.testing.assert_allclose(float(bottleneck.weight.detach().norm()), 2.0, rtol=1e-12)
    assert int(torch.linalg.matrix_rank(bottleneck.weight.detach())) == 1


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_overparameterize_keeps_the_function_and_the_interface(depth):
    model = small_model().double()
    reference = copy.deepcopy(model)
    deep = overparameterize(model, depth, generator=torch.Generator().manual_seed(3))
    layers = [m for m in deep.modules() if isinstance(m, DeepLinear)]
    assert len(layers) == 3 and not any(isinstance(m, nn.Linear) for m in deep.modules())
    assert all(layer.depth == depth for layer in layers)
    assert [layer.widths[1:-1] for layer in layers] == [
        (5,) * (depth - 1),
        (3,) * (depth - 1),
        (2,) * (depth - 1),
    ]
    x = torch.randn(11, 6, dtype=torch.float64)
    np.testing.assert_allclose(deep(x).detach(), reference(x).detach(), atol=1e-12)
    assert layers[1].bias is None and layers[0].bias is not None
    np.testing.assert_allclose(collapse(deep)(x).detach(), reference(x).detach(), atol=1e-12)


def test_overparameterized_parameter_count_and_wider_hidden_layers():
    deep = overparameterize(nn.Linear(10, 4), 2, width=8)
    assert isinstance(deep, DeepLinear) and deep.widths == (10, 8, 4)
    assert sum(p.numel() for p in deep.parameters()) == 10 * 8 + 8 * 4 + 4


def test_state_dict_round_trip_and_any_optimizer():
    model = overparameterize(small_model(), 3, generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    twin = overparameterize(small_model(), 3, generator=torch.Generator().manual_seed(9))
    buffer.seek(0)
    twin.load_state_dict(torch.load(buffer, weights_only=True))
    x = torch.randn(4, 6)
    torch.testing.assert_close(twin(x), model(x))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    model(x).square().sum().backward()
    optimizer.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


def test_drop_in_for_modules_that_read_weight_directly():
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(2, 5, 8)
    expected, _ = attention(x, x, x)
    overparameterize(attention, 2)  # out_proj (an nn.Linear subclass read through .weight / .bias)
    assert isinstance(attention.out_proj, DeepLinear)
    got, _ = attention(x, x, x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        overparameterize(nn.Linear(2, 2), 0)
    with pytest.raises(ValueError, match="widths must list at least"):
        DeepLinear([3])
    with pytest.raises(ValueError, match=r"hidden_widths must be >= rank\(target\)"):
        overparameterize(nn.Linear(4, 4), 2, width=2)
    with pytest.raises(ValueError, match="exactly one of target"):
        DeepLinear([2, 2]).balanced_init_()
    with pytest.raises(ValueError, match="target must have shape"):
        DeepLinear([2, 3]).balanced_init_(torch.zeros(2, 3))
