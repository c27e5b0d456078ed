"""What a report is made of: the result files under a runs directory, the recorded runs of a store, and
the runs and records that could not be read (listed in the report with the file and the remedy instead
of stopping it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dltheory.core.io import read_json
from dltheory.runner.records import (
    Record,
    RecordError,
    Unreadable,
    default_store,
    problem_text,
    read_result,
    scan_records,
)

#: ``records=AUTO``: the source checkout's ``docs/results`` when it exists
AUTO = "auto"


@dataclass
class ReportInputs:
    """Everything one report shows.

    Attributes:
        results: readable ``result.json`` payloads of fresh runs, each with ``_run_dir`` attached.
        records: the recorded runs.
        unreadable: runs and records that could not be read.
        records_source: one sentence saying where the records came from (or why there are none).
        store: the store read, if any.
    """

    results: list[dict[str, Any]]
    records: list[Record] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    records_source: str = ""
    store: Path | None = None


def _rerun_remedy(run_dir: Path) -> str:
    """How to recompute a run's damaged result file: resuming the run recomputes it (finished work in
    checkpoints is kept; see :func:`dltheory.experiments.execute.run_experiment`)."""
    experiment, run, out = run_dir.parent.name, run_dir.name, run_dir.parent.parent
    profile = None
    try:
        stored = read_json(run_dir / "config.json")
        profile = str(stored["profile"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if profile is not None and run == profile:
        return f"recompute it: dltheory run {experiment} --profile {profile} --out {out} --resume"
    return (
        f"run the command that made it again with --resume to recompute it (dltheory run {experiment} "
        f"--profile {profile or 'PROFILE'} --out {out} --name {run} --resume, with the same --set and --seed "
        f"options), or delete {run_dir}"
    )


def scan_runs(runs_dir: str | Path) -> tuple[list[dict[str, Any]], list[Unreadable]]:
    """The readable ``result.json`` files under ``runs_dir/<experiment>/<run>/`` and the unreadable ones.

    A result file that is truncated, not JSON, or lacks the fields the report needs, and a run whose
    ``status.json`` says completed without a result file, are returned as :class:`Unreadable` (the file,
    the problem, the remedy).

    Args:
        runs_dir: the root of the run directories.

    Returns:
        ``(results, unreadable)``; each result has ``_run_dir`` (its run directory) attached.
    """
    results: list[dict[str, Any]] = []
    unreadable: list[Unreadable] = []
    root = Path(runs_dir)
    for file in sorted(root.glob("*/*/result.json")):
        try:
            payload = read_result(file)
        except RecordError as exc:
            unreadable.append(Unreadable(file, problem_text(exc, file), _rerun_remedy(file.parent)))
            continue
        payload["_run_dir"] = str(file.parent)
        results.append(payload)
    for status_file in sorted(root.glob("*/*/status.json")):
        if (status_file.parent / "result.json").exists():
            continue
        try:
            status = read_json(status_file).get("status")
        except (OSError, ValueError, AttributeError) as exc:
            unreadable.append(
                Unreadable(status_file, f"not valid JSON: {exc}", _rerun_remedy(status_file.parent))
            )
            continue
        if status == "completed":
            unreadable.append(
                Unreadable(
                    status_file.parent / "result.json",
                    "missing although status.json says completed",
                    _rerun_remedy(status_file.parent),
                )
            )
    return results, unreadable


def collect_results(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Every readable ``result.json`` under ``runs_dir/<experiment>/<run>/``, with ``_run_dir`` attached
    (see :func:`scan_runs` for the unreadable ones)."""
    return scan_runs(runs_dir)[0]


def resolve_store(records: str | Path | None) -> tuple[Path | None, str]:
    """Which store of recorded runs to read, and a sentence saying so for the report.

    Args:
        records: a store directory; :data:`AUTO` for the source checkout's ``docs/results`` when it
            exists; None for no records.

    Returns:
        ``(store or None, sentence)``.

    Raises:
        ValueError: ``records`` names a directory that does not exist.
    """
    if records is None:
        return None, "Recorded runs were not included (--no-records)."
    if isinstance(records, str) and records == AUTO:
        store = default_store()
        if store is None:
            return None, (
                "No recorded runs: none given (--records DIR) and dltheory does not run from a source "
                "checkout with docs/results."
            )
        return store, (
            f"Recorded runs are read from {store}, the source checkout's store (found automatically; "
            "choose another with --records DIR)."
        )
    store = Path(records)
    if not store.is_dir():
        raise ValueError(f"records must be a directory of recorded runs, got {str(records)!r} (not found)")
    return store, f"Recorded runs are read from {store} (given with --records)."


def gather(runs_dir: str | Path, records: str | Path | None = AUTO) -> ReportInputs:
    """The fresh results of ``runs_dir`` and the records of ``records`` (see :func:`resolve_store`)."""
    results, unreadable = scan_runs(runs_dir)
    store, source = resolve_store(records)
    found: list[Record] = []
    if store is not None:
        found, bad = scan_records(store)
        unreadable.extend(bad)
        if not found and bad:
            source = f"No readable recorded runs in {store} (see the unreadable records below)."
        elif not found:
            source = (
                f"No recorded runs: the store {store} holds none (record a completed run with "
                "dltheory record RUN_DIR)."
            )
    return ReportInputs(results, found, unreadable, source, store)
