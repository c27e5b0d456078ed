"""The generic training loop used by every torch experiment.

Guarantees:
- deterministic: batches come from ``get_batch(step)`` (a pure function of the step, e.g. through
  :class:`EpochSampler`) and the torch RNG is seeded from ``seed`` inside a forked RNG context, so the
  caller's global RNG state is untouched;
- resumable: every ``checkpoint_every`` steps the model, optimizer, scheduler and RNG states are saved
  atomically to ``run_dir/checkpoints/<name>.pt`` (loaded with ``weights_only=True``); calling
  :func:`train` again with the same arguments continues from there and ends with the same parameters and
  metrics as an uninterrupted run;
- divergence is a result: a non-finite loss ends the run with status ``"diverged"``;
- device-independent: the model and every batch not already there are moved to the run's device;
  checkpoints load onto any device (``map_location``), so a run started on a GPU resumes on a CPU;
- validated: a checkpoint that cannot be loaded, or does not fit the model, raises
  :class:`~dltheory.runner.runs.DamagedRunFileError` naming it; on resume the metrics of the run are
  rebuilt from the checkpoint's history (lines logged after the checkpoint, or damaged, are replaced);
- bounded: with ``budget_s`` the loop stops cleanly when the next step would exceed the wall-clock
  budget (status ``"completed"``, ``stopped_by_budget``, final evaluation and checkpoint done).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dltheory.core.io import atomic_save, atomic_write_text, to_json
from dltheory.core.progress import progress_bar
from dltheory.core.validation import check_int, check_positive
from dltheory.runner.devices import resolve_device
from dltheory.runner.graphed import GraphedStep, make_train_step
from dltheory.runner.runs import DamagedRunFileError, RunDir, read_metrics_file

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
    """What :func:`train` returns.

    Attributes:
        status: ``"completed"`` or ``"diverged"``.
        step: the number of optimizer steps done.
        history: every metric record of the run.
        final: the last record (with the final evaluation).
        resumed_from: the step of the checkpoint the run continued from (0 for a fresh run).
        stopped_by_budget: the wall-clock budget ended the run before ``steps``.
        step_mode: ``"graph"`` when the steps of this call were replayed from a CUDA graph, else ``"eager"``.
    """

    status: str
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    resumed_from: int = 0
    stopped_by_budget: bool = False
    step_mode: str = "eager"


_CHECKPOINT_KEYS = {"model": dict, "optimizer": dict, "step": int, "history": list, "status": str}
REMEDY_CHECKPOINT = (
    "delete it to retrain this network from step 0 (training is deterministic: the result is the same), "
    "or restore it from a copy"
)


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
    device: str | torch.device | None = None,
    budget_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    step_mode: str = "auto",
    checkpoints: bool = True,
) -> TrainOutcome:
    """Train ``model`` for ``steps`` optimizer steps; see the module docstring for the guarantees.

    Metrics: every ``log_every`` steps ``{"run": name, "step", "loss"}``; every ``eval_every`` steps (and
    at the end) the dict returned by ``evaluate(model)`` is merged in. They go to ``history`` and, with a
    ``run_dir``, to ``metrics.jsonl``.

    Args:
        model: the network; moved to the device.
        optimizer: built on ``model``'s parameters.
        get_batch: ``get_batch(step) -> (x, y)``, a pure function of the step.
        loss_fn: ``loss_fn(model(x), y) -> scalar tensor``.
        steps: optimizer steps in all (a resumed run continues to ``steps``).
        run_dir: where checkpoints and metrics go (none: nothing is written, nothing resumed).
        evaluate: ``evaluate(model) -> {metric: value}``, run under ``no_grad`` in eval mode.
        eval_every: evaluate every this many steps (0: only at the end).
        checkpoint_every: checkpoint every this many steps (0: only at the end).
        log_every: log the loss every this many steps.
        progress: show a progress bar.
        scheduler: a learning-rate scheduler stepped after each optimizer step.
        seed: seed of the torch RNG used inside the loop (dropout, ...).
        name: the run's name in metrics and of its checkpoint file.
        device: where to train; None: ``run_dir.device`` with a run directory, else where the model is.
        budget_s: wall-clock budget of this call in seconds; the loop stops when the next step would
            exceed it (estimated by the mean time of the steps done so far, so at least one step runs),
            then evaluates, checkpoints and returns with ``stopped_by_budget``.
        clock: the clock the budget is measured with (seconds; injectable for tests).
        checkpoints: write checkpoints to ``run_dir`` (False: metrics only, for throw-away machines where
            a checkpoint cannot be kept, e.g. a 4 GB 10,000-layer model in a short GPU window; a killed
            run then restarts from step 0).
        step_mode: ``"auto"`` replays each step from a CUDA graph where that is possible (a CUDA model and
            an optimizer built for capture, see :mod:`dltheory.runner.graphed`), ``"graph"`` insists on
            it, ``"eager"`` never uses it. A graphed step checks the loss after the update (one launch
            per step), so a diverging run's last checkpoint holds the non-finite step's parameters.

    Returns:
        The :class:`TrainOutcome`.

    Raises:
        ValueError: for negative counts or a non-positive budget.
        DamagedRunFileError: the checkpoint cannot be loaded or does not fit the model.
    """
    steps = check_int("steps", steps, minimum=0)
    for arg, every in (
        ("eval_every", eval_every),
        ("checkpoint_every", checkpoint_every),
        ("log_every", log_every),
    ):
        check_int(arg, every, minimum=0)
    if budget_s is not None:
        budget_s = float(check_positive("budget_s", budget_s))
    checkpoint_file = run_dir.checkpoints / f"{name}.pt" if run_dir is not None else None
    target = _target_device(device, run_dir, model)
    model.to(target)
    cuda_index = target.index if target.type == "cuda" else None

    with torch.random.fork_rng(devices=[] if cuda_index is None else [cuda_index]):
        torch.manual_seed(seed)
        start, history, status, by_budget = 0, [], "running", False
        if checkpoint_file is not None and checkpoint_file.exists():
            state = _load_checkpoint(checkpoint_file, target)
            try:
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                if scheduler is not None and state.get("scheduler") is not None:
                    scheduler.load_state_dict(state["scheduler"])
            except (RuntimeError, ValueError, KeyError) as exc:
                raise DamagedRunFileError(
                    checkpoint_file, f"does not fit the model or optimizer: {exc}", REMEDY_CHECKPOINT
                ) from exc
            torch.set_rng_state(state["rng"].cpu())
            if cuda_index is not None and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(state["cuda_rng"].cpu(), cuda_index)
            start, history, status = int(state["step"]), list(state["history"]), str(state["status"])
            by_budget = bool(state.get("stopped_by_budget", False))
        if run_dir is not None:
            _restore_metrics(run_dir, name, history)
        resumed_from = start
        if status in ("completed", "diverged"):
            final = history[-1] if history else {}
            return TrainOutcome(status, start, history, final, resumed_from, by_budget)

        def save(step: int, run_status: str) -> None:
            if checkpoint_file is None or not checkpoints:
                return
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(cuda_index) if cuda_index is not None else None,
                "step": step,
                "history": history,
                "status": run_status,
                "stopped_by_budget": by_budget,
            }
            atomic_save(checkpoint_file, lambda handle: torch.save(state, handle))

        def record(entry: dict[str, Any]) -> None:
            history.append(entry)
            if run_dir is not None:
                run_dir.log_metrics(entry)

        chosen, _ = make_train_step(model, optimizer, loss_fn, mode=step_mode)
        graphed = chosen if isinstance(chosen, GraphedStep) else None
        step, status, last_loss = start, "completed", math.nan
        started, session_steps = clock(), 0
        with ExitStack() as stack:
            bar = stack.enter_context(progress_bar(name, steps, completed=start)) if progress else None
            model.train()
            for step in range(start, steps):
                x, y = _to_device(get_batch(step), target)
                if graphed is not None:
                    value = float(graphed(x, y))
                else:
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_fn(model(x), y)
                    value = float(loss.detach())
                if not math.isfinite(value):
                    record({"run": name, "step": step + 1, "loss": value, "diverged": True})
                    status, step = "diverged", step + 1
                    break
                if graphed is None:
                    loss.backward()
                    optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                done = step + 1
                last_loss = value
                session_steps += 1
                last = done == steps
                if not last and budget_s is not None:
                    elapsed = clock() - started
                    if elapsed * (session_steps + 1) / session_steps > budget_s:
                        by_budget = last = True
                if bar is not None:
                    bar.advance(1, info=f"loss {value:.4g}")
                if last:
                    step = done
                    break  # the final entry is written after the loop, with the final evaluation
                if evaluate is not None and eval_every and done % eval_every == 0:
                    record({"run": name, "step": done, "loss": value, **_evaluate(model, evaluate)})
                elif log_every and done % log_every == 0:
                    record({"run": name, "step": done, "loss": value})
                if checkpoint_every and done % checkpoint_every == 0:
                    save(done, "running")
            if status == "completed" and step > start:
                final_entry: dict[str, Any] = {"run": name, "step": step, "loss": last_loss}
                if evaluate is not None:
                    final_entry.update(_evaluate(model, evaluate))
                if by_budget:
                    final_entry["stopped_by_budget"] = True
                record(final_entry)
        save(step, status)
        final = history[-1] if history else {}
        mode = "eager" if graphed is None else "graph"
        return TrainOutcome(status, step, history, final, resumed_from, by_budget, mode)


def _evaluate(
    model: torch.nn.Module, evaluate: Callable[[torch.nn.Module], dict[str, float]]
) -> dict[str, float]:
    model.eval()
    try:
        with torch.no_grad():
            return {k: float(v) for k, v in evaluate(model).items()}
    finally:
        model.train()


def _target_device(
    device: str | torch.device | None, run_dir: RunDir | None, model: torch.nn.Module
) -> torch.device:
    if device is not None:
        return torch.device(resolve_device(device))
    if run_dir is not None:
        return torch.device(run_dir.device)
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def _to_device(batch: Any, device: torch.device) -> Any:
    """Move the tensors of a batch (a tensor, or a tuple / list of them) that are not on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch if batch.device == device else batch.to(device)
    if isinstance(batch, tuple | list):
        return type(batch)(_to_device(item, device) for item in batch)
    return batch


def _load_checkpoint(file: Path, device: torch.device) -> dict[str, Any]:
    """Load and validate a checkpoint onto ``device`` (tensors saved on any device are mapped there)."""
    try:
        state = torch.load(file, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a truncated or foreign file
        reason = f"cannot be loaded: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        raise DamagedRunFileError(file, reason, REMEDY_CHECKPOINT) from exc
    if not isinstance(state, dict):
        raise DamagedRunFileError(
            file, f"holds a {type(state).__name__}, not a checkpoint", REMEDY_CHECKPOINT
        )
    wrong = [key for key, kind in _CHECKPOINT_KEYS.items() if not isinstance(state.get(key), kind)]
    if not isinstance(state.get("rng"), torch.Tensor):
        wrong.append("rng")
    if wrong:
        raise DamagedRunFileError(file, f"missing or invalid entries {wrong}", REMEDY_CHECKPOINT)
    return state


def _restore_metrics(run_dir: RunDir, name: str, history: list[dict[str, Any]]) -> None:
    """Make the lines of run ``name`` in ``metrics.jsonl`` equal the checkpoint's ``history``.

    Lines logged after the checkpoint (a killed run) are dropped; when lines are missing or damaged, the
    run's lines are rebuilt from the history at the place of its first line. The file is rewritten only
    when something changes.
    """
    file = run_dir.metrics_file
    if not file.exists():
        if not history:
            return
        records: list[dict[str, Any]] = []
        damaged = True
    else:
        try:
            records, damaged = read_metrics_file(file, strict=True), False
        except DamagedRunFileError:
            records, damaged = read_metrics_file(file, strict=False), True
    wanted = [json.loads(to_json(entry, indent=None)) for entry in history]
    mine = [i for i, r in enumerate(records) if r.get("run") == name]
    last_step = int(history[-1].get("step", 0)) if history else 0
    kept_mine = [i for i in mine if records[i].get("step", 0) <= last_step]
    if [records[i] for i in kept_mine] == wanted:
        if not damaged and len(kept_mine) == len(mine):
            return
        dropped = set(mine) - set(kept_mine)
        kept = [r for i, r in enumerate(records) if i not in dropped]
    else:
        first = mine[0] if mine else len(records)
        others = [r for i, r in enumerate(records) if i not in set(mine)]
        position = sum(1 for i in range(first) if i not in set(mine))
        kept = others[:position] + wanted + others[position:]
    atomic_write_text(file, "".join(to_json(r, indent=None) + "\n" for r in kept))


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
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else x.device
        correct, total_loss = 0, 0.0
        for i in range(0, len(y), batch_size):
            xb, yb = _to_device((x[i : i + batch_size], y[i : i + batch_size]), device)
            out = model(xb)
            correct += int((out.argmax(dim=1) == yb).sum())
            if loss_fn is not None:
                total_loss += float(loss_fn(out, yb)) * len(out)
        metrics = {f"{prefix}_accuracy": correct / len(y)}
        if loss_fn is not None:
            metrics[f"{prefix}_loss"] = total_loss / len(y)
        return metrics

    return evaluate
