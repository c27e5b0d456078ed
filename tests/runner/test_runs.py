import pytest

from dltheory.runner.runs import RunDir, RunExistsError


def test_existing_run_refused_or_resumed(tmp_path):
    run = RunDir(tmp_path / "r", {"lr": 0.1, "depths": (1, 2)})
    run.log_metrics({"step": 1})
    with pytest.raises(RunExistsError, match="already holds a run; pass resume=True"):
        RunDir(tmp_path / "r", {"lr": 0.1, "depths": (1, 2)})
    again = RunDir(tmp_path / "r", {"lr": 0.1, "depths": [1, 2]}, resume=True)
    assert again.metrics() == [{"step": 1}]
    with pytest.raises(RunExistsError, match="different configuration"):
        RunDir(tmp_path / "r", {"lr": 0.2}, resume=True)


def test_layout_and_status(tmp_path):
    run = RunDir(tmp_path / "r", {"a": 1})
    assert run.figures.is_dir() and run.checkpoints.is_dir() and (run.path / "config.json").exists()
    assert run.status()["status"] == "new" and not run.is_complete()
    run.write_result({"ok": True})
    run.set_status("completed")
    assert run.is_complete() and RunDir.open(run.path).result() == {"ok": True}
    with pytest.raises(ValueError, match="status must be one of"):
        run.set_status("done")
    with pytest.raises(FileNotFoundError, match="no run at"):
        RunDir.open(tmp_path / "missing")
