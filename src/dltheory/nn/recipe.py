"""Optimizer settings that make deep critical vanilla CNNs learn fast (the network itself stays vanilla).

Deep stacks at the critical point with delta-orthogonal kernels are close to dynamical isometry: every
layer's input-output Jacobian is nearly orthogonal, so the gradient of every layer has about the size a
shallow network's would have. An optimizer step then moves *each* of the ``depth`` layers by a comparable
amount, and the end-to-end map moves by about the sum, ``depth`` times as much as one layer (for a deep
linear network this is exact to first order: ``delta(W_L...W_1) = sum_j W_L..delta(W_j)..W_1``; Arora,
Cohen & Hazan 2018, eq. 7). With one learning rate for the whole network the stack either barely learns
(rate tuned for depth) or the end-to-end map jumps (rate tuned for the stem and head). The recipe
therefore gives the stack the rate ``lr / depth`` (a depth-independent end-to-end step) and the stem and
head the rate ``lr``, and ramps all rates up linearly over ``warmup_steps`` steps (Goyal et al. 2017).

The head may get its own rate ``head_lr``. With Adam every parameter moves by about its rate per step,
so the logits move by about ``head_lr`` times the size of the pooled features. At a small fixed point q*
those features have size ``sqrt(q*)`` (0.03 at q* = 0.001) instead of the O(1) of a shallow network, and
the read-out learns ``1/sqrt(q*)`` times slower; ``head_lr = lr / sqrt(q*)`` restores the shallow pace.
Measured effect: see the ``xiao-recipe`` experiment and the README section "10,000-layer vanilla CNNs".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dltheory.core.validation import check_choice, check_int, check_positive
from dltheory.nn.models import VanillaCNN

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainingRecipe:
    """``optimizer`` ("adam" or "sgd" with ``momentum``), base rate ``lr`` for the stem (and the head unless
    ``head_lr`` is given), stack rate ``stack_lr`` (``None``: ``lr / depth``), linear warm-up over
    ``warmup_steps`` steps."""

    optimizer: str = "adam"
    lr: float = 1e-2
    stack_lr: float | None = None
    momentum: float = 0.9
    warmup_steps: int = 50
    head_lr: float | None = None

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_positive("lr", self.lr)
        if self.stack_lr is not None:
            check_positive("stack_lr", self.stack_lr, allow_zero=True)
        if self.head_lr is not None:
            check_positive("head_lr", self.head_lr)
        check_positive("momentum", self.momentum, allow_zero=True)
        check_int("warmup_steps", self.warmup_steps, minimum=0)

    def stack_rate(self, depth: int) -> float:
        """The stack's learning rate: ``stack_lr``, or ``lr / depth`` when it is ``None``."""
        return self.lr / max(depth, 1) if self.stack_lr is None else self.stack_lr

    @property
    def head_rate(self) -> float:
        """The read-out's learning rate: ``head_lr``, or ``lr`` when it is ``None``."""
        return self.lr if self.head_lr is None else self.head_lr


def build_optimizer(
    model: VanillaCNN, recipe: TrainingRecipe, *, capturable: bool = False
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The optimizer and its warm-up scheduler (call ``scheduler.step()`` after every optimizer step).

    Args:
        model: the network; its parameter groups stem / head / stack get the rates ``recipe.lr``,
            ``recipe.head_rate`` and ``recipe.stack_rate(depth)``.
        recipe: the training recipe.
        capturable: build an optimizer whose step can be recorded in a CUDA graph (Adam with
            ``capturable=True`` and learning rates as tensors on the model's device, which the scheduler
            updates in place; see :mod:`dltheory.runner.graphed`). Only for ``optimizer="adam"``.

    Returns:
        ``(optimizer, scheduler)``.

    Raises:
        ValueError: ``capturable=True`` with SGD (its step cannot take tensor learning rates in a graph) or
            with a model that is not on a GPU (PyTorch's capturable Adam runs on CUDA devices only).
    """
    device = next(model.parameters()).device
    if capturable and recipe.optimizer != "adam":
        raise ValueError(f"capturable=True needs optimizer='adam', got optimizer={recipe.optimizer!r}")
    if capturable and device.type != "cuda":
        raise ValueError(f"capturable=True needs the model on a CUDA device, it is on {device}")
    groups = model.parameter_groups()
    rates = {"stem": recipe.lr, "head": recipe.head_rate, "stack": recipe.stack_rate(model.depth)}
    params = [
        {"params": groups[part], "lr": torch.tensor(rate, device=device) if capturable else rate}
        for part, rate in rates.items()
    ]
    optimizer: torch.optim.Optimizer
    if recipe.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=recipe.lr, capturable=capturable)
    else:
        optimizer = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum)
    warmup = recipe.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
    )
    return optimizer, scheduler
