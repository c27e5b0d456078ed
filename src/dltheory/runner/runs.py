"""Run directories: ``runs/<experiment>/<run-name>/{config.json, metrics.jsonl, result.json,
figures/, checkpoints/, status.json}``.

A run directory that already holds a run is resumed (``resume=True``) or refused, never silently
overwritten. All files are written atomically (see :mod:`dltheory.core.io`); a metrics line is appended
whole or not at all (a failed append is rolled back).

Every file is validated when it is read. A damaged file (truncated JSON, wrong structure, unreadable)
raises :class:`DamagedRunFileError`, which names the file and the remedy. What can be derived again (the
status, the result, the metrics of a training run) is recomputed on ``--resume`` by
:func:`dltheory.experiments.execute.run_experiment`; what cannot (``config.json``, checkpoints) needs the
user's decision. :func:`read_result_file` reads a result without raising (for reports listing every run).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dltheory.core.io import atomic_write_json, to_json

STATUSES = ("running", "completed", "failed", "diverged", "interrupted")


class RunExistsError(FileExistsError):
    """Raised when a run directory already holds a run and resuming was not requested."""


class DamagedRunFileError(ValueError):
    """A file of a run directory cannot be read back (truncated, not the expected structure, unreadable).

    Attributes:
        path: the damaged file.
        reason: what is wrong with it.
        remedy: what the user can do.
    """

    def __init__(self, path: str | Path, reason: str, remedy: str):
        self.path = Path(path)
        self.reason = reason
        self.remedy = remedy
        super().__init__(f"{self.path} is damaged ({reason}); {remedy}")


REMEDY_RESUME = "run again with --resume to recompute it (finished work in checkpoints is kept)"
REMEDY_CONFIG = (
    "it cannot be recomputed: restore it, or delete the run directory {dir} (or choose another --name) "
    "to start the run afresh"
)


def read_json_file(path: str | Path, *, remedy: str, expect: type = dict) -> Any:
    """Read a JSON file of a run directory, validating that it parses and holds an ``expect`` value.

    Args:
        path: the file (it must exist).
        remedy: what to tell the user when it is damaged.
        expect: the JSON type of the top-level value (``dict`` or ``list``).

    Returns:
        The parsed value.

    Raises:
        DamagedRunFileError: naming ``path``, the problem and ``remedy``.
        FileNotFoundError: when ``path`` does not exist.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise DamagedRunFileError(path, f"cannot be read: {exc}", remedy) from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        what = "empty" if not text.strip() else f"invalid JSON: {exc}"
        raise DamagedRunFileError(path, what, remedy) from exc
    if not isinstance(value, expect):
        raise DamagedRunFileError(
            path,
            f"expected a JSON {'object' if expect is dict else 'array'}, found {type(value).__name__}",
            remedy,
        )
    return value


def read_metrics_file(path: str | Path, *, strict: bool = True) -> list[dict[str, Any]]:
    """Read a JSON-lines metrics file.

    A trailing line without its newline (an append cut short by a crash) is always dropped. Any other line
    that is not a JSON object is damage: ``strict`` raises, otherwise the line is skipped.

    Args:
        path: the file (a missing file reads as no metrics).
        strict: raise on a damaged line instead of skipping it.

    Returns:
        The records, in file order.

    Raises:
        DamagedRunFileError: (``strict``) naming the file and the first damaged line.
    """
    path = Path(path)
    if not path.exists():
        return []
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DamagedRunFileError(path, f"cannot be read: {exc}", REMEDY_RESUME) from exc
    records = []
    lines = raw.split(b"\n")
    complete = lines[:-1]  # the last piece is empty, or a partial line cut short by a crash
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
        except (ValueError, UnicodeDecodeError) as exc:
            if strict:
                raise DamagedRunFileError(
                    path, f"line {number} is not a JSON object ({exc})", REMEDY_RESUME
                ) from exc
            continue
        records.append(record)
    return records


def append_record(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line and fsync it. A failed write (full disk, file-size limit) is rolled back, so
    the file never holds a partial line followed by more records.

    Raises:
        OSError: the write error, after the file was restored to its previous length.
    """
    line = (to_json(record, indent=None) + "\n").encode("utf-8")
    with open(path, "ab+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":  # a partial line left by a killed writer: drop it
                handle.seek(0)
                size = handle.read().rfind(b"\n") + 1
                handle.truncate(size)
        try:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        except OSError:
            try:
                handle.truncate(size)
            except OSError:  # pragma: no cover - nothing more can be done; readers skip damaged lines
                pass
            raise


@dataclass(frozen=True)
class Attempt:
    """One process's work on a run (see :meth:`RunDir.start_attempt`)."""

    number: int  #: 1 for the first attempt
    spent_before_s: float  #: seconds spent by the earlier attempts
    began: float  #: ``time.perf_counter()`` at the start of this attempt

    def seconds(self) -> float:
        """Seconds spent by this attempt so far."""
        return time.perf_counter() - self.began

    def total_seconds(self) -> float:
        """Seconds spent on the run by all attempts so far."""
        return self.spent_before_s + self.seconds()


class RunDir:
    """A run directory. ``config`` (a JSON-able dict) is written on creation and must match on resume.

    Args:
        path: the run directory.
        config: the run's configuration; ``None`` opens an existing run for reading.
        resume: continue an existing run instead of refusing it.
        device: the device the run computes on (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``); an
            execution option, not part of the configuration (a run can be resumed on another device).
            Resolved (see :func:`dltheory.runner.devices.resolve_device`) on first use of :attr:`device`.

    Raises:
        RunExistsError: the directory holds a run and ``resume`` is False, or its configuration differs.
        DamagedRunFileError: ``config.json`` cannot be read back.
        FileNotFoundError: ``config`` is None and there is no run at ``path``.
    """

    def __init__(
        self,
        path: str | Path,
        config: dict[str, Any] | None = None,
        *,
        resume: bool = False,
        device: str = "auto",
    ):
        self.path = Path(path)
        self._device_request = device
        self._attempt: dict[str, Any] = {}
        self._device: str | None = None
        config_file = self.path / "config.json"
        if config_file.exists():
            if not resume:
                raise RunExistsError(
                    f"run directory {self.path} already holds a run; pass resume=True (CLI: --resume) "
                    "to continue it, or choose another run name"
                )
            stored = read_json_file(config_file, remedy=REMEDY_CONFIG.format(dir=self.path))
            if config is not None and _normalise(stored) != _normalise(config):
                raise RunExistsError(
                    f"run directory {self.path} was created with a different configuration; "
                    f"stored {stored}, requested {config}"
                )
            self.config = stored
            if config is not None:
                self._remove_stale_temporaries()
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
    def device(self) -> str:
        """The resolved device of this run (``"cpu"`` or ``"cuda:N"``)."""
        if self._device is None:
            from dltheory.runner.devices import resolve_device

            self._device = resolve_device(self._device_request)
        return self._device

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

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append one record to ``metrics.jsonl`` (whole, or not at all)."""
        append_record(self.metrics_file, record)

    def metrics(self, *, strict: bool = True) -> list[dict[str, Any]]:
        """The metric records (see :func:`read_metrics_file`)."""
        return read_metrics_file(self.metrics_file, strict=strict)

    def write_result(self, result: dict[str, Any]) -> None:
        atomic_write_json(self.result_file, result)

    def result(self) -> dict[str, Any] | None:
        """The result (a JSON object), or None before there is one.

        Raises:
            DamagedRunFileError: ``result.json`` cannot be read back.
        """
        if not self.result_file.exists():
            return None
        return read_json_file(self.result_file, remedy=REMEDY_RESUME)

    def set_status(self, status: str, **extra: Any) -> None:
        """Write ``status.json``; every status written after :meth:`start_attempt` carries the attempt's
        number, start time and the seconds spent by earlier attempts."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        atomic_write_json(self.status_file, {"status": status, "time": time.time(), **self._attempt, **extra})

    def start_attempt(self) -> Attempt:
        """Mark the run as running in a new attempt and return its :class:`Attempt`.

        An attempt is one process working on the run; a run stopped (interrupted, failed, killed) and
        resumed takes several. The seconds an earlier attempt spent are counted up to its last status
        (interrupted or failed) or, for an attempt killed without a word, up to the last file it wrote in
        the run directory (its latest checkpoint or metric): work that left nothing behind is not counted,
        since the resumed run repeats it.
        """
        number, spent = self._earlier_attempts()
        self._attempt = {"attempt": number + 1, "started": time.time(), "spent_before_s": spent}
        self.set_status("running")
        return Attempt(number + 1, spent, time.perf_counter())

    def _earlier_attempts(self) -> tuple[int, float]:
        try:
            previous = self.status()
        except DamagedRunFileError:
            return 0, 0.0
        if previous.get("status") not in ("running", "interrupted", "failed"):
            return 0, 0.0
        number = int(previous.get("attempt", 1))
        spent = float(previous.get("spent_before_s", 0.0))
        started = previous.get("started", previous.get("time"))  # older runs: "time" of the running status
        if not isinstance(started, int | float):
            return number, spent
        if previous["status"] == "running":  # killed: its last trace is the newest file it wrote
            files = (p for p in self.path.rglob("*") if p.is_file() and p != self.status_file)
            written = [p.stat().st_mtime for p in files]
            ended = max([started, *written])
        else:
            ended = float(previous.get("time", started))
        return number, spent + max(0.0, ended - started)

    def status(self) -> dict[str, Any]:
        """The status record (``{"status": "new"}`` before the run started).

        Raises:
            DamagedRunFileError: ``status.json`` cannot be read back.
        """
        if not self.status_file.exists():
            return {"status": "new"}
        payload = read_json_file(self.status_file, remedy=REMEDY_RESUME)
        if payload.get("status") not in STATUSES:
            raise DamagedRunFileError(
                self.status_file,
                f"status must be one of {STATUSES}, got {payload.get('status')!r}",
                REMEDY_RESUME,
            )
        return payload

    def is_complete(self) -> bool:
        """Whether the run completed and its result reads back (False when either file is damaged)."""
        try:
            return self.status().get("status") == "completed" and self.result() is not None
        except DamagedRunFileError:
            return False

    def damaged_files(self) -> list[DamagedRunFileError]:
        """The problems of the derived files (status, result, metrics), without raising."""
        problems = []
        for read in (self.status, self.result, self.metrics):
            try:
                read()
            except DamagedRunFileError as exc:
                problems.append(exc)
        return problems

    def _remove_stale_temporaries(self) -> None:
        """Remove temporary files left by a writer that was killed mid-write (see core.io.atomic_open)."""
        for folder in (self.path, self.checkpoints):
            if folder.is_dir():
                for stale in folder.glob(".*.tmp"):
                    stale.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


def _check_result(path: Path, payload: dict[str, Any]) -> None:
    problems = []
    if not isinstance(payload.get("experiment"), str):
        problems.append("no 'experiment' name")
    if payload.get("status") not in (*STATUSES, None):
        problems.append(f"unknown status {payload.get('status')!r}")
    if not isinstance(payload.get("claims", []), list):
        problems.append("'claims' is not a list")
    if problems:
        raise DamagedRunFileError(path, "; ".join(problems), REMEDY_RESUME)


@dataclass(frozen=True)
class ResultFile:
    """The outcome of reading one ``result.json`` without raising (see :func:`read_result_file`).

    Attributes:
        path: the result file.
        state: ``"ok"``, ``"missing"`` or ``"unreadable"``.
        result: the parsed result when ``state == "ok"``.
        reason: why it could not be read (``"unreadable"``), with the remedy.
    """

    path: Path
    state: Literal["ok", "missing", "unreadable"]
    result: dict[str, Any] | None = None
    reason: str | None = None

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def read_result_file(path: str | Path) -> ResultFile:
    """Read and validate a ``result.json`` (or the one in a run directory) without raising.

    Args:
        path: a ``result.json`` file or a run directory.

    Returns:
        A :class:`ResultFile`: ``ok`` with the result, ``missing``, or ``unreadable`` with the reason and
        the remedy (for a report that lists every run instead of crashing on a damaged one). A result must
        be a JSON object naming its ``experiment``, with a known ``status`` and a list of ``claims``.
    """
    file = Path(path)
    if file.is_dir():
        file = file / "result.json"
    if not file.exists():
        return ResultFile(file, "missing", reason=f"{file} does not exist")
    try:
        payload = read_json_file(file, remedy=REMEDY_RESUME)
        _check_result(file, payload)
    except DamagedRunFileError as exc:
        return ResultFile(file, "unreadable", reason=str(exc))
    return ResultFile(file, "ok", result=payload)


def iter_result_files(runs_dir: str | Path) -> Iterator[ResultFile]:
    """Every ``runs_dir/<experiment>/<run>/result.json``, read with :func:`read_result_file`, sorted."""
    for file in sorted(Path(runs_dir).glob("*/*/result.json")):
        yield read_result_file(file)


def _normalise(obj: Any) -> Any:
    """Compare configs as JSON would see them (tuples and lists alike)."""
    if isinstance(obj, dict):
        return {str(k): _normalise(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_normalise(v) for v in obj]
    return obj
