"""A real ``dltheory`` process that stops at a chosen point so that a test can kill it by its PID.

Usage: ``python fault_driver.py MARKER POINT cli ARGS...`` runs ``dltheory ARGS...``;
``python fault_driver.py MARKER POINT sweep OUT LOG`` runs :func:`run_sweep`. When the process reaches
POINT it writes MARKER and sleeps, waiting to be killed (SIGKILL) or terminated (SIGTERM). POINT is
``none``, ``step:N`` (before training step N), ``checkpoint-write:K`` (half-way through writing the K-th
checkpoint), ``result-write`` (half-way through writing result.json), ``report`` (before the report of
``reproduce``), ``cell:X`` (inside the sweep cell x = X) or ``cell-write:K`` (half-way through writing
the K-th cell file).
"""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

GRID = [{"x": float(x)} for x in range(1, 6)]


def cell(x: float, log: str = "", pause_at: float | None = None, marker: str = "") -> dict[str, float]:
    """A sweep cell: appends to ``log`` (to count computations) and stops at ``x == pause_at``."""
    if log:
        with open(log, "a") as handle:
            handle.write(f"{x}\n")
    if x == pause_at:
        _pause(marker)
    return {"square": x * x, "root": x**0.5}


def _pause(marker: str) -> None:
    tmp = marker + ".tmp"
    Path(tmp).write_text(str(os.getpid()))
    os.replace(tmp, marker)
    time.sleep(600)
    sys.exit("the fault driver was not killed")


def _half_then_pause(marker: str, handle: io.IOBase, data: bytes | str) -> None:
    handle.write(data[: len(data) // 2])  # type: ignore[arg-type]
    handle.flush()
    os.fsync(handle.fileno())
    _pause(marker)


def install(point: str, marker: str) -> None:
    """Patch the library so that the process stops at ``point``."""
    kind, _, value = point.partition(":")
    if kind == "step":
        from dltheory.runner.train import EpochSampler

        original = EpochSampler.indices

        def indices(self, step):  # type: ignore[no-untyped-def]
            if step == int(value):
                _pause(marker)
            return original(self, step)

        EpochSampler.indices = indices  # type: ignore[method-assign]
    elif kind == "checkpoint-write":
        import torch

        real_save, calls = torch.save, []

        def save(obj, f, *args, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(1)
            if len(calls) == int(value):
                buffer = io.BytesIO()
                real_save(obj, buffer, *args, **kwargs)
                _half_then_pause(marker, f, buffer.getvalue())
            return real_save(obj, f, *args, **kwargs)

        torch.save = save
    elif kind == "result-write":
        from dltheory.core.io import atomic_open, to_json
        from dltheory.runner.runs import RunDir

        def write_result(self, result):  # type: ignore[no-untyped-def]
            with atomic_open(self.result_file) as handle:
                _half_then_pause(marker, handle, to_json(result) + "\n")

        RunDir.write_result = write_result  # type: ignore[method-assign]
    elif kind == "report":
        import dltheory.reproduce

        dltheory.reproduce.write_report = lambda *a, **k: _pause(marker)  # type: ignore[assignment]
    elif kind == "cell-write":
        import dltheory.runner.sweep as sweep_module
        from dltheory.core.io import atomic_open, to_json

        real_write, writes = sweep_module.atomic_write_json, []

        def write(path, obj):  # type: ignore[no-untyped-def]
            writes.append(1)
            if len(writes) == int(value):
                with atomic_open(path) as handle:
                    _half_then_pause(marker, handle, to_json(obj) + "\n")
            return real_write(path, obj)

        sweep_module.atomic_write_json = write  # type: ignore[assignment]
    elif kind not in ("none", "cell"):
        raise SystemExit(f"unknown fault point {point!r}")


def run_sweep(out: str, log: str, pause_at: float | None = None, marker: str = "") -> list:
    """The sweep of the campaign: :data:`GRID` through :func:`cell`, in this process."""
    from dltheory.runner.sweep import sweep

    grid = [{**params, "log": log} for params in GRID]
    if pause_at is not None:

        def fn(**params):  # type: ignore[no-untyped-def]
            return cell(**params, pause_at=pause_at, marker=marker)

        return sweep(fn, grid, out=out)
    return sweep(cell, grid, out=out)


def main(argv: list[str]) -> None:
    marker, point, mode, *rest = argv
    install(point, marker)
    if mode == "sweep":
        out, log = rest
        pause_at = float(point.split(":", 1)[1]) if point.startswith("cell:") else None
        run_sweep(out, log, pause_at, marker)
        return
    from dltheory.cli import main as cli_main

    sys.argv = ["dltheory", *rest]
    cli_main()


if __name__ == "__main__":
    main(sys.argv[1:])
