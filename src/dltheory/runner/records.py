"""Recorded runs: completed runs copied into the repository's store, with their provenance.

The store (``docs/results`` of a source checkout) holds one directory per record::

    docs/results/<experiment>/<record>/
        result.json    the run's own result file, byte for byte
        figures/*.png  the run's figures
        record.json    provenance: command, profile, overrides, seed, commit, date, wall time,
                       versions, machine, verdict, status (see :data:`RECORD_FIELDS`)

No checkpoints or metrics are copied: the store lives in git and stays small. A record is written into a
temporary sibling directory and renamed into place, so a crash never leaves a half-written record, and an
existing record is replaced only on request.

To be recordable a run's ``result.json`` carries the provenance fields of :data:`PROVENANCE_FIELDS`:
:func:`dltheory.experiments.execute.run_experiment` writes them (through :func:`run_provenance`), and a
standalone script (a benchmark writing its own run directory) adds ``run_provenance(...)`` and
``environment_info()`` to its result the same way.

Examples:
    >>> command_line(["benchmarks/xiao_depth10k.py", "--depth", "1000"])
    'python benchmarks/xiao_depth10k.py --depth 1000'
    >>> sorted(run_provenance({"steps": "10"}, argv=["dltheory", "run", "x"]))
    ['command', 'commit', 'commit_dirty', 'date', 'overrides']
"""

from __future__ import annotations

import datetime
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dltheory.core.io import atomic_write_bytes, atomic_write_json, read_json
from dltheory.runner.runs import DamagedRunFileError, read_json_file

#: the keys of ``record.json``, in order
RECORD_FIELDS: tuple[str, ...] = (
    "experiment",
    "record",
    "command",
    "profile",
    "overrides",
    "seed",
    "commit",
    "date",
    "wall_time_s",
    "versions",
    "machine",
    "verdict",
    "status",
)
#: the fields a run's ``result.json`` must carry to be recorded (``environment.*``: inside "environment")
PROVENANCE_FIELDS: tuple[str, ...] = (
    "experiment",
    "status",
    "verdict",
    "profile",
    "seed",
    "overrides",
    "command",
    "commit",
    "date",
    "wall_time_s",
    "environment.dltheory",
    "environment.numpy",
    "environment.python",
    "environment.cpu_model",
    "environment.cpu_count",
)
#: the largest figure copied into the store (the store lives in git)
MAX_FIGURE_BYTES = 2_000_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_GIT_TIMEOUT_S = 10.0


class RecordError(ValueError):
    """A run that cannot be recorded, or a record that cannot be read; the message says why and what to do."""


class RecordExistsError(FileExistsError):
    """Raised when a record of that name exists and replacing it was not requested."""


class DamagedRecordFileError(RecordError, DamagedRunFileError):
    """A file that a record is made from or read from (``result.json``, ``status.json``, ``record.json``)
    cannot be read back: truncated, not JSON or not a JSON object.

    Both a :class:`RecordError` (the run or record cannot be used) and a
    :class:`~dltheory.runner.runs.DamagedRunFileError`, so the command line exits with
    :attr:`~dltheory.exitcodes.ExitCode.DAMAGED_RUN` for it.

    Attributes:
        path: the damaged file.
        reason: what is wrong with it.
        remedy: what the user can do (may be empty).
    """

    def __init__(self, path: str | Path, reason: str, remedy: str = ""):
        self.path = Path(path)
        self.reason = reason
        self.remedy = remedy
        ValueError.__init__(self, f"{self.path} is damaged: {reason}" + (f"; {remedy}" if remedy else ""))


@dataclass
class Unreadable:
    """A run or record that the report cannot read: the file, what is wrong, and how to fix it."""

    path: Path
    problem: str
    remedy: str


@dataclass
class Record:
    """One record of the store, as read by :func:`load_record`.

    Attributes:
        path: the record's directory (``<store>/<experiment>/<record>``).
        meta: the content of ``record.json``.
        result: the run's ``result.json``.
        figures: the record's figures, relative to ``path`` (``figures/...png``).
    """

    path: Path
    meta: dict[str, Any]
    result: dict[str, Any]
    figures: list[str] = field(default_factory=list)

    @property
    def experiment(self) -> str:
        return str(self.meta["experiment"])

    @property
    def name(self) -> str:
        return str(self.meta["record"])

    @property
    def anchor(self) -> str:
        """The HTML id of the record's provenance in the report."""
        return f"record-{self.experiment}-{self.name}"


# ----------------------------------------------------------------------------------------------------------
# provenance recorded at run time


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command line that started this process, as one could type it again.

    The program is shortened to its name (``dltheory``, not the virtual environment's path), a Python
    script is written ``python SCRIPT`` (relative to the working directory when inside it) and
    ``python -m PACKAGE`` stays so.

    Args:
        argv: the arguments (default :data:`sys.argv`).

    Returns:
        The shell-quoted command line (``""`` if ``argv`` is empty).
    """
    args = list(sys.argv if argv is None else argv)
    if not args:
        return ""
    program = args[0]
    path = Path(program)
    if path.name == "__main__.py":
        head = ["python", "-m", path.parent.name]
    elif program == "-c":
        head = ["python", "-c"]
    elif path.suffix == ".py":
        if path.is_absolute():
            try:
                path = path.relative_to(Path.cwd())
            except ValueError:
                pass
        head = ["python", str(path)]
    else:
        head = [path.name]
    return shlex.join(head + args[1:])


def source_checkout() -> Path | None:
    """The git checkout this ``dltheory`` was imported from (``<root>/src/dltheory``), else None."""
    import dltheory

    package = Path(dltheory.__file__).resolve().parent
    root = package.parent.parent
    if package.parent.name == "src" and (root / "pyproject.toml").is_file() and (root / ".git").exists():
        return root
    return None


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=_GIT_TIMEOUT_S
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_commit() -> tuple[str | None, bool | None]:
    """The commit of the running code and whether its tracked sources differ from it.

    Returns:
        ``(commit, dirty)``: the ``HEAD`` hash of the source checkout and whether tracked files under
        ``src/`` or ``benchmarks/`` have uncommitted changes; ``(None, None)`` when ``dltheory`` is not
        imported from a git checkout (an installed wheel) or git is unavailable.
    """
    root = source_checkout()
    if root is None:
        return None, None
    head = _git(root, "rev-parse", "HEAD")
    if not head:
        return None, None
    status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", "src", "benchmarks")
    return head.strip(), (None if status is None else bool(status.strip()))


def now_iso() -> str:
    """The current local time in ISO 8601 with its UTC offset, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")


def run_provenance(
    overrides: Mapping[str, Any] | None = None,
    *,
    argv: Sequence[str] | None = None,
    source: tuple[str | None, bool | None] | None = None,
) -> dict[str, Any]:
    """The provenance fields a run adds to its ``result.json`` when it completes (or fails).

    Args:
        overrides: the configuration overrides (``--set key=value``) the run was started with.
        argv: the command line (default :data:`sys.argv`).
        source: ``(commit, dirty)`` of the code the run executed, as :func:`git_commit` read it when the
            run (its last attempt) started; default: read now. A process runs the code it imported, so
            a commit made while a long run goes must not be credited with its result.

    Returns:
        ``{"command", "commit", "commit_dirty", "overrides", "date"}``; ``date`` is now (call it when
        the run completes), ``commit`` None outside a git checkout.
    """
    commit, dirty = git_commit() if source is None else source
    return {
        "command": command_line(argv),
        "commit": commit,
        "commit_dirty": dirty,
        "overrides": {str(k): v for k, v in (overrides or {}).items()},
        "date": now_iso(),
    }


# ----------------------------------------------------------------------------------------------------------
# validation


def result_problems(payload: Any) -> list[str]:
    """What keeps a ``result.json`` payload from being shown in a report (empty when it is fine).

    Args:
        payload: the decoded JSON.

    Returns:
        One sentence per problem (missing ``experiment``, malformed ``claims`` or ``figures``).
    """
    if not isinstance(payload, dict):
        return [f"holds a {type(payload).__name__}, not a JSON object"]
    problems = []
    if not isinstance(payload.get("experiment"), str) or not payload.get("experiment"):
        problems.append("missing field: experiment")
    claims = payload.get("claims", [])
    if not isinstance(claims, list) or not all(
        isinstance(c, dict) and isinstance(c.get("name"), str) for c in claims
    ):
        problems.append("field claims is not a list of claims with names")
    figures = payload.get("figures", [])
    if not isinstance(figures, list) or not all(isinstance(f, str) for f in figures):
        problems.append("field figures is not a list of paths")
    return problems


def missing_provenance(payload: Mapping[str, Any]) -> list[str]:
    """The :data:`PROVENANCE_FIELDS` absent from a result payload (``commit`` and ``seed`` may be null)."""
    missing = []
    environment = payload.get("environment")
    for name in PROVENANCE_FIELDS:
        if name.startswith("environment."):
            if not isinstance(environment, Mapping) or name.split(".", 1)[1] not in environment:
                missing.append(name)
        elif name not in payload:
            missing.append(name)
    return missing


def read_result(path: Path) -> dict[str, Any]:
    """Read a ``result.json`` that a report can show.

    Raises:
        RecordError: the file is missing or lacks fields; the message names the file and the problem.
        DamagedRecordFileError: the file is damaged (truncated, not JSON, not an object); a
            :class:`RecordError` too.
    """
    payload = _read_object(path)
    problems = result_problems(payload)
    if problems:
        raise RecordError(f"{path} {'; '.join(problems)}")
    return dict(payload)


def _read_object(path: Path) -> Any:
    """The JSON object in ``path``: :class:`RecordError` when it is missing, :class:`DamagedRecordFileError`
    when it cannot be read back."""
    try:
        return read_json_file(path, remedy="")
    except FileNotFoundError:
        raise RecordError(f"{path} is missing") from None
    except DamagedRunFileError as exc:
        raise DamagedRecordFileError(path, exc.reason) from None


def problem_text(error: Exception, path: Path) -> str:
    """The message of ``error`` without a leading ``path`` (the report shows the path in its own column)."""
    message = str(error)
    for prefix in sorted({str(path), str(path.parent)}, key=len, reverse=True):
        if message.startswith(prefix + "/") or message.startswith(prefix + " "):
            return message[len(prefix) :].lstrip("/ ")
    return message


def _check_name(argument: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or value in (".", ".."):
        raise ValueError(
            f"{argument} must be 1-100 letters, digits, '.', '_' or '-' starting with a letter or digit, "
            f"got {value!r}"
        )
    return value


# ----------------------------------------------------------------------------------------------------------
# writing records


def default_store() -> Path | None:
    """The store of the source checkout (``<checkout>/docs/results``) when it exists, else None."""
    root = source_checkout()
    if root is not None and (root / "docs" / "results").is_dir():
        return root / "docs" / "results"
    return None


def make_record(result: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The ``record.json`` of a result payload that carries the :data:`PROVENANCE_FIELDS`.

    Args:
        result: the run's ``result.json`` content.
        name: the record's name.

    Returns:
        A dict with the keys of :data:`RECORD_FIELDS`, plus ``attempts`` (how many processes worked on a
        resumed run; ``wall_time_s`` sums them) when the result says.

    Raises:
        RecordError: provenance fields are missing (they are named).
    """
    missing = missing_provenance(result)
    if missing:
        raise RecordError(f"the result lacks the provenance fields {missing}")
    env = result["environment"]
    record = {
        "experiment": result["experiment"],
        "record": name,
        "command": result["command"],
        "profile": result["profile"],
        "overrides": dict(result["overrides"] or {}),
        "seed": result["seed"],
        "commit": result["commit"],
        "date": result["date"],
        "wall_time_s": result["wall_time_s"],
        "versions": {k: env.get(k) for k in ("dltheory", "torch", "numpy", "python")},
        "machine": {
            "cpu_model": env.get("cpu_model"),
            "cpu_count": env.get("cpu_count"),
            "torch_threads": env.get("torch_threads"),
            "gpu": env.get("gpu"),
        },
        "verdict": result["verdict"],
        "status": result["status"],
    }
    if "attempts" in result:
        record["attempts"] = result["attempts"]
    return record


def _run_figures(run_dir: Path, result: Mapping[str, Any]) -> list[str]:
    listed = result.get("figures")
    if listed:
        return [str(f) for f in listed]
    return sorted(str(p.relative_to(run_dir)) for p in (run_dir / "figures").glob("*.png"))


def _checked_figure(base: Path, relative: str) -> Path:
    path = (base / relative).resolve()
    if base.resolve() not in path.parents or path.suffix.lower() != ".png":
        raise RecordError(f"figure {relative!r} is not a PNG file inside {base}")
    return path


def record_run(
    run_dir: str | Path,
    store: str | Path | None = None,
    name: str | None = None,
    *,
    replace: bool = False,
    max_figure_bytes: int = MAX_FIGURE_BYTES,
) -> Path:
    """Copy a completed run into the store as ``<store>/<experiment>/<name>/``.

    Copies ``result.json`` and the run's PNG figures (no checkpoints, no metrics) and writes
    ``record.json`` (:func:`make_record`). The record is assembled in a temporary sibling directory and
    renamed into place: it appears whole or not at all.

    Args:
        run_dir: the run directory (``runs/<experiment>/<run-name>``).
        store: the store (default :func:`default_store`, the checkout's ``docs/results``).
        name: the record's name (default the run directory's name).
        replace: replace an existing record of that name (otherwise refused).
        max_figure_bytes: refuse figures larger than this (the store lives in git).

    Returns:
        The record's directory.

    Raises:
        ValueError: ``run_dir`` is not a run directory, ``name`` is not a valid name, ``store`` is a
            file (or lies under one), or no store is given outside a source checkout.
        RecordError: the run is incomplete or failed (or has no ``result.json``), its result lacks
            provenance fields (named) or a figure is missing or too large.
        DamagedRecordFileError: the run's ``result.json`` or ``status.json`` cannot be read back (a
            :class:`RecordError` too).
        RecordExistsError: the record exists and ``replace`` is false.

    Examples:
        >>> record_run("runs/foundation-mnist-linear/paper", name="paper-cpu")  # doctest: +SKIP
        PosixPath('.../docs/results/foundation-mnist-linear/paper-cpu')
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise ValueError(f"run_dir must be a run directory, got {str(run_dir)!r} (not a directory)")
    if store is None:
        store = default_store()
        if store is None:
            raise ValueError(
                "store: none given and dltheory does not run from a source checkout with docs/results; "
                "pass the store directory (CLI: --store DIR)"
            )
    store = Path(store)
    if store.exists() and not store.is_dir():
        raise ValueError(f"store must be a directory (created when missing), got {str(store)!r}: a file")
    name = _check_name("name", run.name if name is None else name)
    status_file = run / "status.json"
    if status_file.exists():
        try:
            status = read_json(status_file).get("status")
        except (OSError, ValueError, AttributeError) as exc:
            raise DamagedRecordFileError(status_file, str(exc), "is the run complete?") from None
        if status != "completed":
            raise RecordError(
                f"run {run} is not completed (status {status!r}); only a completed run can be recorded"
            )
    result_file = run / "result.json"
    if not result_file.exists():
        raise RecordError(
            f"run_dir {str(run)!r} has no result.json; only a completed run (runs/EXPERIMENT/RUN-NAME) "
            "can be recorded"
        )
    result = read_result(result_file)
    if result.get("status") != "completed":
        raise RecordError(
            f"run {run} did not complete (result status {result.get('status')!r}); only a completed run "
            "can be recorded"
        )
    missing = missing_provenance(result)
    if missing:
        raise RecordError(
            f"{result_file} lacks the provenance fields {missing}; runs made by `dltheory run` or "
            "`dltheory reproduce` record them, a standalone script adds run_provenance() and "
            "environment_info() to its result (see dltheory.runner.records)"
        )
    experiment = _check_name("experiment (from result.json)", result["experiment"])
    figures = _run_figures(run, result)
    sources = []
    for relative in figures:
        source = _checked_figure(run, relative)
        if not source.is_file():
            raise RecordError(f"figure {relative} listed in {result_file} is missing")
        size = source.stat().st_size
        if size > max_figure_bytes:
            raise RecordError(
                f"figure {source} has {size} bytes, more than max_figure_bytes={max_figure_bytes}; "
                "save it at a lower dpi before recording"
            )
        sources.append((relative, source))
    record = make_record(result, name)

    target = store / experiment / name
    if target.exists() and not replace:
        raise RecordExistsError(
            f"record {target} already exists; choose another name (CLI: --name) or replace it (--replace)"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(
            f"store must be a directory (created when missing), got {str(store)!r}: it or "
            f"{target.parent} lies under a file"
        ) from None
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=target.parent))
    old: Path | None = None
    try:
        atomic_write_bytes(staging / "result.json", result_file.read_bytes())
        for relative, source in sources:
            atomic_write_bytes(staging / relative, source.read_bytes())
        atomic_write_json(staging / "record.json", record)
        os.chmod(staging, 0o777 & ~_umask())
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=target.parent))
            os.replace(target, old)
        try:
            os.rename(staging, target)
        except OSError:
            if old is not None:
                os.replace(old, target)
                old = None
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(target.parent)
    return target


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------------------
# reading records


def load_record(path: str | Path) -> Record:
    """Read one record directory.

    Args:
        path: the record's directory (``<store>/<experiment>/<record>``).

    Returns:
        The :class:`Record`.

    Raises:
        RecordError: ``record.json`` or ``result.json`` is missing, damaged (a
            :class:`DamagedRecordFileError`) or lacks fields.
    """
    directory = Path(path)
    meta_file = directory / "record.json"
    meta = _read_object(meta_file)
    if not isinstance(meta, dict):
        raise RecordError(f"{meta_file} holds a {type(meta).__name__}, not a JSON object")
    missing = [k for k in RECORD_FIELDS if k not in meta]
    if missing:
        raise RecordError(f"{meta_file} lacks the fields {missing}")
    result = read_result(directory / "result.json")
    if result["experiment"] != meta["experiment"]:
        raise RecordError(
            f"{meta_file} names experiment {meta['experiment']!r} but result.json {result['experiment']!r}"
        )
    return Record(directory, meta, result, _run_figures(directory, result))


def scan_records(store: str | Path) -> tuple[list[Record], list[Unreadable]]:
    """Every record under ``store/<experiment>/<record>/``, and the ones that cannot be read.

    Directories holding neither ``record.json`` nor ``result.json`` (other files kept in the store,
    e.g. benchmark results) and hidden ones (a record being written) are ignored.

    Returns:
        ``(records, unreadable)``, records sorted by experiment and name.
    """
    records: list[Record] = []
    unreadable: list[Unreadable] = []
    root = Path(store)
    for directory in sorted(root.glob("*/*/")):
        if directory.name.startswith(".") or directory.parent.name.startswith("."):
            continue
        if not ((directory / "record.json").exists() or (directory / "result.json").exists()):
            continue
        try:
            records.append(load_record(directory))
        except RecordError as exc:
            unreadable.append(
                Unreadable(
                    directory,
                    problem_text(exc, directory),
                    f"record the run again (dltheory record RUN_DIR --name {directory.name} --store "
                    f"{root} --replace) or delete {directory}",
                )
            )
    return records, unreadable
