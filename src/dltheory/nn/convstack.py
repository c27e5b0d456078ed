"""Deep stacks of 3x3 convolutions (circular or zero padding), fast enough for 10,000 layers on a CPU.

The deep part of Xiao et al. (ICML 2018, section 2 and appendix) is ``depth`` times
``a_{l+1} = phi(W_l *_circ a_l + b_l)``, with ``*_circ`` a 3x3 cross-correlation under circular
(periodic) boundary conditions. Two implementations compute the same map:

- :func:`conv_stack` (``impl="fused"``): one autograd node for the whole stack. Its forward pass pads
  each layer's input with a single gather of channels-last rows (``index_select`` of whole channel
  vectors, several times cheaper than ``F.pad(mode="circular")``), runs the convolution with the
  activation fused into the oneDNN kernel (``torch.ops.mkldnn._convolution_pointwise`` for float32 on
  a CPU; ``conv2d`` + activation elsewhere) and keeps only every ``segment``-th activation. Its backward
  pass recomputes one segment at a time from the kept activation (activation checkpointing: with
  ``segment ~ sqrt(depth)`` about ``2 sqrt(depth)`` activations live instead of ``depth``) and
  back-propagates by hand: ``dL/dz = phi'(z) dL/da`` from the stored output (``1 - a^2`` for tanh), the
  weight and bias gradients from ``convolution_backward`` and the input gradient as a circular
  cross-correlation of ``dL/dz`` with the flipped, transposed kernel,
  ``dL/da_l[p] = sum_b W_l[-b]^T dL/dz[p + b]``. No per-layer autograd nodes.
- :func:`reference_conv_stack` (``impl="autograd"``): the textbook loop ``F.pad(mode="circular")`` +
  ``F.conv2d`` + activation under ordinary autograd, with optional ``torch.utils.checkpoint``
  (non-reentrant) over segments. It supports double backward and is the check of the fused one.

With ``padding="zeros"`` the convolutions pad with zeros themselves (the input gradient of a zero-padded
"same" correlation is the zero-padded correlation with the flipped, transposed kernel). Segment length 1
keeps every activation (no recompute). The fused backward recomputes with the very same kernels as the
forward pass, so checkpointed and plain gradients are bitwise identical.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from dltheory.core.validation import check_choice, check_int

#: activations of the deep stack, with the oneDNN post-op name and its scalars
STACK_ACTIVATIONS: dict[str, tuple[str, list[float | None]]] = {
    "tanh": ("tanh", [None]),
    "relu": ("relu", [None]),
    "hard_tanh": ("hardtanh", [-1.0, 1.0]),
    "linear": ("none", [None]),
}
PADDINGS = ("circular", "zeros")
_CHANNELS_LAST = torch.channels_last
_KERNEL_CHUNK = 64  # layers whose kernels are re-laid out at once in no-grad forward passes


def fused_kernels_available(x: torch.Tensor) -> bool:
    """Whether the oneDNN convolution with a fused activation applies to ``x`` (float32 on a CPU)."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    )


def default_segment(depth: int) -> int:
    """Segment length of sqrt(depth) checkpointing: ``ceil(sqrt(depth))`` layers per segment."""
    return max(1, math.ceil(math.sqrt(depth)))


@lru_cache(maxsize=64)
def _pad_index(height: int, width: int, pad: int, device: str) -> torch.Tensor:
    """Row indices ``i`` such that ``padded[r] = rows[i[r]]`` for a circular pad of ``pad`` pixels."""
    rows = [
        ((i - pad) % height) * width + ((j - pad) % width)
        for i in range(height + 2 * pad)
        for j in range(width + 2 * pad)
    ]
    return torch.tensor(rows, dtype=torch.long, device=device)


def _pad_rows(x: torch.Tensor, index: torch.Tensor, pad: int = 1) -> torch.Tensor:
    batch, channels, height, width = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(batch, height * width, channels).index_select(1, index)
    return rows.view(batch, height + 2 * pad, width + 2 * pad, channels).permute(0, 3, 1, 2)


def circular_pad(x: torch.Tensor, pad: int = 1) -> torch.Tensor:
    """Circularly pad the two spatial dimensions of ``x`` ``[B, C, H, W]`` by ``pad`` pixels.

    Equal to ``F.pad(x, (pad,) * 4, mode="circular")`` but done as one gather of channel vectors; the
    result is channels-last (a channels-last ``x`` is read without a copy). Differentiable through
    ``index_select``.
    """
    height, width = x.shape[2], x.shape[3]
    if not 0 <= pad <= min(height, width):
        raise ValueError(f"pad must lie in [0, {min(height, width)}] (the spatial size), got {pad}")
    return _pad_rows(x, _pad_index(height, width, pad, str(x.device)), pad)


class _Padding:
    """How a layer sees its input: circular = gather then a 'valid' convolution; zeros = the convolution
    pads by itself."""

    def __init__(self, mode: str, x: torch.Tensor):
        self.circular = mode == "circular"
        self.index = _pad_index(x.shape[2], x.shape[3], 1, str(x.device)) if self.circular else None
        self.conv_padding = [0, 0] if self.circular else [1, 1]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _pad_rows(x, self.index) if self.index is not None else x


def _layer(
    padded: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    activation: str,
    padding: _Padding,
    fused: bool,
) -> torch.Tensor:
    """``phi(conv(padded, weight) + bias)``: one layer of the stack (no autograd)."""
    if fused:
        attr, scalars = STACK_ACTIVATIONS[activation]
        return torch.ops.mkldnn._convolution_pointwise(
            padded, weight, bias, padding.conv_padding, [1, 1], [1, 1], 1, attr, scalars, ""
        )
    z = F.conv2d(padded, weight, bias, padding=padding.conv_padding)
    if activation == "tanh":
        return z.tanh_()
    if activation == "relu":
        return z.relu_()
    if activation == "hard_tanh":
        return z.clamp_(-1.0, 1.0)
    return z


def _activation_backward(grad: torch.Tensor, out: torch.Tensor, activation: str) -> torch.Tensor:
    """``phi'(z) * grad`` written with the layer output ``a = phi(z)`` (tanh: ``1 - a^2``)."""
    if activation == "tanh":
        return torch.ops.aten.tanh_backward(grad, out)
    if activation == "relu":
        return torch.ops.aten.threshold_backward(grad, out, 0)
    if activation == "hard_tanh":
        return grad * ((out > -1.0) & (out < 1.0))
    return grad


def _channels_last_kernels(weight: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """``weight [n, c, c, 3, 3]`` copied so that every ``[c, c, 3, 3]`` slice is channels-last (oneDNN's
    layout for channels-last activations: no reorder per call); ``flip=True`` gives the kernels of the
    input gradient, ``W'[i, j, u, v] = W[j, i, 2 - u, 2 - v]``."""
    if flip:
        weight = weight.transpose(1, 2).flip(3, 4)
    return weight.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


class _ConvStack(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,  # type: ignore[override]
        activation: str,
        padding_mode: str,
        segment: int,
    ) -> torch.Tensor:
        fused = fused_kernels_available(x)
        padding = _Padding(padding_mode, x)
        kept = [x]
        a = x
        depth = weight.shape[0]
        for start in range(0, depth, segment):
            stop = min(depth, start + segment)
            kernels = _channels_last_kernels(weight[start:stop])
            for layer in range(start, stop):
                a = _layer(padding(a), kernels[layer - start], bias[layer], activation, padding, fused)
            if stop < depth:
                kept.append(a)
        ctx.activation, ctx.padding_mode, ctx.segment, ctx.fused = activation, padding_mode, segment, fused
        ctx.save_for_backward(weight, bias, a, *kept)
        return a

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        weight, bias, out, *kept = ctx.saved_tensors
        activation, segment, fused = ctx.activation, ctx.segment, ctx.fused
        padding = _Padding(ctx.padding_mode, out)
        depth, channels = weight.shape[0], weight.shape[1]
        need_input = ctx.needs_input_grad[0]
        grad_weight = torch.empty_like(weight) if ctx.needs_input_grad[1] else None
        grad_bias = torch.empty_like(bias) if ctx.needs_input_grad[2] else None
        mask = [False, grad_weight is not None, grad_bias is not None]
        g = grad.contiguous(memory_format=_CHANNELS_LAST)
        for seg in reversed(range(len(kept))):
            start, stop = seg * segment, min(depth, (seg + 1) * segment)
            kernels = _channels_last_kernels(weight[start:stop])
            flipped = _channels_last_kernels(weight[start:stop], flip=True)
            # recompute the segment from its kept input, holding each layer's padded input and output
            inputs, outputs = [], []
            a = kept[seg]
            for layer in range(start, stop):
                inputs.append(padding(a))
                if layer < stop - 1:
                    a = _layer(inputs[-1], kernels[layer - start], bias[layer], activation, padding, fused)
                    outputs.append(a)
            outputs.append(out if stop == depth else kept[seg + 1])
            for layer in reversed(range(start, stop)):
                gz = _activation_backward(g, outputs.pop(), activation)
                layer_input = inputs.pop()
                if mask[1] or mask[2]:
                    _, gw, gb = torch.ops.aten.convolution_backward(
                        gz,
                        layer_input,
                        kernels[layer - start],
                        [channels],
                        [1, 1],
                        padding.conv_padding,
                        [1, 1],
                        False,
                        [0, 0],
                        1,
                        mask,
                    )
                    if grad_weight is not None:
                        grad_weight[layer].copy_(gw)
                    if grad_bias is not None:
                        grad_bias[layer].copy_(gb)
                del layer_input
                if layer > 0 or need_input:
                    g = F.conv2d(padding(gz), flipped[layer - start], padding=padding.conv_padding)
        return (g if need_input else None), grad_weight, grad_bias, None, None, None


def _check_stack(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, activation: str, padding: str, segment: int
) -> int:
    check_choice("activation", activation, list(STACK_ACTIVATIONS))
    check_choice("padding", padding, PADDINGS)
    if weight.dim() != 5 or weight.shape[1] != weight.shape[2] or tuple(weight.shape[3:]) != (3, 3):
        raise ValueError(f"weight must have shape [depth, c, c, 3, 3], got {tuple(weight.shape)}")
    if tuple(bias.shape) != tuple(weight.shape[:2]):
        raise ValueError(
            f"bias must have shape [depth, c] = {tuple(weight.shape[:2])}, got {tuple(bias.shape)}"
        )
    if x.dim() != 4 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"x must have shape [batch, {weight.shape[1]}, H, W], got {tuple(x.shape)}")
    return check_int("segment", segment, minimum=1)


def conv_stack(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    activation: str = "tanh",
    padding: str = "circular",
    segment: int = 1,
) -> torch.Tensor:
    """Apply ``a_{l+1} = phi(W_l * a_l + b_l)`` for ``l = 0 .. depth-1`` (fused implementation).

    Args:
        x: ``[B, c, H, W]`` input (any memory format; computed channels-last).
        weight: ``[depth, c, c, 3, 3]`` kernels, layer ``l`` in ``weight[l]`` (layout (out, in, kh, kw)).
        bias: ``[depth, c]``.
        activation: one of :data:`STACK_ACTIVATIONS`.
        padding: ``"circular"`` (the paper's) or ``"zeros"``.
        segment: layers per checkpoint segment: only every ``segment``-th activation is kept for the
            backward pass and the rest are recomputed (1 = keep all; :func:`default_segment` = sqrt).

    Returns ``a_depth`` (channels-last). First-order gradients only (:func:`reference_conv_stack` has
    double backward).
    """
    segment = _check_stack(x, weight, bias, activation, padding, segment)
    x = x.contiguous(memory_format=_CHANNELS_LAST)
    if weight.shape[0] == 0:
        return x
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or bias.requires_grad):
        return _ConvStack.apply(x, weight, bias, activation, padding, segment)
    fused = fused_kernels_available(x)
    pad = _Padding(padding, x)
    with torch.no_grad():
        for start in range(0, weight.shape[0], _KERNEL_CHUNK):
            kernels = _channels_last_kernels(weight[start : start + _KERNEL_CHUNK])
            for layer in range(kernels.shape[0]):
                x = _layer(pad(x), kernels[layer], bias[start + layer], activation, pad, fused)
    return x


_TORCH_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "hard_tanh": F.hardtanh, "linear": lambda z: z}


def _reference_segment(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, activation: str, padding: str
) -> torch.Tensor:
    phi = _TORCH_ACTIVATIONS[activation]
    # unbind: one autograd node for all slices (weight[l] would add a full-size gradient per layer)
    for w, b in zip(weight.unbind(0), bias.unbind(0), strict=True):
        if padding == "circular":
            x = phi(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), w, b))
        else:
            x = phi(F.conv2d(x, w, b, padding=1))
    return x


def reference_conv_stack(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    activation: str = "tanh",
    padding: str = "circular",
    segment: int = 1,
) -> torch.Tensor:
    """The map of :func:`conv_stack` as a plain autograd loop (``F.pad`` circular, ``F.conv2d``,
    activation); ``segment > 1`` wraps each run of ``segment`` layers in
    ``torch.utils.checkpoint.checkpoint(use_reentrant=False)``."""
    segment = _check_stack(x, weight, bias, activation, padding, segment)
    if segment == 1 or not torch.is_grad_enabled():
        return _reference_segment(x, weight, bias, activation, padding)
    for w, b in zip(weight.split(segment), bias.split(segment), strict=True):
        x = torch_checkpoint(_reference_segment, x, w, b, activation, padding, use_reentrant=False)
    return x
