"""Orthogonal initializers: exact operator isometry, norm preservation in real modules, Haar statistics,
batched stacks, the critical initialisation, and errors for what cannot be orthogonal."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dltheory.nn.init import (
    conv_operator_blocks,
    conv_operator_singular_values,
    critical_init_,
    delta_orthogonal_,
    delta_orthogonal_stack_,
    haar_orthogonal,
    orthogonal_conv_,
)

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


@st.composite
def conv_shapes(draw: st.DrawFn, odd: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(weight shape (out, in, *kernel) with in <= out, spatial grid)."""
    dims = draw(st.integers(1, 3))
    c_out = draw(st.integers(1, 7))
    c_in = draw(st.integers(1, c_out))
    sides = st.sampled_from([1, 3, 5]) if odd else st.integers(1, 4)
    kernel = tuple(draw(sides) for _ in range(dims))
    max_grid = {1: 9, 2: 6, 3: 4}[dims]
    grid = tuple(draw(st.integers(1, max_grid)) for _ in range(dims))
    return (c_out, c_in, *kernel), grid


# ------------------------------------------------------------------------------------ operator isometry


@settings(max_examples=40, deadline=None)
@given(conv_shapes(odd=False), st.floats(0.1, 3.0), st.integers(0, 2**31 - 1))
def test_orthogonal_conv_operator_singular_values_equal_gain(shape_grid, gain, seed):
    shape, grid = shape_grid
    weight = torch.empty(shape)
    out = orthogonal_conv_(weight, gain=gain, generator=torch.Generator().manual_seed(seed))
    assert out is weight
    values = conv_operator_singular_values(weight, grid)
    assert values.numel() == math.prod(grid) * shape[1]
    np.testing.assert_allclose(values.numpy(), gain, rtol=1e-5, atol=0)


@settings(max_examples=40, deadline=None)
@given(conv_shapes(odd=True), st.floats(0.1, 3.0), st.integers(0, 2**31 - 1))
def test_delta_orthogonal_operator_singular_values_equal_gain(shape_grid, gain, seed):
    shape, grid = shape_grid
    weight = torch.empty(shape)
    delta_orthogonal_(weight, gain=gain, generator=torch.Generator().manual_seed(seed))
    np.testing.assert_allclose(conv_operator_singular_values(weight, grid).numpy(), gain, rtol=1e-5, atol=0)
    centre = tuple((k - 1) // 2 for k in shape[2:])
    mask = torch.ones(shape[2:], dtype=torch.bool)
    mask[centre] = False
    assert torch.all(weight[..., mask] == 0), "every tap but the centre must vanish"


@settings(max_examples=25, deadline=None)
@given(conv_shapes(odd=True), st.integers(0, 2**31 - 1))
def test_circular_module_preserves_norms(shape_grid, seed):
    """A real nn.ConvNd with circular padding and an orthogonal kernel maps |x| to gain |x|."""
    (c_out, c_in, *kernel), grid = shape_grid
    grid = tuple(
        max(n, k // 2) for n, k in zip(grid, kernel, strict=True)
    )  # torch wraps padding at most once
    gen = torch.Generator().manual_seed(seed)
    conv = CONV[len(kernel)](c_in, c_out, tuple(kernel), padding="same", padding_mode="circular", bias=False)
    for init in (orthogonal_conv_, delta_orthogonal_):
        init(conv.weight, gain=1.7, generator=gen)
        x = torch.randn(3, c_in, *grid, generator=gen)
        with torch.no_grad():
            y = conv(x)
        ratio = torch.linalg.vector_norm(y.flatten(1), dim=1) / torch.linalg.vector_norm(x.flatten(1), dim=1)
        np.testing.assert_allclose(ratio.numpy(), 1.7, rtol=2e-5)


@pytest.mark.parametrize(("c_in", "c_out"), [(3, 5), (4, 4)])
def test_real_modules_in_less_or_equal_out(c_in, c_out):
    gen = torch.Generator().manual_seed(0)
    linear = nn.Linear(c_in, c_out)
    delta_orthogonal_(linear.weight, gain=2.0, generator=gen)
    np.testing.assert_allclose(
        (linear.weight.T @ linear.weight).detach().numpy(), 4.0 * np.eye(c_in), atol=1e-5
    )
    assert linear.weight.requires_grad and linear.weight.grad is None
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="circular")
    orthogonal_conv_(conv.weight, gain=2.0, generator=gen)
    np.testing.assert_allclose(conv_operator_singular_values(conv.weight, (5, 5)).numpy(), 2.0, rtol=1e-5)
    # zero padding: the delta kernel is still an exact isometry (only the centre tap is non-zero)
    zero_pad = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    delta_orthogonal_(zero_pad.weight, gain=1.0, generator=gen)
    x = torch.randn(2, c_in, 6, 6, generator=gen)
    with torch.no_grad():
        np.testing.assert_allclose(zero_pad(x).norm().item(), x.norm().item(), rtol=1e-5)


def test_orthogonal_conv_spreads_over_taps():
    """Unlike the delta kernel, the block-orthogonal kernel uses every tap (spatial mixing)."""
    weight = orthogonal_conv_(torch.empty(16, 16, 3, 3), generator=torch.Generator().manual_seed(1))
    tap_norms = weight.pow(2).sum(dim=(0, 1))
    assert torch.all(tap_norms > 1e-3)
    assert tap_norms.sum().item() == pytest.approx(16.0, rel=1e-5)  # ||W||_F^2 = c_in * gain^2


# ------------------------------------------------------------------------------------ FFT operator == module


@pytest.mark.parametrize(
    ("dims", "kernel", "grid", "padding"),
    [
        (1, (3,), (7,), (1,)),
        (2, (3, 5), (4, 6), (1, 2)),
        (2, (2, 3), (5, 4), "same"),
        (3, (3, 1, 3), (3, 2, 4), (1, 0, 1)),
    ],
)
def test_fourier_blocks_reproduce_torch_circular_convolution(dims, kernel, grid, padding):
    """fftn(conv(x))[m] = K[m] fftn(x)[m] for nn.ConvNd(padding_mode="circular"), a cross-correlation."""
    gen = torch.Generator().manual_seed(3)
    conv = CONV[dims](3, 4, kernel, padding=padding, padding_mode="circular", bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen, dtype=torch.float64))
    x = torch.randn(2, 3, *grid, generator=gen, dtype=torch.float64)
    pads = tuple((k - 1) // 2 for k in kernel) if padding == "same" else padding
    blocks = conv_operator_blocks(conv.weight, grid, padding=pads)
    spatial = tuple(range(2, 2 + dims))
    x_hat = torch.fft.fftn(x, dim=spatial).movedim(1, -1).unsqueeze(-1)  # (batch, *m, in, 1)
    y_hat = (blocks @ x_hat).squeeze(-1).movedim(-1, 1)
    with torch.no_grad():
        expected = conv(x)
    np.testing.assert_allclose(torch.fft.ifftn(y_hat, dim=spatial).real.numpy(), expected.numpy(), atol=1e-12)


def test_singular_values_match_dense_operator_of_module():
    """The FFT singular values equal those of the dense matrix of nn.Conv2d on a tiny grid."""
    gen = torch.Generator().manual_seed(4)
    conv = nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular", bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen, dtype=torch.float64))
        basis = torch.eye(2 * 4 * 5, dtype=torch.float64).reshape(-1, 2, 4, 5)
        dense = conv(basis).reshape(basis.shape[0], -1).T  # (out * n, in * n)
    expected = torch.linalg.svdvals(dense)
    np.testing.assert_allclose(
        conv_operator_singular_values(conv.weight, (4, 5)).numpy(), expected.numpy(), atol=1e-12
    )


# ------------------------------------------------------------------------------------ Haar statistics


def test_haar_eigenvalue_phase_statistics():
    """Eigenvalue phases of Haar O(n): E[sum_k cos(j theta_k)] = E[tr Q^j] = 1 for even j, 0 for odd j
    (Diaconis & Shahshahani 1994, j <= n / 2), and Var(tr Q) = 1. Without the sign fix of diag(R)
    the QR factor is not Haar and E[tr Q] is far from 0 (checked as a control)."""
    n, samples = 8, 4000
    gen = torch.Generator().manual_seed(5)
    q = haar_orthogonal(n, batch=samples, dtype=torch.float64, generator=gen)
    phases = torch.angle(torch.linalg.eigvals(q))
    tol = 5.0 / math.sqrt(samples)
    for j in range(1, 5):
        trace_power = torch.cos(j * phases).sum(dim=1)
        assert trace_power.mean().item() == pytest.approx(1.0 if j % 2 == 0 else 0.0, abs=tol * 2)
    assert q.diagonal(dim1=-2, dim2=-1).sum(-1).var().item() == pytest.approx(1.0, abs=0.1)
    raw_q, _ = torch.linalg.qr(torch.randn(samples, n, n, generator=gen, dtype=torch.float64))
    assert abs(raw_q.diagonal(dim1=-2, dim2=-1).sum(-1).mean().item()) > 10 * tol


def test_haar_columns_uniform_on_sphere():
    """A column of an out x in Haar factor is uniform on the sphere: E[q_i^4] = 3 / (n (n + 2))."""
    n, samples = 6, 20000
    q = haar_orthogonal(n, 2, batch=samples, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    np.testing.assert_allclose((q.mT @ q).numpy(), np.broadcast_to(np.eye(2), (samples, 2, 2)), atol=1e-12)
    fourth = q[:, :, 0].pow(4).mean().item()
    assert fourth == pytest.approx(3.0 / (n * (n + 2)), rel=0.03)


# ------------------------------------------------------------------------------------ deep stacks


def test_stack_of_one_tensor_and_of_many_tensors():
    gen = torch.Generator().manual_seed(7)
    stacked = torch.full((5, 6, 4, 3, 3), 9.0)
    assert delta_orthogonal_stack_(stacked, gain=1.5, generator=gen) is stacked
    layers = [torch.full((6, 4, 3), 9.0) for _ in range(5)]
    delta_orthogonal_stack_(layers, gain=1.5, generator=gen)
    for weight in list(stacked) + layers:
        np.testing.assert_allclose(
            conv_operator_singular_values(weight, (4,) * (weight.dim() - 2)).numpy(), 1.5, rtol=1e-5
        )
    centres = stacked[:, :, :, 1, 1]
    assert not torch.allclose(centres[0], centres[1]), "layers must be independent draws"
    assert torch.count_nonzero(layers[2][:, :, [0, 2]]) == 0


def test_stack_is_reproducible_with_a_generator():
    a = delta_orthogonal_stack_(torch.empty(3, 4, 4, 3), generator=torch.Generator().manual_seed(8))
    b = delta_orthogonal_stack_(torch.empty(3, 4, 4, 3), generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)


# ------------------------------------------------------------------------------------ critical init


def test_critical_init_sets_the_mean_field_critical_point():
    from dltheory.signalprop import chi_1, critical_point_for_q_star, critical_sigma_w2, q_star

    gen = torch.Generator().manual_seed(9)
    model = nn.Sequential(*[m for _ in range(20) for m in (nn.Conv2d(64, 64, 3, padding=1), nn.Tanh())])
    assert critical_init_(model, "tanh", sigma_b2=0.05, generator=gen) is model
    sw2 = float(critical_sigma_w2("tanh", 0.05))
    assert sw2 == pytest.approx(1.7610, abs=1e-4)  # anchor in docs/xiao/theory.md
    for conv in model[::2]:
        centre = conv.weight[:, :, 1, 1]
        np.testing.assert_allclose((centre.T @ centre).detach().numpy(), sw2 * np.eye(64), atol=1e-4)
    biases = torch.cat([conv.bias for conv in model[::2]]).detach()
    assert biases.var().item() == pytest.approx(0.05, rel=0.1)  # 1280 samples: 4 standard errors

    critical_init_(model, "tanh", q_star=0.1, weights="gaussian", generator=gen)
    weights = torch.cat([conv.weight.flatten() for conv in model[::2]]).detach()
    sw2_q, sb2_q = (float(v) for v in critical_point_for_q_star("tanh", 0.1))
    assert weights.var().item() * 64 * 9 == pytest.approx(sw2_q, rel=0.02)  # N(0, sigma_w2 / fan_in)
    assert float(q_star("tanh", sw2_q, sb2_q)) == pytest.approx(0.1, rel=1e-8)
    assert float(chi_1("tanh", sw2_q, sb2_q)) == pytest.approx(1.0, rel=1e-10)


def test_critical_init_orthogonal_and_readout_with_more_inputs():
    gen = torch.Generator().manual_seed(10)
    model = nn.Sequential(nn.Conv1d(3, 8, 4), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 5, 10))
    critical_init_(model, "relu", sigma_b2=0.0, weights="delta_orthogonal", generator=gen)
    np.testing.assert_allclose(
        conv_operator_singular_values(model[0].weight, (6,)).numpy(), math.sqrt(2.0), rtol=1e-5
    )
    readout = model[3].weight.detach()
    np.testing.assert_allclose((readout @ readout.T).numpy(), 2.0 * np.eye(10), atol=1e-5)
    assert torch.count_nonzero(model[0].bias) == 0


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("init", "shape", "message"),
    [
        (delta_orthogonal_, (3, 5, 3, 3), "in=5 > out=3"),
        (orthogonal_conv_, (2, 4, 3), "in=4 > out=2"),
        (delta_orthogonal_, (4, 4, 2, 3), "even side"),
        (delta_orthogonal_, (4,), "rank 1"),
        (orthogonal_conv_, (2, 2, 1, 1, 1, 1), "rank 6"),
        (orthogonal_conv_, (4, 0, 3), "empty"),
    ],
)
def test_invalid_shapes_raise_naming_the_shape(init, shape, message):
    with pytest.raises(ValueError, match=message) as info:
        init(torch.empty(shape))
    assert str(tuple(shape)) in str(info.value)


def test_other_errors():
    with pytest.raises(ValueError, match="share shape"):
        delta_orthogonal_stack_([torch.empty(4, 4, 3), torch.empty(4, 4, 5)])
    with pytest.raises(ValueError, match="empty sequence"):
        delta_orthogonal_stack_([])
    with pytest.raises(ValueError, match="spatial dimensions"):
        conv_operator_singular_values(torch.empty(2, 2, 3, 3), (4,))
    with pytest.raises(ValueError, match="exactly one of sigma_b2 and q_star"):
        critical_init_(nn.Linear(2, 2), "tanh")
    with pytest.raises(ValueError, match="no nn.Linear"):
        critical_init_(nn.Tanh(), "tanh", sigma_b2=0.1)
    with pytest.raises(ValueError, match="weights must be one of"):
        critical_init_(nn.Linear(2, 2), "tanh", sigma_b2=0.1, weights="xavier")
    with pytest.raises(ValueError, match="groups=1"):
        critical_init_(nn.Conv1d(4, 4, 3, groups=2), "tanh", sigma_b2=0.1)
    with pytest.raises(TypeError, match="floating point"):
        delta_orthogonal_(torch.empty(3, 3, dtype=torch.int64))


def test_large_cpu_batches_are_chunked_reproducibly_across_thread_counts():
    from dltheory.nn.init import HAAR_CHUNK

    batch = 2 * HAAR_CHUNK + 10
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = haar_orthogonal(8, 5, batch=batch, generator=torch.Generator().manual_seed(3))
        torch.set_num_threads(2)
        pooled = haar_orthogonal(8, 5, batch=batch, generator=torch.Generator().manual_seed(3))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(single, pooled)
    np.testing.assert_allclose(
        (pooled.mT @ pooled).numpy(), np.broadcast_to(np.eye(5), (batch, 5, 5)), atol=1e-5
    )
    assert not torch.allclose(pooled[0], pooled[HAAR_CHUNK]), "chunks must use different streams"
