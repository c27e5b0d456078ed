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


def reproduce(
    profile: str = "quick",
    *,
    out: str | Path = "runs",
    names: Sequence[str] | None = None,
    progress: bool = True,
) -> tuple[list[RunRecord], Path]:
    """Run every registered experiment (or ``names``) with ``profile``, resuming what exists, then write
    the HTML report ``out/report.html``. One experiment failing does not stop the others."""
    selected = list(names) if names else list(experiments())
    for name in selected:
        get(name)
    records: list[RunRecord] = []
    with ExitStack() as stack:
        bar = stack.enter_context(progress_bar("reproduce", len(selected))) if progress else None
        for name in selected:
            if bar is not None:
                bar.update(info=name)
            records.append(run_experiment(name, profile, out=out, resume=True))
            if bar is not None:
                bar.advance(1)
    return records, write_report(out)
