"""The generic training loop used by every torch experiment.

Guarantees:
- deterministic: batches come from ``get_batch(step)`` (a pure function of the step, e.g. through
  :class:`EpochSampler`) and the torch RNG is seeded from ``seed`` inside a forked RNG context, so the
  caller's global RNG state is untouched;
- resumable: every ``checkpoint_every`` steps the model, optimizer, scheduler and RNG states are saved
  atomically to ``run_dir/checkpoints/<name>.pt`` (loaded with ``weights_only=True``); calling
  :func:`train` again with the same arguments continues from there and ends with the same parameters and
  metrics as an uninterrupted run;
- divergence is a result: a non-finite loss ends the run with status ``"diverged"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dltheory.core.io import atomic_save, atomic_write_text, read_jsonl, to_json
from dltheory.core.progress import progress_bar
from dltheory.core.validation import check_int
from dltheory.runner.runs import RunDir

Batch = tuple[torch.Tensor, torch.Tensor]


class EpochSampler:
    """Mini-batch indices as a pure function of the step: epoch ``e`` uses the permutation drawn from
    ``numpy.random.default_rng([seed, e])``; the last incomplete batch of an epoch is dropped."""

    def __init__(self, n: int, batch_size: int, seed: int = 0):
        self.n = check_int("n", n, minimum=1)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        if batch_size > n:
            raise ValueError(f"batch_size must be <= n = {n}, got {batch_size}")
        self.seed = seed
        self.batches_per_epoch = n // batch_size
        self._epoch = -1
        self._perm = np.arange(n)

    def indices(self, step: int) -> np.ndarray:
        epoch, position = divmod(step, self.batches_per_epoch)
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._epoch = epoch
        return self._perm[position * self.batch_size : (position + 1) * self.batch_size]


@dataclass
class TrainOutcome:
    status: str  # "completed" | "diverged"
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    resumed_from: int = 0


def train(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    get_batch: Callable[[int], Batch],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    steps: int,
    run_dir: RunDir | None = None,
    evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    eval_every: int = 0,
    checkpoint_every: int = 0,
    log_every: int = 10,
    progress: bool = False,
    scheduler: Any = None,
    seed: int = 0,
    name: str = "train",
) -> TrainOutcome:
    """Train ``model`` for ``steps`` optimizer steps; see the module docstring for the guarantees.

    Metrics: every ``log_every`` steps ``{"run": name, "step", "loss"}``; every ``eval_every`` steps (and
    at the end) the dict returned by ``evaluate(model)`` is merged in. They go to ``history`` and, with a
    ``run_dir``, to ``metrics.jsonl``.
    """
    steps = check_int("steps", steps, minimum=0)
    for arg, every in (
        ("eval_every", eval_every),
        ("checkpoint_every", checkpoint_every),
        ("log_every", log_every),
    ):
        check_int(arg, every, minimum=0)
    checkpoint_file = run_dir.checkpoints / f"{name}.pt" if run_dir is not None else None

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        start, history, status = 0, [], "running"
        if checkpoint_file is not None and checkpoint_file.exists():
            state = torch.load(checkpoint_file, weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler") is not None:
                scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            start, history, status = int(state["step"]), list(state["history"]), str(state["status"])
            _truncate_metrics(run_dir, name, start)
        resumed_from = start
        if status in ("completed", "diverged"):
            return TrainOutcome(status, start, history, history[-1] if history else {}, resumed_from)

        def save(step: int, run_status: str) -> None:
            if checkpoint_file is None:
                return
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": torch.get_rng_state(),
                "step": step,
                "history": history,
                "status": run_status,
            }
            atomic_save(checkpoint_file, lambda handle: torch.save(state, handle))

        def record(entry: dict[str, Any]) -> None:
            history.append(entry)
            if run_dir is not None:
                run_dir.log_metrics(entry)

        step, status, last_loss = start, "completed", math.nan
        with ExitStack() as stack:
            bar = stack.enter_context(progress_bar(name, steps, completed=start)) if progress else None
            model.train()
            for step in range(start, steps):
                x, y = get_batch(step)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                value = float(loss.detach())
                if not math.isfinite(value):
                    record({"run": name, "step": step + 1, "loss": value, "diverged": True})
                    status, step = "diverged", step + 1
                    break
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                done = step + 1
                last_loss = value
                if done == steps:
                    pass  # the final entry is written after the loop, with the final evaluation
                elif evaluate is not None and eval_every and done % eval_every == 0:
                    record({"run": name, "step": done, "loss": value, **_evaluate(model, evaluate)})
                elif log_every and done % log_every == 0:
                    record({"run": name, "step": done, "loss": value})
                if checkpoint_every and done % checkpoint_every == 0 and done != steps:
                    save(done, "running")
                if bar is not None:
                    bar.advance(1, info=f"loss {value:.4g}")
            else:
                step = steps
            if status == "completed" and steps > start:
                final_entry = {"run": name, "step": steps, "loss": last_loss}
                if evaluate is not None:
                    final_entry.update(_evaluate(model, evaluate))
                record(final_entry)
        save(step, status)
        return TrainOutcome(status, step, history, history[-1] if history else {}, resumed_from)


def _evaluate(
    model: torch.nn.Module, evaluate: Callable[[torch.nn.Module], dict[str, float]]
) -> dict[str, float]:
    model.eval()
    try:
        with torch.no_grad():
            return {k: float(v) for k, v in evaluate(model).items()}
    finally:
        model.train()


def _truncate_metrics(run_dir: RunDir | None, name: str, step: int) -> None:
    """Drop metric lines of run ``name`` logged after the checkpoint we resume from."""
    if run_dir is None or not run_dir.metrics_file.exists():
        return
    kept = [r for r in read_jsonl(run_dir.metrics_file) if r.get("run") != name or r.get("step", 0) <= step]
    atomic_write_text(run_dir.metrics_file, "".join(to_json(r, indent=None) + "\n" for r in kept))


def accuracy_evaluator(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    prefix: str = "test",
    batch_size: int = 1000,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> Callable[[torch.nn.Module], dict[str, float]]:
    """An ``evaluate`` callback: classification accuracy (and mean loss, if ``loss_fn``) on ``(x, y)``."""

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        correct, total_loss = 0, 0.0
        for i in range(0, len(y), batch_size):
            out = model(x[i : i + batch_size])
            correct += int((out.argmax(dim=1) == y[i : i + batch_size]).sum())
            if loss_fn is not None:
                total_loss += float(loss_fn(out, y[i : i + batch_size])) * len(out)
        metrics = {f"{prefix}_accuracy": correct / len(y)}
        if loss_fn is not None:
            metrics[f"{prefix}_loss"] = total_loss / len(y)
        return metrics

    return evaluate
