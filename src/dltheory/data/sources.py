"""Where data sets are looked for, and how missing files are downloaded.

Search path, in order: every directory in ``DLTHEORY_DATA`` (``os.pathsep``-separated), the user cache
``$XDG_CACHE_HOME/dltheory`` (default ``~/.cache/dltheory``), ``/usr/share/datasets``. A data set lives
in a sub-directory named after it (``mnist/``, ``fashion-mnist/``, ...).

Downloads are verified against sha256 digests, written atomically (a corrupted or interrupted download
never leaves a file behind) and show a progress bar when asked.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from dltheory.core.io import atomic_open
from dltheory.core.progress import progress_bar


class DataNotFoundError(FileNotFoundError):
    """A data set's files are neither on the search path nor downloadable."""


@dataclass(frozen=True)
class RemoteFile:
    """A file of a data set: its name, the mirrors it can be fetched from and its sha256 digest."""

    name: str
    urls: tuple[str, ...]
    sha256: str


def search_path() -> list[Path]:
    """Directories searched for data sets, in order."""
    paths = [Path(p) for p in os.environ.get("DLTHEORY_DATA", "").split(os.pathsep) if p]
    paths.append(cache_dir())
    paths.append(Path("/usr/share/datasets"))
    return paths


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dltheory"


def find_dataset_dir(dataset: str, required: tuple[str, ...]) -> Path | None:
    """First directory ``<root>/<dataset>`` on the search path that holds every required file."""
    for root in search_path():
        candidate = root / dataset
        if all((candidate / name).exists() for name in required):
            return candidate
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    remote: RemoteFile, destination_dir: Path, *, progress: bool = False, timeout: float = 60.0
) -> Path:
    """Fetch ``remote`` into ``destination_dir``, trying each mirror in turn.

    The bytes are hashed while streaming to a temporary file; only a file whose sha256 matches is moved
    into place. Raises :class:`DataNotFoundError` listing every mirror's failure otherwise.
    """
    errors = []
    target = destination_dir / remote.name
    for url in remote.urls:
        try:
            _fetch_verified(url, target, remote.sha256, progress=progress, timeout=timeout)
            return target
        except (urllib.error.URLError, OSError, ValueError) as exc:
            errors.append(f"{url}: {exc}")
    raise DataNotFoundError(f"could not download {remote.name}: " + "; ".join(errors))


def _fetch_verified(url: str, target: Path, sha256: str, *, progress: bool, timeout: float) -> None:
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as response, atomic_open(target, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with ExitStack() as stack:
            bar = stack.enter_context(progress_bar(f"downloading {target.name}", total)) if progress else None
            for chunk in iter(lambda: response.read(1 << 16), b""):
                digest.update(chunk)
                out.write(chunk)
                if bar is not None:
                    bar.advance(len(chunk))
        if digest.hexdigest() != sha256:
            raise ValueError(f"sha256 mismatch (expected {sha256}, got {digest.hexdigest()}); file discarded")


def locate(
    dataset: str,
    files: tuple[RemoteFile, ...],
    *,
    allow_download: bool = True,
    progress: bool = False,
) -> Path:
    """Directory holding all ``files`` of ``dataset``: found on the search path, or downloaded into the
    user cache (when ``allow_download`` and the environment variable ``DLTHEORY_OFFLINE`` is unset)."""
    names = tuple(f.name for f in files)
    found = find_dataset_dir(dataset, names)
    if found is not None:
        return found
    looked = ", ".join(str(p / dataset) for p in search_path())
    offline = os.environ.get("DLTHEORY_OFFLINE", "") not in ("", "0")
    if not allow_download or offline or not all(f.urls for f in files):
        raise DataNotFoundError(
            f"data set {dataset!r} not found; looked in: {looked}. Put the files {list(names)} into one of "
            f"these directories (or a directory listed in DLTHEORY_DATA)."
        )
    destination = cache_dir() / dataset
    try:
        for remote in files:
            if not (destination / remote.name).exists():
                download(remote, destination, progress=progress)
    except DataNotFoundError as exc:
        raise DataNotFoundError(
            f"data set {dataset!r} not found (looked in: {looked}) and the download failed: {exc}. "
            f"Put the files {list(names)} into one of these directories to use it offline."
        ) from exc
    return destination
