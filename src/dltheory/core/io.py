"""Atomic file writes: a reader never sees a half-written file, a crash never truncates one.

Every write goes to a temporary file in the destination directory, is flushed and fsync'ed, and is then
moved into place with ``os.replace`` (atomic on POSIX within one file system).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def sanitize_json(obj: Any) -> Any:
    """Replace non-finite floats by strings ("nan", "inf", "-inf") so the JSON is standard."""
    if isinstance(obj, float | np.floating):
        value = float(obj)
        if np.isfinite(value):
            return value
        return "nan" if np.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): sanitize_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [sanitize_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return sanitize_json(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def to_json(obj: Any, indent: int | None = 2) -> str:
    """Serialise ``obj`` to standard JSON (numpy types converted, non-finite floats as strings)."""
    return json.dumps(sanitize_json(obj), indent=indent, default=_json_default, allow_nan=False)


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; on success move it onto ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.chmod(tmp_name, 0o666 & ~_umask())
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj) + "\n")


def atomic_save(path: str | os.PathLike[str], save: Callable[[IO[bytes]], None]) -> Path:
    """Atomically write a binary file produced by ``save(handle)`` (e.g. ``torch.save``, ``savefig``)."""
    with atomic_open(path, "wb") as handle:
        save(handle)
    return Path(path)


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path) as handle:
        return json.load(handle)


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one JSON line and fsync it (a line is either fully present or absent after a crash;
    :func:`read_jsonl` drops a truncated last line)."""
    line = to_json(record, indent=None) + "\n"
    with open(path, "a") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read JSON lines, skipping a trailing partial line left by a crash."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            if line.strip():
                records.append(json.loads(line))
    return records
