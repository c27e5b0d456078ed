"""The vanilla convolutional network of Xiao et al. (ICML 2018): no normalisation, no skip connections.

Architecture (Xiao et al. 2018, section 5 and the authors' public demo; docs/xiao/theory.md)::

    x [B, in, H, W]
      -> conv 3x3, stride 1, zero padding 1   (in -> c)  -> phi          "stem"
      -> conv 3x3, stride 2, zero padding 1   (c -> c)   -> phi          (28 -> 14 on MNIST)
      -> conv 3x3, stride 2, zero padding 1   (c -> c)   -> phi          (14 -> 7)
      -> depth x [circular pad 1, conv 3x3 (c -> c), phi]                "stack"
      -> global average pool -> linear (c -> num_classes)                "head" (logits)

Initialisation (mean-field notation: weight variance sigma_w2 / fan-in, bias variance sigma_b2):

- ``"delta_orthogonal"``: Haar-orthogonal c x c matrix times ``sqrt(sigma_w2)`` at the centre tap, zeros
  elsewhere (Xiao et al. 2018, algorithm 2): every spatial Fourier mode propagates like the
  fully connected signal and the stack is dynamically isometric at the critical point;
- ``"orthogonal"``: block-orthogonal kernels with spatial spread (an orthogonal convolution operator
  under circular padding, scaled by ``sqrt(sigma_w2)``; Xiao et al. 2018, algorithm 1);
- ``"gaussian"``: i.i.d. ``N(0, sigma_w2 / (9 c_in))`` entries.

Biases are ``N(0, sigma_b2)``; the head has ``N(0, 1 / c)`` weights and zero bias. ``sigma_w2=None``
takes the critical value ``chi_1(sigma_w2, sigma_b2) = 1`` from :func:`dltheory.signalprop.critical_sigma_w2`
(tanh at ``sigma_b2 = 0.05``: 1.7610, q* = 0.57).

The deep stack is one parameter ``stack_weight [depth, c, c, 3, 3]`` and ``stack_bias [depth, c]`` run by
:func:`dltheory.nn.convstack.conv_stack` (one autograd node; activation checkpointing; see that module),
so a 10,000-layer network has three parameters to the optimizer instead of 20,000.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from dltheory.core.validation import check_choice, check_int, check_positive
from dltheory.nn.convstack import (
    PADDINGS,
    STACK_ACTIVATIONS,
    conv_stack,
    default_segment,
    reference_conv_stack,
)

INITS = ("delta_orthogonal", "orthogonal", "gaussian")
IMPLS = ("fused", "autograd")
#: sigma_b2 used when none is given: 0 where the critical line needs it (ReLU, linear), else this value
DEFAULT_SIGMA_B2 = 2.01e-5
_ZERO_BIAS_ACTIVATIONS = ("relu", "linear")
_PHI: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "hard_tanh": F.hardtanh,
    "linear": lambda z: z,
}


def critical_point(
    activation: str, sigma_b2: float | None = None, *, q_star: float | None = None
) -> tuple[float, float]:
    """``(sigma_w2, sigma_b2)`` on the critical line chi_1 = 1 (Schoenholz et al. 2017, eq. 5; Xiao et al.
    2018, eq. 2.7): at the given ``sigma_b2`` (default :data:`DEFAULT_SIGMA_B2`, 0 for ReLU and linear), or
    at the point whose fixed-point variance is ``q_star`` (Pennington et al. 2017: small q* brings tanh
    networks towards dynamical isometry)."""
    from dltheory.signalprop import critical_sigma_w2
    from dltheory.signalprop.spectrum import critical_point_for_q_star

    check_choice("activation", activation, list(STACK_ACTIVATIONS))
    if q_star is not None:
        if sigma_b2 is not None:
            raise ValueError(
                f"give sigma_b2 or q_star, not both; got sigma_b2={sigma_b2!r}, q_star={q_star!r}"
            )
        if activation == "linear":
            return 1.0, 0.0
        sw2, sb2 = critical_point_for_q_star(activation, q_star)
        return float(sw2), float(sb2)
    if sigma_b2 is None:
        sigma_b2 = 0.0 if activation in _ZERO_BIAS_ACTIVATIONS else DEFAULT_SIGMA_B2
    if activation == "linear":
        if sigma_b2 != 0.0:
            raise ValueError(
                f"the linear network is critical only at sigma_b2 = 0 (sigma_w2 = 1), got {sigma_b2}"
            )
        return 1.0, 0.0
    return float(critical_sigma_w2(activation, sigma_b2)), float(sigma_b2)


def init_conv_(
    weight: torch.Tensor, scheme: str, sigma_w2: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Initialise conv kernels ``[out, in, k, k]`` or a stack ``[depth, out, in, k, k]`` in place with
    ``scheme`` (see the module docstring) at weight variance ``sigma_w2``; returns the tensor."""
    from dltheory.nn import init as dinit

    check_choice("scheme", scheme, INITS)
    gain = math.sqrt(float(check_positive("sigma_w2", sigma_w2)))
    with torch.no_grad():
        if scheme == "gaussian":
            fan_in = weight.shape[-3] * weight.shape[-2] * weight.shape[-1]
            return weight.normal_(0.0, gain / math.sqrt(fan_in), generator=generator)
        kernels = weight if weight.dim() == 5 else weight.unsqueeze(0)
        if scheme == "delta_orthogonal":
            dinit.delta_orthogonal_stack_(kernels, gain=gain, generator=generator)
        else:
            for kernel in kernels:
                dinit.orthogonal_conv_(kernel, gain=gain, generator=generator)
    return weight


class VanillaCNN(nn.Module):
    """Xiao et al.'s vanilla CNN (see the module docstring).

    Args:
        depth: number of layers of the deep circular stack (0 allowed).
        channels: width c of every hidden layer.
        in_channels: image channels (1 for MNIST, 3 for CIFAR-10).
        num_classes: number of classes (outputs of the read-out layer).
        activation: ``"tanh"`` (the paper's), ``"hard_tanh"``, ``"relu"`` or ``"linear"``.
        init: ``"delta_orthogonal"``, ``"orthogonal"`` or ``"gaussian"`` for the stack.
        sigma_w2: weight variance; ``None`` = the critical value at ``sigma_b2``.
        sigma_b2: bias variance; ``None`` = :data:`DEFAULT_SIGMA_B2` (0 for ReLU and linear).
        q_star: instead of ``sigma_w2``/``sigma_b2``: the critical point with this fixed-point variance.
        padding: ``"circular"`` (the paper's) or ``"zeros"`` for the stack (the stem always pads zeros).
        checkpoint: ``"auto"`` (keep every activation if they fit in ``activation_memory`` bytes, else
            checkpoint segments of sqrt(depth) layers), ``"none"``, ``"sqrt"`` or an int segment length.
        impl: ``"fused"`` (fast) or ``"autograd"`` (plain autograd loop with torch.utils.checkpoint;
            supports double backward).
        stem_init: scheme of the three stem convolutions (default: ``init``).
        activation_memory: bytes of stored activations ``checkpoint="auto"`` allows before it checkpoints.
        generator: torch generator for the initialisation (default: torch's global RNG).
    """

    def __init__(
        self,
        depth: int,
        channels: int,
        in_channels: int = 1,
        num_classes: int = 10,
        activation: str = "tanh",
        init: str = "delta_orthogonal",
        sigma_w2: float | None = None,
        sigma_b2: float | None = None,
        q_star: float | None = None,
        padding: str = "circular",
        checkpoint: str | int = "auto",
        impl: str = "fused",
        stem_init: str | None = None,
        activation_memory: int = 2**30,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.depth = check_int("depth", depth, minimum=0)
        self.channels = check_int("channels", channels, minimum=1)
        check_int("in_channels", in_channels, minimum=1)
        check_int("num_classes", num_classes, minimum=1)
        self.activation = check_choice("activation", activation, list(STACK_ACTIVATIONS))
        self.init = check_choice("init", init, INITS)
        self.stem_init = check_choice("stem_init", init if stem_init is None else stem_init, INITS)
        self.padding = check_choice("padding", padding, PADDINGS)
        self.impl = check_choice("impl", impl, IMPLS)
        self.activation_memory = check_int("activation_memory", activation_memory, minimum=0)
        if isinstance(checkpoint, str):
            check_choice("checkpoint", checkpoint, ["auto", "none", "sqrt"])
        else:
            check_int("checkpoint", checkpoint, minimum=1)
        self.checkpoint = checkpoint
        if q_star is not None:
            if sigma_w2 is not None:
                raise ValueError(
                    f"give sigma_w2 or q_star, not both; got sigma_w2={sigma_w2!r}, q_star={q_star!r}"
                )
            sigma_w2, sigma_b2 = critical_point(activation, sigma_b2, q_star=q_star)
        elif sigma_w2 is None:
            sigma_w2, sigma_b2 = critical_point(activation, sigma_b2)
        elif sigma_b2 is None:
            sigma_b2 = 0.0 if activation in _ZERO_BIAS_ACTIVATIONS else DEFAULT_SIGMA_B2
        self.sigma_w2 = float(check_positive("sigma_w2", sigma_w2))
        self.sigma_b2 = float(check_positive("sigma_b2", sigma_b2, allow_zero=True))

        c = channels
        self.stem = nn.ModuleList(
            [
                nn.Conv2d(in_channels, c, 3, stride=1, padding=1),
                nn.Conv2d(c, c, 3, stride=2, padding=1),
                nn.Conv2d(c, c, 3, stride=2, padding=1),
            ]
        )
        self.stack_weight = nn.Parameter(torch.empty(depth, c, c, 3, 3))
        self.stack_bias = nn.Parameter(torch.empty(depth, c))
        self.head = nn.Linear(c, num_classes)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw all parameters afresh (see the module docstring for the distributions)."""
        bias_std = math.sqrt(self.sigma_b2)
        with torch.no_grad():
            for conv in self.stem_convs:
                init_conv_(conv.weight, self.stem_init, self.sigma_w2, generator)
                cast(torch.Tensor, conv.bias).normal_(0.0, bias_std, generator=generator)
            if self.depth:
                init_conv_(self.stack_weight, self.init, self.sigma_w2, generator)
                self.stack_bias.normal_(0.0, bias_std, generator=generator)
            self.head.weight.normal_(0.0, 1.0 / math.sqrt(self.channels), generator=generator)
            self.head.bias.zero_()

    @property
    def stem_convs(self) -> list[nn.Conv2d]:
        """The three stem convolutions (stride 1, 2, 2)."""
        return [cast(nn.Conv2d, conv) for conv in self.stem]

    def segment_length(self, activation_bytes: int) -> int:
        """Layers per checkpoint segment for one activation of ``activation_bytes`` bytes (1 = none)."""
        if self.checkpoint == "none" or self.depth == 0:
            return 1
        if self.checkpoint == "sqrt":
            return default_segment(self.depth)
        if self.checkpoint == "auto":
            fits = self.depth * activation_bytes <= self.activation_memory
            return 1 if fits else default_segment(self.depth)
        return int(self.checkpoint)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last activation of the stack, ``[B, c, h, w]``."""
        phi = _PHI[self.activation]
        for conv in self.stem_convs:
            x = phi(conv(x))
        if self.depth == 0:
            return x
        segment = self.segment_length(x.numel() * x.element_size())
        run = conv_stack if self.impl == "fused" else reference_conv_stack
        return run(
            x,
            self.stack_weight,
            self.stack_bias,
            activation=self.activation,
            padding=self.padding,
            segment=segment,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` of images ``x [B, in_channels, H, W]``."""
        return self.head(self.features(x).mean(dim=(2, 3)))

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by part, for per-part optimizer settings: ``stem``, ``stack``, ``head``."""
        return {
            "stem": list(self.stem.parameters()),
            "stack": [self.stack_weight, self.stack_bias],
            "head": list(self.head.parameters()),
        }

    def extra_repr(self) -> str:
        return (
            f"depth={self.depth}, channels={self.channels}, activation={self.activation!r}, "
            f"init={self.init!r}, sigma_w2={self.sigma_w2:.6g}, sigma_b2={self.sigma_b2:.6g}, "
            f"padding={self.padding!r}, checkpoint={self.checkpoint!r}, impl={self.impl!r}"
        )
