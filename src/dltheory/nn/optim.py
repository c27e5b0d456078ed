"""The end-to-end optimizer: depth-N dynamics on ordinary linear layers (Arora, Cohen & Hazan 2018).

Gradient descent on a depth-N factorisation ``W = W_N ... W_1`` started balanced moves ``W`` (to first
order in the step) by ``W <- (1 - lr wd N) W - lr sum_j [W W^T]^{(j-1)/N} G [W^T W]^{(N-j)/N}``
(:mod:`dltheory.deeplinear.dynamics`). :class:`EndToEndOptimizer` applies this update to the 2-D
parameters of a model directly, with no extra parameters and one forward/backward through the
unfactorised model; biases and other non-2-D parameters get the plain step ``p <- (1 - lr wd) p - lr g``,
exactly what they get in a model passed through :func:`dltheory.nn.overparameterize`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from dltheory.core.validation import check_int, check_positive


def preconditioned_gradient(weight: torch.Tensor, grad: torch.Tensor, depth: int) -> torch.Tensor:
    """``sum_{j=1..N} [W W^T]^{(j-1)/N} G [W^T W]^{(N-j)/N}`` for a 2-D ``weight`` (torch version of
    :func:`dltheory.deeplinear.end_to_end_direction`): one thin SVD ``W = U diag(s) V^T``, then
    ``U [(U^T G V) o K] V^T`` with ``K_{rr'} = sum_j s_r^{2(j-1)/N} s_{r'}^{2(N-j)/N}`` plus the j = N / j = 1
    terms on the parts of G outside the row / column space of the thin SVD."""
    if depth == 1:
        return grad.clone()
    u, s, vh = torch.linalg.svd(weight, full_matrices=False)
    core = u.mT @ grad @ vh.mT
    kernel = torch.zeros_like(core)
    for j in range(1, depth + 1):
        kernel += s[:, None].pow(2.0 * (j - 1) / depth) * s[None, :].pow(2.0 * (depth - j) / depth)
    direction = u @ (core * kernel) @ vh
    powered = s.pow(2.0 * (depth - 1) / depth)
    rows, cols = weight.shape
    if cols > s.numel():
        direction += (u * powered) @ (u.mT @ grad - core @ vh)
    if rows > s.numel():
        direction += ((grad @ vh.mT - u @ core) * powered) @ vh
    return direction


class EndToEndOptimizer(torch.optim.Optimizer):
    """Gradient descent with the end-to-end update of a depth-``depth`` linear factorisation.

    Training a model with ``EndToEndOptimizer(model.parameters(), lr, depth=N)`` follows, to first order in
    ``lr``, the trajectory of plain gradient descent (``torch.optim.SGD``, same ``lr`` and
    ``weight_decay``) on ``overparameterize(model, N)`` from its balanced start, at the cost of one SVD
    per 2-D parameter and step instead of N factor matrices in the forward and backward passes.

    Every 2-D parameter is treated as a linear map (put embeddings or other matrices that should not be
    "deepened" in a parameter group with ``depth=1``); all other parameters get the plain gradient step.

    Args:
        params: parameters or parameter groups (a group may set its own ``depth``).
        lr: step size, > 0.
        depth: depth N of the implicit factorisation (1 is plain gradient descent).
        weight_decay: weight decay of every factor, >= 0.

    References:
        Arora, Cohen & Hazan (2018), section 4, Theorem 1.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from dltheory.nn import EndToEndOptimizer
        >>> torch.manual_seed(0) and None
        >>> model = nn.Linear(4, 2)
        >>> optimizer = EndToEndOptimizer(model.parameters(), lr=0.1, depth=3)
        >>> loss = model(torch.randn(16, 4)).pow(2).mean()
        >>> loss.backward()
        >>> optimizer.step()
        >>> bool(model(torch.randn(16, 4)).isfinite().all())
        True
    """

    def __init__(self, params: Iterable[Any], lr: float, depth: int, weight_decay: float = 0.0):
        check_positive("lr", lr)
        check_int("depth", depth, minimum=1)
        check_positive("weight_decay", weight_decay, allow_zero=True)
        super().__init__(params, {"lr": lr, "depth": depth, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group_index, group in enumerate(self.param_groups):
            lr, depth, decay = float(group["lr"]), int(group["depth"]), float(group["weight_decay"])
            for index, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise ValueError("EndToEndOptimizer does not support sparse gradients")
                if p.ndim == 2 and depth > 1:
                    if not (torch.isfinite(p).all() and torch.isfinite(p.grad).all()):
                        raise ValueError(
                            f"parameter {index} of group {group_index} (shape {tuple(p.shape)}) or its "
                            "gradient is not finite: the end-to-end update (fractional powers of W W^T, "
                            "W^T W) is undefined there; training has diverged (lower lr)"
                        )
                    direction = preconditioned_gradient(p, p.grad, depth)
                    p.mul_(1.0 - lr * decay * depth).sub_(direction, alpha=lr)
                else:
                    p.mul_(1.0 - lr * decay).sub_(p.grad, alpha=lr)
        return loss
