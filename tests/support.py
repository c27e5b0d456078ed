"""Helpers shared by test modules (import as ``from support import ...``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

#: Debian's chromium, for the tests that render pages in a real headless browser (None when absent)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def has_dataset(name: str, files: tuple[str, ...]) -> bool:
    from dltheory.data.sources import find_dataset_dir

    return find_dataset_dir(name, files) is not None


MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def run_chromium(*args: str, cwd: Path, budget_ms: int, timeout: float) -> subprocess.CompletedProcess[str]:
    """Headless :data:`CHROMIUM` on ``args`` with a throw-away profile and HOME under ``cwd``, no network
    chatter, and ``budget_ms`` of virtual time for the page's scripts; output captured as text."""
    assert CHROMIUM is not None, "chromium is not installed"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--virtual-time-budget={budget_ms}",
        f"--user-data-dir={cwd / 'profile'}",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HOME": str(cwd)},
    )
