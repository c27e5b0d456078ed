"""Shared test set-up: the data search path points at ../shared/data when the caller has not set it."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy loads BLAS: 2 xdist workers on 2 cores
from pathlib import Path  # noqa: E402

import matplotlib  # noqa: E402
import pytest  # noqa: E402

matplotlib.use("Agg")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "DLTHEORY_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["DLTHEORY_DATA"] = str(SHARED_DATA)


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A private, empty user cache and a data path with nothing on it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DLTHEORY_DATA", str(tmp_path / "data"))
    return tmp_path
