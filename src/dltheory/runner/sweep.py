"""Parameter sweeps: run ``fn(**params)`` for every cell of a grid, locally or on Ray.

Each cell's outcome is written atomically to ``out/cells/<key>.json`` (``key`` = a hash of the cell's
parameters), so an interrupted sweep resumes where it stopped: finished cells are skipped. A cell that
raises is recorded as ``failed`` with its error and traceback, and the sweep goes on; failed cells are
retried on the next call unless ``retry_failed=False``. A cell file that cannot be read back (damaged by
something outside the sweep) is logged as a warning and the cell computed again: a cell's outcome is
derived data.

Executors: ``workers=1`` runs cells in this process; ``workers>1`` uses a local process pool (spawn
context; ``fn`` must be importable, i.e. defined at module level); ``ray_address`` (``"auto"``,
``"local"`` for a fresh local instance, or ``"ray://host:port"``) runs the cells as Ray tasks
(``pip install dltheory[cluster]``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import traceback
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from dltheory.core.io import atomic_write_json, sanitize_json
from dltheory.core.progress import progress_bar
from dltheory.core.validation import check_int
from dltheory.runner.runs import DamagedRunFileError, read_json_file

logger = logging.getLogger(__name__)


@dataclass
class CellResult:
    params: dict[str, Any]
    status: str  # "ok" | "failed"
    result: Any = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "status": self.status, "result": self.result, "error": self.error}


def grid_product(**axes: Iterable[Any]) -> list[dict[str, Any]]:
    """Cartesian product of named axes: ``grid_product(a=[1, 2], b=[3])`` -> ``[{a:1,b:3}, {a:2,b:3}]``."""
    names = list(axes)
    return [
        dict(zip(names, values, strict=True)) for values in itertools.product(*(list(axes[n]) for n in names))
    ]


def cell_key(params: Mapping[str, Any]) -> str:
    canonical = json.dumps(sanitize_json(dict(params)), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def run_cell(fn: Callable[..., Any], params: dict[str, Any]) -> CellResult:
    """Run one cell, turning an exception into a ``failed`` record."""
    try:
        return CellResult(params, "ok", sanitize_json(fn(**params)))
    except Exception as exc:  # noqa: BLE001 - a failing cell is a recorded result
        return CellResult(params, "failed", error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")


def sweep(
    fn: Callable[..., Any],
    grid: list[dict[str, Any]],
    *,
    out: str | Path,
    workers: int = 1,
    ray_address: str | None = None,
    retry_failed: bool = True,
    progress: bool = False,
) -> list[CellResult]:
    """Run ``fn(**cell)`` for each cell of ``grid`` and return the results in grid order."""
    workers = check_int("workers", workers, minimum=1)
    if not isinstance(grid, list) or not all(isinstance(c, dict) for c in grid):
        raise TypeError("grid must be a list of dicts of keyword arguments (see grid_product)")
    cells_dir = Path(out) / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    for stale in cells_dir.glob(".*.tmp"):  # left by a sweep killed while writing a cell file
        stale.unlink(missing_ok=True)
    results: dict[str, CellResult] = {}
    pending: list[dict[str, Any]] = []
    for params in grid:
        key = cell_key(params)
        file = cells_dir / f"{key}.json"
        if file.exists():
            stored = _read_cell(file)
            if stored is not None and (stored.status == "ok" or not retry_failed):
                results[key] = stored
                continue
        pending.append(params)

    def finish(outcome: CellResult) -> None:
        key = cell_key(outcome.params)
        atomic_write_json(cells_dir / f"{key}.json", outcome.to_dict())
        results[key] = outcome
        if bar is not None:
            bar.advance(1)

    with ExitStack() as stack:
        done = len(grid) - len(pending)
        bar = stack.enter_context(progress_bar("sweep", len(grid), completed=done)) if progress else None
        if ray_address is not None:
            _run_ray(fn, pending, ray_address, finish)
        elif workers == 1 or len(pending) <= 1:
            for params in pending:
                finish(run_cell(fn, params))
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                futures = [pool.submit(run_cell, fn, params) for params in pending]
                for future in as_completed(futures):
                    finish(future.result())
    return [results[cell_key(p)] for p in grid]


def _read_cell(file: Path) -> CellResult | None:
    """A stored cell outcome, or None (with a warning) when the file is damaged."""
    try:
        stored = read_json_file(file, remedy="the cell is computed again")
        if stored.get("status") not in ("ok", "failed") or set(stored) != {
            "params",
            "status",
            "result",
            "error",
        }:
            raise DamagedRunFileError(file, "not a cell record", "the cell is computed again")
    except DamagedRunFileError as exc:
        logger.warning("%s", exc)
        return None
    return CellResult(**stored)


def _run_ray(
    fn: Callable[..., Any], pending: list[dict[str, Any]], address: str, finish: Callable[[CellResult], None]
) -> None:
    try:
        import ray
    except ImportError as exc:
        raise ImportError("Ray sweeps need the 'cluster' extra: pip install 'dltheory[cluster]'") from exc
    if not ray.is_initialized():
        ray.init(
            address=None if address == "local" else address,
            include_dashboard=False,
            log_to_driver=False,
            ignore_reinit_error=True,
        )
    remote = ray.remote(run_cell)
    refs = [remote.remote(fn, params) for params in pending]
    while refs:
        done, refs = ray.wait(refs, num_returns=1)
        finish(ray.get(done[0]))
