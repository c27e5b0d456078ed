"""``reproduce``: run every registered experiment, then write the report (the top of the layering: it uses
both :mod:`dltheory.experiments` and :mod:`dltheory.report`)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from dltheory.core.progress import progress_bar
from dltheory.experiments.execute import RunRecord, run_experiment
from dltheory.experiments.registry import experiments, get
from dltheory.report.html import write_report
from dltheory.report.inputs import AUTO, resolve_store
from dltheory.runner.devices import resolve_device
from dltheory.runner.runs import DamagedRunFileError, RunExistsError


def reproduce(
    profile: str = "quick",
    *,
    out: str | Path = "runs",
    names: Sequence[str] | None = None,
    progress: bool = True,
    records: str | Path | None = AUTO,
    device: str = "auto",
) -> tuple[list[RunRecord], Path]:
    """Run every registered experiment (or ``names``) with ``profile``, resuming what exists, then write
    the HTML report ``out/report.html`` with the recorded runs of ``records`` beside the fresh ones
    (``"auto"``: the source checkout's ``docs/results``; None: none; see
    :func:`dltheory.report.html.write_report`). One experiment failing does not stop the others: its
    :class:`RunRecord` says why (a run directory whose ``config.json`` is damaged, or that holds another
    configuration, is a failure of that experiment too); only an interruption stops the loop.

    Raises:
        ValueError: an unknown experiment name, a wrong store of records or an invalid ``device``.
        KeyboardInterrupt: interrupted (the running experiment's status says ``interrupted``).
    """
    selected = list(names) if names else list(experiments())
    for name in selected:
        get(name)
    resolve_store(records)  # a wrong store fails now, not after the runs
    resolve_device(device)
    done: list[RunRecord] = []
    with ExitStack() as stack:
        bar = stack.enter_context(progress_bar("reproduce", len(selected))) if progress else None
        for name in selected:
            if bar is not None:
                bar.update(info=name)
            try:
                done.append(run_experiment(name, profile, out=out, resume=True, device=device))
            except (DamagedRunFileError, RunExistsError) as exc:
                kind = "damaged" if isinstance(exc, DamagedRunFileError) else "input"
                path = Path(out) / name
                done.append(RunRecord(name, path, "failed", 0.0, error=str(exc), failure=kind))
            if bar is not None:
                bar.advance(1)
    return done, write_report(out, records=records)
