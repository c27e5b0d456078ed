"""Torch adapter of the layer-wise mean-field maps: reads each traced layer's parameters off its weights
and hands the maths to :mod:`dltheory.signalprop.layerwise` (see there for the equations).

- ``sigma_w2 = fan_in * mean(W^2)``, ``sigma_b2 = mean(b^2)`` (0 without bias);
- for a convolution the kernel variance profile ``v_b = mean_{out,in} W[:, :, b]^2 / sum_b' (...)`` and its
  stride, dilation, padding and padding mode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from dltheory.nn.diagnose._trace import LayerTrace, Link
from dltheory.signalprop.layerwise import ChainLayer, ChainPrediction, ConvGeometry, propagate_chain


def _pad_widths(module: Any) -> tuple[tuple[int, int], ...]:
    """(before, after) padding per spatial axis, as ``nn.ConvNd`` pads (``padding="same"`` puts the odd
    pixel after)."""
    kernel, dilation = module.kernel_size, module.dilation
    if isinstance(module.padding, str):
        if module.padding == "valid":
            return ((0, 0),) * len(kernel)
        totals = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
        return tuple((t // 2, t - t // 2) for t in totals)
    return tuple((p, p) for p in module.padding)


def conv_geometry(module: Any) -> ConvGeometry:
    """The :class:`~dltheory.signalprop.layerwise.ConvGeometry` of an ``nn.ConvNd``."""
    stride, dilation = tuple(module.stride), tuple(module.dilation)
    return ConvGeometry(stride, dilation, _pad_widths(module), module.padding_mode)


_VARIANCES: dict[tuple[int, int, int], tuple[float, float]] = {}


def clear_cache() -> None:
    """Forget cached weight variances (called around each diagnosis: ids are only unique while the
    modules live)."""
    _VARIANCES.clear()


def weight_variances(module: nn.Module) -> tuple[float, float]:
    """``(fan_in * mean(W^2), mean(b^2))`` of a Linear / Conv module (0 without bias), accumulated in
    float64; cached during one diagnosis per weight tensor and version (an in-place change invalidates
    it)."""
    weight = torch.as_tensor(module.weight).detach()
    bias = getattr(module, "bias", None)
    key = (id(module.weight), weight._version, -1 if bias is None else bias._version)
    if key in _VARIANCES:
        return _VARIANCES[key]
    fan_in = int(weight.shape[1] * int(np.prod(weight.shape[2:], dtype=np.int64)))
    sigma_w2 = _sum_of_squares(weight) / weight.numel() * fan_in
    sigma_b2 = _sum_of_squares(bias.detach()) / bias.numel() if bias is not None else 0.0
    _VARIANCES[key] = (sigma_w2, sigma_b2)
    return sigma_w2, sigma_b2


def _sum_of_squares(tensor: torch.Tensor) -> float:
    """``sum(x^2)`` accumulated in float64 (one pass over the tensor)."""
    return float(torch.linalg.vector_norm(tensor, dtype=torch.float64)) ** 2


def layer_params(trace: LayerTrace) -> ChainLayer:
    """The mean-field description of one traced layer (see the module docstring)."""
    module = trace.module
    sigma_w2, sigma_b2 = weight_variances(module)
    if isinstance(module, nn.Linear):
        return ChainLayer(sigma_w2, sigma_b2, trace.input_shape[1:-1])
    weight = torch.as_tensor(module.weight).detach().to(torch.float64)
    taps = weight.square().mean(dim=(0, 1))
    total = float(taps.sum())
    profile = (taps / total).cpu().numpy() if total > 0 else np.full(tuple(taps.shape), 1.0 / taps.numel())
    return ChainLayer(sigma_w2, sigma_b2, trace.input_shape[2:], profile, conv_geometry(module))


def predict_segment(
    traces: list[LayerTrace],
    params: list[ChainLayer],
    links: list[Link],
    span: tuple[int, int],
    pair_a: np.ndarray,
    pair_b: np.ndarray,
) -> ChainPrediction:
    """Mean-field curves over the layers ``span`` (inclusive), from the measured input of its first
    layer; ``stopped`` indexes into the span."""
    start, stop = span
    activations = []
    for link in links[start:stop]:
        assert link.activation is not None
        activations.append(link.activation)
    first = traces[start]
    return propagate_chain(
        params[start : stop + 1], activations, first.input_q_map, first.input_pair_map, pair_a, pair_b
    )
