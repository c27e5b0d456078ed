"""Residual networks whose initialisation matches the mean-field theory of
:mod:`dltheory.signalprop.residual` (Yang & Schoenholz 2017): every weight ``N(0, sigma_w2 / fan_in)``,
every bias ``N(0, sigma_b2)``, every branch multiplied by ``alpha``.

- :class:`ResidualMLP`: ``h_0 = W_in x``, ``h_{l+1} = h_l + alpha B_l(h_l)`` (or post-norm
  ``N(h_l + alpha B_l(h_l))``), read-out ``W_out h_L``; blocks ``"reduced"`` (``W phi(h) + b``),
  ``"two_layer"`` (``V phi(W phi(h) + b) + a``) and ``"mlp"`` (``V phi(W h + b) + a``; with
  ``norm="layer"`` this is the MLP block of a pre-LN Transformer);
- :class:`ResNet`: a small convolutional ResNet (no torchvision): a 3x3 stem convolution, ``depth``
  two-layer blocks ``h + alpha conv(phi(conv(phi(h))))`` with 3x3 kernels, global average pooling and a
  linear head.

Both are plain ``nn.Module`` s that ``torch.fx`` traces, so :func:`dltheory.diagnose` follows their skip
connections.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from dltheory.core.validation import check_choice, check_int, check_positive

ACTIVATION_MODULES: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}
BLOCKS = ("reduced", "two_layer", "mlp")


def _init(module: nn.Module, sigma_w2: float, sigma_b2: float, generator: torch.Generator | None) -> None:
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, math.sqrt(sigma_w2 / fan_in), generator=generator)
                if m.bias is not None:
                    if sigma_b2 > 0:
                        m.bias.normal_(0.0, math.sqrt(sigma_b2), generator=generator)
                    else:
                        m.bias.zero_()


class _Block(nn.Module):
    """One residual block of :class:`ResidualMLP`."""

    def __init__(
        self, width: int, activation: str, block: str, norm: str | None, norm_position: str, alpha: float
    ):
        super().__init__()
        act = ACTIVATION_MODULES[activation]
        self.norm = nn.LayerNorm(width) if norm == "layer" else nn.RMSNorm(width) if norm == "rms" else None
        self.pre = norm is not None and norm_position == "pre"
        self.alpha = float(alpha)
        if block == "reduced":
            self.branch = nn.Sequential(act(), nn.Linear(width, width))
        elif block == "two_layer":
            self.branch = nn.Sequential(act(), nn.Linear(width, width), act(), nn.Linear(width, width))
        else:
            self.branch = nn.Sequential(nn.Linear(width, width), act(), nn.Linear(width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        y = self.branch(self.norm(h) if self.pre and self.norm is not None else h)
        if self.alpha != 1.0:
            y = self.alpha * y
        h = h + y
        if self.norm is not None and not self.pre:
            h = self.norm(h)
        return h


class ResidualMLP(nn.Module):
    """A residual MLP initialised as the mean-field theory assumes (module docstring).

    Args:
        d_in: input width.
        width: stream width (every block's input and output).
        depth: number of residual blocks.
        d_out: output width.
        activation: ``"tanh"``, ``"relu"`` or ``"gelu"``.
        block: ``"reduced"``, ``"two_layer"`` or ``"mlp"``.
        norm: None, ``"layer"`` (LayerNorm) or ``"rms"`` (RMSNorm), unit gain and zero bias.
        norm_position: ``"pre"`` (before each branch) or ``"post"`` (after each addition).
        alpha: branch multiplier.
        sigma_w2: weight variance of every Linear layer.
        sigma_b2: bias variance of every Linear layer.
        generator: random generator of the initialisation.

    Examples:
        >>> net = ResidualMLP(8, 16, depth=3, generator=torch.Generator().manual_seed(0))
        >>> net(torch.randn(4, 8)).shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        d_in: int,
        width: int,
        depth: int,
        d_out: int = 10,
        *,
        activation: str = "tanh",
        block: str = "reduced",
        norm: str | None = None,
        norm_position: str = "pre",
        alpha: float = 1.0,
        sigma_w2: float = 1.0,
        sigma_b2: float = 0.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        check_int("d_in", d_in, minimum=1)
        check_int("width", width, minimum=1)
        check_int("depth", depth, minimum=1)
        check_choice("activation", activation, list(ACTIVATION_MODULES))
        check_choice("block", block, list(BLOCKS))
        check_choice("norm", norm, [None, "layer", "rms"])
        check_choice("norm_position", norm_position, ["pre", "post"])
        check_positive("alpha", alpha, allow_zero=True)
        check_positive("sigma_w2", sigma_w2)
        check_positive("sigma_b2", sigma_b2, allow_zero=True)
        self.embed = nn.Linear(d_in, width)
        self.blocks = nn.Sequential(
            *(_Block(width, activation, block, norm, norm_position, alpha) for _ in range(depth))
        )
        self.head = nn.Linear(width, d_out)
        _init(self, sigma_w2, sigma_b2, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.embed(x.flatten(1))))


class _ConvBlock(nn.Module):
    def __init__(self, channels: int, activation: str, alpha: float, padding_mode: str):
        super().__init__()
        act = ACTIVATION_MODULES[activation]
        mode: Any = padding_mode
        self.branch = nn.Sequential(
            act(),
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode=mode),
            act(),
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode=mode),
        )
        self.alpha = float(alpha)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        y = self.branch(h)
        return h + (self.alpha * y if self.alpha != 1.0 else y)


class ResNet(nn.Module):
    """A small convolutional ResNet for images (no torchvision): 3x3 stem, ``depth`` two-layer residual
    blocks at constant width and resolution, global average pooling, linear head (module docstring).

    Args:
        in_channels: image channels.
        channels: stream channels (every block's input and output).
        depth: number of residual blocks.
        classes: outputs of the linear head.
        activation: ``"tanh"``, ``"relu"`` or ``"gelu"``.
        alpha: branch multiplier.
        sigma_w2: weight variance of every convolution and of the head.
        sigma_b2: bias variance of every convolution and of the head.
        padding_mode: ``"zeros"`` or ``"circular"`` (circular padding is what the theory describes exactly).
        generator: random generator of the initialisation.

    Examples:
        >>> net = ResNet(1, 8, depth=2, generator=torch.Generator().manual_seed(0))
        >>> net(torch.randn(2, 1, 12, 12)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        depth: int,
        classes: int = 10,
        *,
        activation: str = "relu",
        alpha: float = 1.0,
        sigma_w2: float = 2.0,
        sigma_b2: float = 0.0,
        padding_mode: str = "circular",
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        check_int("depth", depth, minimum=1)
        check_choice("activation", activation, list(ACTIVATION_MODULES))
        check_choice("padding_mode", padding_mode, ["zeros", "circular"])
        mode: Any = padding_mode
        self.stem = nn.Conv2d(in_channels, channels, 3, padding=1, padding_mode=mode)
        self.blocks = nn.Sequential(
            *(_ConvBlock(channels, activation, alpha, padding_mode) for _ in range(depth))
        )
        self.head = nn.Linear(channels, classes)
        _init(self, sigma_w2, sigma_b2, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))
