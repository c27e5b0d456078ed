"""Running one registered experiment into its run directory.

A run lives in ``<out>/<experiment>/<run-name>/``. ``config.json`` records the experiment, profile and
configuration; ``result.json`` the :class:`~dltheory.experiments.base.Result` plus provenance (wall time,
seed, versions, hardware, figure paths); ``status.json`` whether it completed, failed or was
interrupted. A failing experiment is recorded (error and traceback) instead of raised, so that
:func:`dltheory.reproduce.reproduce` goes on with the others; re-running resumes or retries.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dltheory.experiments.base import ExperimentSpec, Result, config_to_dict, config_with_overrides
from dltheory.experiments.registry import get
from dltheory.runner.records import run_provenance
from dltheory.runner.runs import RunDir


@dataclass
class RunRecord:
    experiment: str
    path: Path
    status: str
    wall_time_s: float
    skipped: bool = False
    error: str | None = None


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


def environment_info() -> dict[str, Any]:
    """Versions and hardware, recorded with every result."""
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
) -> RunRecord:
    """Run experiment ``name`` with ``profile`` (plus ``overrides``) into ``out/name/run_name``.

    An existing run is refused unless ``resume``; a completed run is then returned as it is, an
    unfinished or failed one is run again (experiments resume from their checkpoints).
    """
    experiment = get(name)
    config = resolve_config(experiment, profile, seed, overrides)
    run_name = run_name or default_run_name(profile, seed, overrides)
    stored_config = {"experiment": name, "profile": profile, "config": config_to_dict(config)}
    run_dir = RunDir(Path(out) / name / run_name, stored_config, resume=resume)
    if run_dir.is_complete():
        previous = run_dir.result() or {}
        return RunRecord(
            name, run_dir.path, "completed", float(previous.get("wall_time_s", 0.0)), skipped=True
        )
    run_dir.set_status("running")
    start = time.perf_counter()
    try:
        result: Result = experiment.run(config, run_dir)
        figures = [str(Path(p).relative_to(run_dir.path)) for p in experiment.plot(result, run_dir.figures)]
    except KeyboardInterrupt:
        run_dir.set_status("interrupted")
        raise
    except Exception as exc:  # noqa: BLE001 - a failing experiment is a recorded outcome
        wall = time.perf_counter() - start
        error = f"{type(exc).__name__}: {exc}"
        payload = Result(name, status="failed").to_dict()
        payload.update(
            _provenance(experiment, profile, config, wall, overrides),
            error=error,
            traceback=traceback.format_exc(),
        )
        run_dir.write_result(payload)
        run_dir.set_status("failed", error=error)
        return RunRecord(name, run_dir.path, "failed", wall, error=error)
    wall = time.perf_counter() - start
    payload = result.to_dict()
    payload.update(_provenance(experiment, profile, config, wall, overrides), figures=figures)
    run_dir.write_result(payload)
    run_dir.set_status("completed", verdict=result.verdict)
    return RunRecord(name, run_dir.path, "completed", wall)


def _provenance(
    experiment: ExperimentSpec, profile: str, config: Any, wall: float, overrides: dict[str, str] | None
) -> dict[str, Any]:
    """What a result file records besides the result: configuration, timing, environment, and the
    command, commit, overrides and completion date that make it recordable (see
    :mod:`dltheory.runner.records`)."""
    return {
        "description": experiment.description,
        "paper": experiment.paper,
        "profile": profile,
        "seed": getattr(config, "seed", None),
        "config": config_to_dict(config),
        "wall_time_s": wall,
        "environment": environment_info(),
        **run_provenance(overrides),
    }
