"""Deep linear layers: a linear map written as a product of matrices (Arora, Cohen & Hazan 2018).

:class:`DeepLinear` computes ``x -> W_N ... W_1 x (+ b)``; it has the attributes of ``nn.Linear``
(``weight`` is the end-to-end matrix, differentiable, ``bias``, ``in_features``, ``out_features``) so it can
stand in for one. :func:`overparameterize` swaps every ``nn.Linear`` of a model for a ``DeepLinear`` that
computes the same function at the time of the swap (exactly balanced factors from the SVD of the original
weight), so training the result with any optimizer exercises "depth as a preconditioner" on a real model;
:func:`collapse` turns it back into plain linear layers. The factorisation itself is
:func:`dltheory.deeplinear.balanced_factors`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dltheory.core.validation import check_int, check_positive
from dltheory.deeplinear.balance import balanced_factors


class DeepLinear(nn.Module):
    """``y = W_N ... W_1 x + b`` with factors ``W_j`` of shape ``(widths[j], widths[j-1])``.

    ``widths = [in_features, d_1, ..., d_{N-1}, out_features]``; the depth is ``len(widths) - 1``. The
    default initialisation draws an end-to-end matrix the way ``nn.Linear`` draws its weight
    (``U(-1/sqrt(in), 1/sqrt(in))``) and factorises it into exactly balanced factors
    (:meth:`balanced_init_`), so a ``DeepLinear`` starts as a statistically ordinary linear layer; with
    ``target`` the factors are instead balanced factors of that matrix (bias zero; hidden bases drawn
    from ``generator``).
    """

    def __init__(
        self,
        widths: Sequence[int],
        bias: bool = False,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        target: torch.Tensor | np.ndarray | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        sizes = [check_int(f"widths[{i}]", w, minimum=1) for i, w in enumerate(widths)]
        if len(sizes) < 2:
            raise ValueError(f"widths must list at least [in_features, out_features], got {list(widths)}")
        self.widths = tuple(sizes)
        self.factors = nn.ParameterList(
            [
                nn.Parameter(torch.empty(sizes[j + 1], sizes[j], device=device, dtype=dtype))
                for j in range(len(sizes) - 1)
            ]
        )
        self.bias: nn.Parameter | None
        if bias:
            self.bias = nn.Parameter(torch.empty(sizes[-1], device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        if target is None:
            self.reset_parameters()
        else:
            self.balanced_init_(target, generator=generator)
            if self.bias is not None:
                with torch.no_grad():
                    self.bias.zero_()

    @property
    def in_features(self) -> int:
        return self.widths[0]

    @property
    def out_features(self) -> int:
        return self.widths[-1]

    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    @property
    def weight(self) -> torch.Tensor:
        """The end-to-end matrix ``W_N ... W_1`` (shape ``(out_features, in_features)``, differentiable)."""
        product = self.factors[0]
        for factor in list(self.factors)[1:]:
            product = factor @ product
        return product

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for factor in self.factors:
            x = F.linear(x, factor)
        return x + self.bias if self.bias is not None else x

    def reset_parameters(self) -> None:
        """Balanced factors of an ``nn.Linear``-style random matrix (its best approximation of rank
        ``min(widths)`` when a hidden layer is a bottleneck); bias ``U(-1/sqrt(in), 1/sqrt(in))``."""
        bound = 1.0 / math.sqrt(self.in_features)
        target = torch.empty(self.out_features, self.in_features, dtype=torch.float64).uniform_(-bound, bound)
        self.balanced_init_(target, truncate=True)
        if self.bias is not None:
            with torch.no_grad():
                self.bias.uniform_(-bound, bound)

    @torch.no_grad()
    def balanced_init_(
        self,
        target: torch.Tensor | np.ndarray | None = None,
        *,
        scale: float | None = None,
        generator: torch.Generator | None = None,
        truncate: bool = False,
    ) -> DeepLinear:
        """Set the factors to exactly balanced ones (``W_{j+1}^T W_{j+1} = W_j W_j^T``) whose product is
        ``target``, or, with ``scale``, a random matrix of Frobenius norm ``scale`` and uniformly random
        direction (``scale * A / ||A||_F``, A Gaussian; with a bottleneck, A is first reduced to its best
        approximation of rank ``min(widths)``). The hidden orthonormal bases are Haar-random (drawn from
        ``generator``, or torch's default generator). Hidden widths must be at least the rank of the target
        unless ``truncate=True`` (best approximation of that rank, see
        :func:`dltheory.deeplinear.balanced_factors`). Returns ``self``.
        """
        if (target is None) == (scale is None):
            raise ValueError("balanced_init_ needs exactly one of target= (a matrix) or scale= (a norm)")
        shape = (self.out_features, self.in_features)
        if scale is not None:
            norm = float(check_positive("scale", scale, allow_zero=True))
            draw = torch.randn(shape, generator=generator, dtype=torch.float64).numpy()
            bottleneck = min(self.widths)
            if bottleneck < min(shape):
                u, s, vt = np.linalg.svd(draw, full_matrices=False)
                draw = (u[:, :bottleneck] * s[:bottleneck]) @ vt[:bottleneck]
            matrix = norm * draw / np.linalg.norm(draw)
        else:
            values = target.detach().cpu().double().numpy() if isinstance(target, torch.Tensor) else target
            matrix = np.asarray(values, dtype=np.float64)
            if matrix.shape != shape:
                raise ValueError(
                    f"target must have shape {shape} (out_features, in_features), got {matrix.shape}"
                )
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        factors = balanced_factors(
            matrix, self.depth, self.widths[1:-1], rng=np.random.default_rng(seed), truncate=truncate
        )
        for parameter, value in zip(self.factors, factors, strict=True):
            parameter.copy_(torch.as_tensor(value, dtype=parameter.dtype, device=parameter.device))
        return self

    @torch.no_grad()
    def imbalance(self, *, relative: bool = False) -> list[float]:
        """``||W_{j+1}^T W_{j+1} - W_j W_j^T||_F``, j = 1..N-1 (as :func:`dltheory.deeplinear.imbalance`)."""
        values = []
        for lower, upper in zip(list(self.factors)[:-1], list(self.factors)[1:], strict=True):
            gap = float(torch.linalg.matrix_norm(upper.T @ upper - lower @ lower.T))
            if relative:
                size = float(lower.square().sum() + upper.square().sum())
                gap = gap / size if size > 0 else 0.0
            values.append(gap)
        return values

    @torch.no_grad()
    def to_linear(self) -> nn.Linear:
        """An ``nn.Linear`` computing the same function (weight = end-to-end matrix, bias copied)."""
        first = self.factors[0]
        linear = nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.bias is not None,
            device=first.device,
            dtype=first.dtype,
        )
        linear.weight.copy_(self.weight)
        if self.bias is not None:
            linear.bias.copy_(self.bias)
        return linear

    def extra_repr(self) -> str:
        return f"widths={list(self.widths)}, depth={self.depth}, bias={self.bias is not None}"


def overparameterize(
    module: nn.Module,
    depth: int,
    *,
    width: int | None = None,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Replace every ``nn.Linear`` in ``module`` (recursively, in place) by a :class:`DeepLinear` of depth N.

    The replacement computes the same function: its factors are exactly balanced and multiply to the original
    weight; the bias is copied (it stays a single vector). Hidden widths are ``width`` or, by default,
    ``min(in_features, out_features)`` (the narrowest width that represents every matrix). Train the result
    with any optimizer; with plain gradient descent and a small step the end-to-end matrices follow
    :func:`dltheory.deeplinear.end_to_end_update`, which :class:`dltheory.nn.EndToEndOptimizer` applies to the
    original model directly.

    Args:
        module: the model (or a single ``nn.Linear``).
        depth: number of factors N >= 1.
        width: hidden width of the factorisations (default ``min(in, out)`` per layer).
        generator: draws the hidden bases of the balanced factors.

    Returns:
        ``module`` (or the new :class:`DeepLinear` when ``module`` itself is an ``nn.Linear``).

    References:
        Arora, Cohen & Hazan (2018), section 7. See docs/arora/theory.md.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from dltheory.nn import collapse, overparameterize
        >>> torch.manual_seed(0) and None
        >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        >>> x = torch.randn(5, 8)
        >>> before = model(x)
        >>> deep = overparameterize(model, depth=3)
        >>> type(deep[0]).__name__, torch.allclose(deep(x), before, atol=1e-5)
        ('DeepLinear', True)
        >>> type(collapse(deep)[0]).__name__
        'Linear'
    """
    n = check_int("depth", depth, minimum=1)
    if width is not None:
        check_int("width", width, minimum=1)
    if isinstance(module, nn.Linear):
        return _deep_from_linear(module, n, width, generator)
    for name, child in list(module.named_children()):
        replaced = overparameterize(child, n, width=width, generator=generator)
        if replaced is not child:
            setattr(module, name, replaced)
    return module


def collapse(module: nn.Module) -> nn.Module:
    """Replace every :class:`DeepLinear` in ``module`` (in place) by the equivalent ``nn.Linear``; the
    inverse of :func:`overparameterize` (the state dict then matches the original architecture)."""
    if isinstance(module, DeepLinear):
        return module.to_linear()
    for name, child in list(module.named_children()):
        replaced = collapse(child)
        if replaced is not child:
            setattr(module, name, replaced)
    return module


def _deep_from_linear(
    linear: nn.Linear, depth: int, width: int | None, generator: torch.Generator | None
) -> DeepLinear:
    if isinstance(linear.weight, nn.parameter.UninitializedParameter):
        raise ValueError(
            "overparameterize needs initialised nn.Linear layers; run a forward pass through "
            "nn.LazyLinear layers first"
        )
    hidden = min(linear.in_features, linear.out_features) if width is None else width
    widths = [linear.in_features, *([hidden] * (depth - 1)), linear.out_features]
    deep = DeepLinear(
        widths,
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
        target=linear.weight,
        generator=generator,
    )
    if linear.bias is not None and deep.bias is not None:
        with torch.no_grad():
            deep.bias.copy_(linear.bias)
    deep.train(linear.training)
    return deep
