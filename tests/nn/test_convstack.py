"""The fused deep conv stack against the plain autograd loop; checkpointing; padding; memory growth."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dltheory.nn.convstack import (
    STACK_ACTIVATIONS,
    circular_pad,
    conv_stack,
    default_segment,
    reference_conv_stack,
)


def _problem(depth: int = 9, c: int = 4, dtype: torch.dtype = torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    weight = (torch.randn(depth, c, c, 3, 3, generator=g, dtype=dtype) / (3 * c**0.5)).requires_grad_()
    bias = (0.1 * torch.randn(depth, c, generator=g, dtype=dtype)).requires_grad_()
    x = torch.randn(3, c, 5, 6, generator=g, dtype=dtype).requires_grad_()
    probe = torch.randn(3, c, 5, 6, generator=g, dtype=dtype)
    return x, weight, bias, probe


def _value_and_grads(fn, x, weight, bias, probe, **kw):
    out = fn(x, weight, bias, **kw)
    grads = torch.autograd.grad((out * probe).sum(), [x, weight, bias])
    return [out.detach(), *grads]


@pytest.mark.parametrize("pad", [1, 2])
@pytest.mark.parametrize("shape", [(2, 3, 5, 6), (1, 2, 7, 7)])
def test_circular_pad_equals_torch_circular_padding(pad, shape):
    x = torch.randn(*shape)
    assert torch.equal(circular_pad(x, pad), F.pad(x, (pad,) * 4, mode="circular"))
    assert torch.equal(
        circular_pad(x.contiguous(memory_format=torch.channels_last), pad),
        F.pad(x, (pad,) * 4, mode="circular"),
    )


def test_circular_pad_rejects_a_pad_larger_than_the_map():
    with pytest.raises(ValueError, match="pad must lie in"):
        circular_pad(torch.zeros(1, 1, 3, 3), 4)


@pytest.mark.parametrize("padding", ["circular", "zeros"])
@pytest.mark.parametrize("activation", list(STACK_ACTIVATIONS))
def test_fused_stack_matches_plain_autograd_in_float64(activation, padding):
    x, weight, bias, probe = _problem()
    ref = _value_and_grads(
        reference_conv_stack, x, weight, bias, probe, activation=activation, padding=padding
    )
    for segment in (1, 4):
        got = _value_and_grads(
            conv_stack, x, weight, bias, probe, activation=activation, padding=padding, segment=segment
        )
        for a, b in zip(got, ref, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_checkpointed_and_plain_fused_gradients_are_identical(dtype):
    x, weight, bias, probe = _problem(depth=11, dtype=dtype)
    plain = _value_and_grads(conv_stack, x, weight, bias, probe, segment=1)
    for segment in (2, default_segment(11), 5, 11, 20):
        ckpt = _value_and_grads(conv_stack, x, weight, bias, probe, segment=segment)
        for a, b in zip(ckpt, plain, strict=True):
            assert torch.equal(a, b)


def test_checkpointed_and_plain_reference_gradients_are_identical():
    x, weight, bias, probe = _problem(depth=10)
    plain = _value_and_grads(reference_conv_stack, x, weight, bias, probe, segment=1)
    ckpt = _value_and_grads(reference_conv_stack, x, weight, bias, probe, segment=3)
    for a, b in zip(ckpt, plain, strict=True):
        assert torch.equal(a, b)


def test_float32_fused_stack_agrees_with_float64_reference():
    x, weight, bias, probe = _problem(depth=30, c=8)
    ref = _value_and_grads(reference_conv_stack, x, weight, bias, probe)
    got = _value_and_grads(
        conv_stack,
        x.float().detach().requires_grad_(),
        weight.float().detach().requires_grad_(),
        bias.float().detach().requires_grad_(),
        probe.float(),
        segment=6,
    )
    for a, b in zip(got, ref, strict=True):
        scale = b.abs().max().item()
        assert (a.double() - b).abs().max().item() <= 1e-4 * scale


def test_no_grad_forward_equals_the_differentiable_forward():
    x, weight, bias, _ = _problem()
    with torch.no_grad():
        fast = conv_stack(x, weight, bias)
    assert torch.equal(fast, conv_stack(x, weight, bias).detach())


def test_only_the_requested_gradients_are_returned():
    x, weight, bias, probe = _problem()
    x = x.detach()
    out = conv_stack(x, weight, bias.detach(), segment=3)
    (gw,) = torch.autograd.grad((out * probe).sum(), [weight])
    ref = reference_conv_stack(x, weight, bias.detach())
    (gw_ref,) = torch.autograd.grad((ref * probe).sum(), [weight])
    torch.testing.assert_close(gw, gw_ref, rtol=1e-10, atol=1e-12)


def _saved_bytes(fn) -> int:
    """Bytes of all tensors autograd saves for backward while ``fn`` runs."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


@pytest.mark.parametrize("stack", [conv_stack, reference_conv_stack])
def test_checkpointing_saves_about_sqrt_depth_activations(stack):
    depth, c = 64, 4
    weight = torch.zeros(depth, c, c, 3, 3, requires_grad=True)
    bias = torch.zeros(depth, c, requires_grad=True)
    x = torch.randn(2, c, 6, 6, requires_grad=True)
    act = x.numel() * x.element_size()
    params = weight.numel() * weight.element_size() + bias.numel() * bias.element_size()
    plain = _saved_bytes(lambda: stack(x, weight, bias, segment=1)) - params
    ckpt = _saved_bytes(lambda: stack(x, weight, bias, segment=default_segment(depth))) - params
    assert plain >= depth * act  # at least one activation per layer
    assert ckpt <= 3 * (default_segment(depth) + 1) * act  # a few per segment, about sqrt(depth) in all


def test_errors_name_the_argument():
    x, weight, bias, _ = _problem()
    with pytest.raises(ValueError, match="activation"):
        conv_stack(x, weight, bias, activation="erf")
    with pytest.raises(ValueError, match="padding"):
        conv_stack(x, weight, bias, padding="reflect")
    with pytest.raises(ValueError, match="segment"):
        conv_stack(x, weight, bias, segment=0)
    with pytest.raises(ValueError, match="weight must have shape"):
        conv_stack(x, weight[:, :, :2], bias)
    with pytest.raises(ValueError, match="bias must have shape"):
        conv_stack(x, weight, bias[:, :2])
    with pytest.raises(ValueError, match="x must have shape"):
        conv_stack(x[:, :2], weight, bias)
