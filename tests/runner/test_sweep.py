import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cells import log_of, square_or_fail  # noqa: E402

from dltheory.runner.sweep import cell_key, grid_product, sweep  # noqa: E402


def test_grid_product_order():
    assert grid_product(a=[1, 2], b=["x"]) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]


def test_failed_cell_recorded_and_sweep_goes_on(tmp_path):
    grid = [{"x": 1}, {"x": 2, "fail": True}, {"x": 3}]
    results = sweep(square_or_fail, grid, out=tmp_path)
    assert [r.status for r in results] == ["ok", "failed", "ok"]
    assert results[2].result["square"] == 9
    assert "RuntimeError: cell x=2 failed on purpose" in results[1].error
    assert (tmp_path / "cells" / f"{cell_key(grid[1])}.json").exists()


def test_resume_skips_completed_cells(tmp_path):
    grid = [{"x": 1.0}, {"x": 2.0}]
    sweep(log_of, grid[:1], out=tmp_path)
    calls = []

    def counting(x):
        calls.append(x)
        return log_of(x)

    results = sweep(counting, grid, out=tmp_path)
    assert calls == [2.0]
    assert [r.result["log"] for r in results] == pytest.approx([0.0, 0.6931471805599453])


def test_failed_cells_retried_unless_told_not_to(tmp_path):
    sweep(square_or_fail, [{"x": 2, "fail": True}], out=tmp_path)
    assert (
        sweep(square_or_fail, [{"x": 2, "fail": True}], out=tmp_path, retry_failed=False)[0].status
        == "failed"
    )


def test_process_pool_runs_cells_in_other_processes(tmp_path):
    results = sweep(square_or_fail, [{"x": i} for i in range(4)], out=tmp_path, workers=2)
    assert [r.result["square"] for r in results] == [0, 1, 4, 9]
    assert all(r.result["pid"] != os.getpid() for r in results)


def test_bad_grid_rejected(tmp_path):
    with pytest.raises(TypeError, match="grid must be a list of dicts"):
        sweep(log_of, {"x": 1}, out=tmp_path)
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        sweep(log_of, [], out=tmp_path, workers=0)


def test_ray_local_instance(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="the 'cluster' extra (ray) is not installed")
    # local Ray workers inherit the driver's environment: let them import the test's cell module
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        results = sweep(square_or_fail, [{"x": 3}, {"x": 4, "fail": True}], out=tmp_path, ray_address="local")
    finally:
        ray.shutdown()
    assert results[0].status == "ok" and results[0].result["square"] == 9
    assert results[1].status == "failed" and "failed on purpose" in results[1].error


def test_damaged_cell_file_is_computed_again(tmp_path, caplog):
    grid = [{"x": 1.0}, {"x": 2.0}]
    sweep(log_of, grid, out=tmp_path)
    damaged = tmp_path / "cells" / f"{cell_key(grid[1])}.json"
    damaged.write_text('{"params": {"x": 2.0}, "status": "o')
    calls = []

    def counting(x):
        calls.append(x)
        return log_of(x)

    results = sweep(counting, grid, out=tmp_path)
    assert calls == [2.0] and results[1].status == "ok"
    assert "is damaged" in caplog.text and str(damaged) in caplog.text
