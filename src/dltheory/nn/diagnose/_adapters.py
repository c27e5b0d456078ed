"""Models whose layers are not separate modules, made diagnosable.

:class:`dltheory.nn.models.VanillaCNN` runs its deep stack as one fused autograd node over a single
``[depth, c, c, 3, 3]`` parameter, which forward hooks cannot see layer by layer. :func:`unrolled` returns
an equivalent ``nn.Sequential`` of ordinary ``nn.Conv2d`` layers (the stem and head modules are shared,
the stack kernels copied), so the diagnosis measures every layer; :func:`apply_critical` re-initialises
such a model through its own parameters.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dltheory.core.activations import Activation

_MODULES = {"tanh": nn.Tanh, "relu": nn.ReLU, "hard_tanh": nn.Hardtanh, "linear": nn.Identity}


class GlobalAveragePool(nn.Module):
    """Mean over the spatial axes: ``[B, C, H, W] -> [B, C]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def _vanilla_cnn() -> type | None:
    try:
        from dltheory.nn.models import VanillaCNN
    except ImportError:
        return None
    return VanillaCNN


def is_fused(model: nn.Module) -> bool:
    """True for models this module knows how to unroll."""
    cls = _vanilla_cnn()
    return cls is not None and isinstance(model, cls)


def unrolled(model: Any) -> nn.Module:
    """An ``nn.Sequential`` computing the same function as a :class:`~dltheory.nn.models.VanillaCNN`, one
    ``nn.Conv2d`` per layer of its stack (circular or zero padding as the model's)."""
    phi = _MODULES[model.activation]
    layers: list[nn.Module] = []
    for conv in model.stem:
        layers += [conv, phi()]
    c = model.channels
    with torch.no_grad():
        for weight, bias in zip(model.stack_weight, model.stack_bias, strict=True):
            conv = nn.Conv2d(c, c, 3, padding=1, padding_mode=model.padding)
            conv.to(dtype=weight.dtype, device=weight.device)
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)  # type: ignore[union-attr]
            layers += [conv, phi()]
    layers += [GlobalAveragePool(), model.head]
    return nn.Sequential(*layers).train(model.training)


def apply_critical(
    model: Any,
    activation: Activation,
    sigma_w2: float,
    sigma_b2: float,
    weights: str,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Put ``model`` at (sigma_w2, sigma_b2) with the given weight scheme: through
    ``VanillaCNN.reset_parameters`` for a fused model, :func:`dltheory.nn.init.critical_init_` otherwise."""
    if is_fused(model):
        model.sigma_w2, model.sigma_b2 = float(sigma_w2), float(sigma_b2)
        model.init = model.stem_init = weights
        model.reset_parameters(generator)
        return model
    from dltheory.nn.init import critical_init_

    return critical_init_(model, activation, sigma_b2=sigma_b2, weights=weights, generator=generator)


def recommendation_call(model: nn.Module, spec: str, sigma_w2: float, sigma_b2: float, weights: str) -> str:
    """The line of code that applies a recommendation to ``model``."""
    if is_fused(model):
        return (
            f"model.sigma_w2, model.sigma_b2 = {sigma_w2:.6g}, {sigma_b2:.6g}; "
            f"model.init = model.stem_init = {weights!r}; model.reset_parameters()"
        )
    return f"critical_init_(model, {spec}, sigma_b2={sigma_b2:.6g}, weights={weights!r})"


def rescale_layers(model: nn.Module, targets: dict[str, tuple[float, float]]) -> nn.Module:
    """Rescale the weight (and bias) of each named Linear / Conv module of ``model`` so that its variance
    ``fan_in * mean(W^2)`` (``mean(b^2)``) becomes the target; returns ``model``.

    Raises:
        ValueError: naming a module that ``model`` does not have or that has no weight.
    """
    with torch.no_grad():
        for name, (sigma_w2, sigma_b2) in targets.items():
            try:
                module = model.get_submodule(name)
            except AttributeError as exc:
                raise ValueError(
                    f"model has no module {name!r} to rescale (targets name {sorted(targets)})"
                ) from exc
            weight = getattr(module, "weight", None)
            if not isinstance(weight, torch.Tensor):
                raise ValueError(f"module {name!r} ({type(module).__name__}) has no weight to rescale")
            fan_in = weight[0].numel()
            current = float(weight.double().square().mean()) * fan_in
            if current > 0:
                weight.mul_((sigma_w2 / current) ** 0.5)
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                current_b = float(bias.double().square().mean())
                if current_b > 0:
                    bias.mul_((sigma_b2 / current_b) ** 0.5)
    return model
