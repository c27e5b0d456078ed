import os

import numpy as np
import pytest

from dltheory.core.io import append_jsonl, atomic_open, atomic_write_json, read_json, read_jsonl, to_json


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_json(target, {"x": np.float64(2.5), "y": np.arange(3)})
    assert read_json(target) == {"x": 2.5, "y": [0, 1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_write_leaves_original_and_no_temp_file(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("original")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("partial")
        raise RuntimeError("crash in the middle of a write")
    assert target.read_text() == "original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_written_files_respect_umask(tmp_path):
    path = atomic_write_json(tmp_path / "m.json", {})
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    current = os.umask(0)
    os.umask(current)
    return current


def test_non_finite_floats_become_strings():
    assert (
        to_json({"a": float("nan"), "b": [float("inf"), -np.inf]}, indent=None)
        == '{"a": "nan", "b": ["inf", "-inf"]}'
    )


def test_jsonl_skips_truncated_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"step": 1})
    append_jsonl(path, {"step": 2})
    with open(path, "a") as handle:
        handle.write('{"step": 3')  # a crash mid-line
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]


def test_atomic_open_rejects_read_mode(tmp_path):
    with pytest.raises(ValueError, match="mode"), atomic_open(tmp_path / "x", "r"):
        pass
