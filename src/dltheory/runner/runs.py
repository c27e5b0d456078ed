"""Run directories: ``runs/<experiment>/<run-name>/{config.json, metrics.jsonl, result.json,
figures/, checkpoints/, status.json}``.

A run directory that already holds a run is resumed (``resume=True``) or refused, never silently
overwritten. All files are written atomically (see :mod:`dltheory.core.io`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dltheory.core.io import append_jsonl, atomic_write_json, read_json, read_jsonl

STATUSES = ("running", "completed", "failed", "diverged", "interrupted")


class RunExistsError(FileExistsError):
    """Raised when a run directory already holds a run and resuming was not requested."""


class RunDir:
    """A run directory. ``config`` (a JSON-able dict) is written on creation and must match on resume."""

    def __init__(self, path: str | Path, config: dict[str, Any] | None = None, *, resume: bool = False):
        self.path = Path(path)
        config_file = self.path / "config.json"
        if config_file.exists():
            if not resume:
                raise RunExistsError(
                    f"run directory {self.path} already holds a run; pass resume=True (CLI: --resume) "
                    "to continue it, or choose another run name"
                )
            stored = read_json(config_file)
            if config is not None and _normalise(stored) != _normalise(config):
                raise RunExistsError(
                    f"run directory {self.path} was created with a different configuration; "
                    f"stored {stored}, requested {config}"
                )
            self.config = stored
        else:
            if config is None:
                raise FileNotFoundError(f"no run at {self.path} (config.json missing)")
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write_json(config_file, config)
            self.config = config
        self.figures.mkdir(exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """Open an existing run for reading."""
        return cls(path, None, resume=True)

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def result_file(self) -> Path:
        return self.path / "result.json"

    def log_metrics(self, record: dict[str, Any]) -> None:
        append_jsonl(self.metrics_file, record)

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_file)

    def write_result(self, result: dict[str, Any]) -> None:
        atomic_write_json(self.result_file, result)

    def result(self) -> dict[str, Any] | None:
        return read_json(self.result_file) if self.result_file.exists() else None

    def set_status(self, status: str, **extra: Any) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        atomic_write_json(self.path / "status.json", {"status": status, "time": time.time(), **extra})

    def status(self) -> dict[str, Any]:
        file = self.path / "status.json"
        return read_json(file) if file.exists() else {"status": "new"}

    def is_complete(self) -> bool:
        return self.status().get("status") == "completed" and self.result_file.exists()

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


def _normalise(obj: Any) -> Any:
    """Compare configs as JSON would see them (tuples and lists alike)."""
    if isinstance(obj, dict):
        return {str(k): _normalise(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_normalise(v) for v in obj]
    return obj
