"""Running one registered experiment into its run directory.

A run lives in ``<out>/<experiment>/<run-name>/``. ``config.json`` records the experiment, profile and
configuration; ``result.json`` the :class:`~dltheory.experiments.base.Result` plus provenance (wall time,
seed, versions, hardware, figure paths); ``status.json`` whether it completed, failed or was
interrupted. A failing experiment is recorded (error and traceback) instead of raised, so that
:func:`dltheory.reproduce.reproduce` goes on with the others; re-running resumes or retries.

Failures are classified (:attr:`RunRecord.failure`, mapped to exit codes by :mod:`dltheory.exitcodes`):
``"data"`` (a data set is missing), ``"damaged"`` (a file of the run directory cannot be read back and
cannot be recomputed), ``"resource"`` (a write failed: disk full, file-size limit, I/O error; the files
written before are intact) and ``"experiment"`` (anything else, or an experiment reporting itself failed).
With ``resume``, a damaged ``status.json``, ``result.json`` or ``metrics.jsonl`` is recomputed (the
experiment runs again from its checkpoints) and the repair is reported in :attr:`RunRecord.notes`.

The device is an execution option: it is passed to the experiment through ``RunDir.device`` and recorded
in the result's ``environment``, but it is not part of the configuration (nor of the run's name), so a run
started on a GPU can be resumed on a CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dltheory.core.io import atomic_write_text, to_json
from dltheory.data import DataNotFoundError
from dltheory.exitcodes import FAILURE_CODES, ExitCode, is_resource_error
from dltheory.experiments.base import ExperimentSpec, Result, config_to_dict, config_with_overrides
from dltheory.experiments.registry import get
from dltheory.runner.devices import device_info, flush_denormals, resolve_device
from dltheory.runner.records import git_commit, run_provenance
from dltheory.runner.runs import Attempt, DamagedRunFileError, RunDir, read_metrics_file

FAILURES = tuple(FAILURE_CODES)


@dataclass
class RunRecord:
    """The outcome of :func:`run_experiment`.

    Attributes:
        experiment: the experiment's name.
        path: its run directory.
        status: ``"completed"`` or ``"failed"``.
        wall_time_s: compute time (of the original run when ``skipped``).
        skipped: the run was already complete and was not recomputed.
        error: one line saying what went wrong (failed runs).
        failure: the kind of failure, one of ``"experiment"``, ``"data"``, ``"damaged"``, ``"resource"``.
        verdict: the result's verdict (``"agree"``, ``"disagree"``, ``"reported"``, ...).
        device: the device the run computed on.
        notes: what was repaired on the way (damaged derived files recomputed).
    """

    experiment: str
    path: Path
    status: str
    wall_time_s: float
    skipped: bool = False
    error: str | None = None
    failure: str | None = None
    verdict: str | None = None
    device: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        """The exit code this outcome maps to (see :mod:`dltheory.exitcodes`)."""
        if self.status != "failed":
            return ExitCode.OK
        return FAILURE_CODES.get(self.failure or "experiment", ExitCode.EXPERIMENT_FAILED)


def resolve_config(
    experiment: ExperimentSpec, profile: str, seed: int | None, overrides: dict[str, str] | None
) -> Any:
    config = experiment.config(profile)
    if overrides:
        config = config_with_overrides(config, overrides)
    if seed is not None:
        config = config_with_overrides(config, {"seed": str(seed)})
    return config


def default_run_name(profile: str, seed: int | None, overrides: dict[str, str] | None) -> str:
    if seed is None and not overrides:
        return profile
    tag = json.dumps({"seed": seed, "set": overrides or {}}, sort_keys=True)
    return f"{profile}-{hashlib.sha256(tag.encode()).hexdigest()[:8]}"


def environment_info(device: str | None = None) -> dict[str, Any]:
    """Versions and hardware, recorded with every result; with ``device``, what
    :func:`dltheory.runner.devices.device_info` says about it (on CUDA: card, CUDA and driver versions)."""
    import numpy
    import scipy

    import dltheory

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "dltheory": dltheory.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
    }
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    if device is not None:
        info.update(device_info(device))
    return info


def _cpu_model() -> str:
    """The processor's name (Linux: ``model name`` of /proc/cpuinfo), else what :mod:`platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_experiment(
    name: str,
    profile: str = "quick",
    *,
    out: str | Path = "runs",
    seed: int | None = None,
    overrides: dict[str, str] | None = None,
    run_name: str | None = None,
    resume: bool = False,
    device: str = "auto",
) -> RunRecord:
    """Run experiment ``name`` with ``profile`` (plus ``overrides``) into ``out/name/run_name``.

    An existing run is refused unless ``resume``; a completed run is then returned as it is, an
    unfinished or failed one is run again (experiments resume from their checkpoints), and damaged
    derived files (status, result, metrics) are recomputed.

    Args:
        name: the experiment (see ``dltheory list``).
        profile: the configuration profile.
        out: root of the run directories.
        seed: overrides the profile's seed.
        overrides: ``{config field: value as text}``.
        run_name: the run directory's name (default: see :func:`default_run_name`).
        resume: continue an existing run of that name.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (see
            :func:`dltheory.runner.devices.resolve_device`); not part of the configuration.

    Returns:
        The :class:`RunRecord`; a failure is recorded there (and in the run directory), not raised.

    Raises:
        ValueError: unknown experiment, profile, configuration key or value, or device.
        RunExistsError: the run exists and ``resume`` is False, or it has another configuration.
        DamagedRunFileError: the run's ``config.json`` cannot be read back.
        KeyboardInterrupt: interrupted (the run's status says ``interrupted``).
    """
    experiment = get(name)
    config = resolve_config(experiment, profile, seed, overrides)
    resolved = resolve_device(device)
    run_name = run_name or default_run_name(profile, seed, overrides)
    stored_config = {"experiment": name, "profile": profile, "config": config_to_dict(config)}
    run_dir = RunDir(Path(out) / name / run_name, stored_config, resume=resume, device=resolved)
    notes = _repair_derived_files(run_dir) if resume else []
    if run_dir.is_complete():
        previous = run_dir.result() or {}
        return RunRecord(
            name,
            run_dir.path,
            "completed",
            float(previous.get("wall_time_s", 0.0)),
            skipped=True,
            verdict=previous.get("verdict"),
            device=(previous.get("environment") or {}).get("device"),
        )
    attempt: Attempt | None = None

    def failed(
        exc: BaseException | None, error: str, kind: str, payload: dict[str, Any] | None = None
    ) -> RunRecord:
        if payload is None:
            payload = Result(name, status="failed").to_dict()
        payload.update(
            _provenance(experiment, profile, config, attempt, overrides, resolved, source),
            status="failed",
            error=error,
            failure=kind,
        )
        record = RunRecord(
            name,
            run_dir.path,
            "failed",
            payload["wall_time_s"],  # the same figure as the result file's
            error=error,
            failure=kind,
            device=resolved,
            notes=notes,
        )
        if exc is not None:
            payload["traceback"] = "".join(traceback.format_exception(exc))
        try:
            run_dir.write_result(payload)
            run_dir.set_status("failed", error=error, failure=kind)
        except OSError as write_error:  # e.g. the disk is still full: the earlier files stay as they were
            record.notes.append(f"the failure could not be recorded in {run_dir.path}: {write_error}")
        return record

    source = git_commit()  # the code this process runs: later commits must not be credited with the result
    try:
        attempt = run_dir.start_attempt()
        with flush_denormals(resolved) as flushed:
            result: Result = experiment.run(config, run_dir)
        if result.status == "failed":
            reason = "; ".join(result.notes[-1:]) or "the experiment reported itself failed"
            return failed(None, f"{name} reported failure: {reason}", "experiment", result.to_dict())
        figures = [str(Path(p).relative_to(run_dir.path)) for p in experiment.plot(result, run_dir.figures)]
        payload = result.to_dict()
        payload.update(_provenance(experiment, profile, config, attempt, overrides, resolved, source))
        payload["figures"] = figures
        payload["environment"]["flush_denormal"] = flushed
        wall = payload["wall_time_s"]
        run_dir.write_result(payload)
        run_dir.set_status("completed", verdict=result.verdict)
    except KeyboardInterrupt:
        try:
            run_dir.set_status("interrupted")
        except OSError:
            pass
        raise
    except Exception as exc:  # noqa: BLE001 - a failing experiment is a recorded outcome
        kind = classify_failure(exc)
        return failed(exc, describe_failure(exc, kind, run_dir), kind)
    return RunRecord(
        name, run_dir.path, "completed", wall, verdict=result.verdict, device=resolved, notes=notes
    )


def classify_failure(exc: BaseException) -> str:
    """The kind of a failure: ``"data"``, ``"damaged"``, ``"resource"`` or ``"experiment"``."""
    if isinstance(exc, DataNotFoundError):
        return "data"
    if isinstance(exc, DamagedRunFileError):
        return "damaged"
    if is_resource_error(exc):
        return "resource"
    return "experiment"


def describe_failure(exc: BaseException, kind: str, run_dir: RunDir) -> str:
    """One line for the user: what failed and, for resource failures, what to do."""
    text = " ".join(str(exc).split())
    if kind == "resource":
        cause = _os_error(exc)
        where = f" ({cause.filename})" if cause is not None and cause.filename else ""
        reason = cause.strerror if cause is not None and cause.strerror else text
        return (
            f"a write in {run_dir.path} failed{where}: {reason}; the files written before are intact; "
            "free space (or raise the limit) and run again with --resume"
        )
    return f"{type(exc).__name__}: {text}" if kind == "experiment" else text


def _os_error(exc: BaseException) -> OSError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            return current
        current = current.__cause__ or current.__context__
    return None


def _repair_derived_files(run_dir: RunDir) -> list[str]:
    """Find damaged derived files of a resumed run; drop damaged metric lines (the training loop rebuilds
    its lines from the checkpoints); the status and result are recomputed by running again. Returns what
    was found, one note per file."""
    notes = []
    for problem in run_dir.damaged_files():
        if problem.path == run_dir.metrics_file:
            kept = read_metrics_file(run_dir.metrics_file, strict=False)
            atomic_write_text(run_dir.metrics_file, "".join(to_json(r, indent=None) + "\n" for r in kept))
            notes.append(f"{problem.path} was damaged ({problem.reason}): damaged lines dropped, recomputed")
        else:
            notes.append(f"{problem.path} was damaged ({problem.reason}): recomputed")
    if notes and run_dir.status_file.exists():
        try:
            run_dir.status()
        except DamagedRunFileError:
            run_dir.status_file.unlink()
    if any(n.startswith(str(run_dir.metrics_file)) for n in notes) and run_dir.is_complete():
        run_dir.status_file.unlink()  # run again so that the training loops rebuild the metrics
    return notes


def _provenance(
    experiment: ExperimentSpec,
    profile: str,
    config: Any,
    attempt: Attempt | None,
    overrides: dict[str, str] | None,
    device: str | None = None,
    source: tuple[str | None, bool | None] | None = None,
) -> dict[str, Any]:
    """What a result file records besides the result: configuration, timing, environment, and the
    command, commit (``source``: read when the last attempt started), overrides and completion date that
    make it recordable (see :mod:`dltheory.runner.records`). ``wall_time_s`` sums every attempt of a
    resumed run (see :meth:`dltheory.runner.runs.RunDir.start_attempt`); ``attempts`` says how many there
    were."""
    return {
        "description": experiment.description,
        "paper": experiment.paper,
        "profile": profile,
        "seed": getattr(config, "seed", None),
        "config": config_to_dict(config),
        "wall_time_s": attempt.total_seconds() if attempt is not None else 0.0,
        "attempts": attempt.number if attempt is not None else 0,
        "environment": environment_info(device),
        **run_provenance(overrides, source=source),
    }
