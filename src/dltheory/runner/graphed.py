"""One training step (forward, backward, optimizer update) as a function of a batch, eager or replayed
from a CUDA graph.

A 10,000-layer network issues some 30 kernels per layer and step; launched one by one from Python the GPU
idles between them. :class:`GraphedStep` records the whole step once into a CUDA graph (static input
buffers, the parameters' gradients and the optimizer's state living at fixed addresses) and afterwards
replays it with a single launch per step, following PyTorch's "whole network capture" recipe
(``torch.cuda.graphs``): a few eager warm-up steps on a side stream, ``zero_grad(set_to_none=True)``,
then capture of forward, backward and ``optimizer.step()``. Every call, warm-up and capture included, is
exactly one real optimisation step on the batch it is given, so a graphed run follows the same
trajectory as an eager one (up to the order of floating-point reductions).

Requirements for capture, checked up front: a CUDA model, an optimizer that can run inside a graph
(Adam or AdamW built with ``capturable=True`` and tensor learning rates, see
:func:`dltheory.nn.recipe.build_optimizer`), and batches of one fixed shape. :func:`make_train_step`
returns the eager step, with the reason, wherever capture is impossible (e.g. on a CPU).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
TrainStep = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MODES = ("auto", "graph", "eager")


def eager_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn) -> TrainStep:
    """The plain step: ``zero_grad``, ``loss = loss_fn(model(x), y)``, ``backward``, ``optimizer.step()``.

    Returns:
        A function ``step(x, y)`` returning the detached loss (on the model's device; no host sync).
    """

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def graph_capture_problem(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> str | None:
    """Why the step of ``model`` with ``optimizer`` cannot be captured in a CUDA graph, or None if it can."""
    parameters = list(model.parameters())
    if not parameters or parameters[0].device.type != "cuda":
        return "CUDA graphs need the model on a CUDA device"
    if not torch.cuda.is_available():  # pragma: no cover - parameters on CUDA imply CUDA
        return "CUDA is not available"
    for group in optimizer.param_groups:
        if not group.get("capturable", False):
            return f"{type(optimizer).__name__} was not built with capturable=True"
        if not isinstance(group["lr"], torch.Tensor):
            return "learning rates must be tensors so that a scheduler can change them between replays"
    return None


class GraphedStep:
    """A training step captured in a CUDA graph after ``warmup`` eager steps (see the module docstring).

    Args:
        model: the network (on a CUDA device).
        optimizer: built with ``capturable=True`` and tensor learning rates.
        loss_fn: ``loss_fn(logits, targets) -> scalar tensor``.
        warmup: eager steps (on a side stream) before the capture; PyTorch needs at least one so that
            lazily created state (optimizer moments, cuBLAS/cuDNN workspaces) exists before capture.

    Raises:
        ValueError: when the step cannot be captured (the reason from :func:`graph_capture_problem`), or
            when a later batch's shape, dtype or device differs from the captured one.
    """

    def __init__(
        self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, warmup: int = 3
    ):
        problem = graph_capture_problem(model, optimizer)
        if problem is not None:
            raise ValueError(f"cannot capture the training step in a CUDA graph: {problem}")
        if warmup < 1:
            raise ValueError(f"warmup must be >= 1 (eager steps before the capture), got {warmup}")
        self.model, self.optimizer, self.loss_fn, self.warmup = model, optimizer, loss_fn, warmup
        self._eager = eager_step(model, optimizer, loss_fn)
        self._calls = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static: tuple[torch.Tensor, torch.Tensor] | None = None
        self._loss: torch.Tensor | None = None
        self._stream = torch.cuda.Stream(device=next(model.parameters()).device)

    @property
    def captured(self) -> bool:
        """Whether the graph exists (after ``warmup + 1`` calls)."""
        return self._graph is not None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimisation step on ``(x, y)``; returns the loss as a device tensor."""
        if self._graph is None:
            self._calls += 1
            if self._calls <= self.warmup:
                return self._side_stream(lambda: self._eager(x, y))
            self._capture(x, y)
        assert self._static is not None and self._graph is not None and self._loss is not None
        static_x, static_y = self._static
        for name, given, static in (("x", x, static_x), ("y", y, static_y)):
            if given.shape != static.shape or given.dtype != static.dtype or given.device != static.device:
                raise ValueError(
                    f"batch {name} must match the captured one ({tuple(static.shape)}, {static.dtype}, "
                    f"{static.device}), got ({tuple(given.shape)}, {given.dtype}, {given.device})"
                )
        if x is not static_x:
            static_x.copy_(x, non_blocking=True)
            static_y.copy_(y, non_blocking=True)
        self._graph.replay()
        return self._loss

    def _side_stream(self, work: Callable[[], torch.Tensor]) -> torch.Tensor:
        self._stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self._stream):
            out = work()
        torch.cuda.current_stream().wait_stream(self._stream)
        return out

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        static_x, static_y = x.clone(), y.clone()
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            loss = self.loss_fn(self.model(static_x), static_y)
            loss.backward()
            self.optimizer.step()
        self._graph, self._static, self._loss = graph, (static_x, static_y), loss.detach()
        # the capture recorded kernels without running them: the replay in __call__ performs this step


def make_train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    mode: str = "auto",
    warmup: int = 3,
) -> tuple[TrainStep, str | None]:
    """The training step for ``mode``: ``"graph"`` (CUDA graph, error if impossible), ``"eager"``, or
    ``"auto"`` (graph where possible, else eager).

    Returns:
        ``(step, reason)``: ``reason`` is None for a graphed step, else why the step is eager.

    Raises:
        ValueError: for an unknown ``mode``, or ``mode="graph"`` where capture is impossible.

    Examples:
        >>> import torch
        >>> model = torch.nn.Linear(3, 2)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> step, reason = make_train_step(model, optimizer, torch.nn.functional.cross_entropy)
        >>> reason
        'CUDA graphs need the model on a CUDA device'
        >>> loss = step(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    problem = "eager mode requested" if mode == "eager" else graph_capture_problem(model, optimizer)
    if problem is None:
        return GraphedStep(model, optimizer, loss_fn, warmup), None
    if mode == "graph":
        raise ValueError(f"mode='graph': cannot capture the training step in a CUDA graph: {problem}")
    return eager_step(model, optimizer, loss_fn), problem
