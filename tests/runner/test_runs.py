import pytest

from dltheory.runner.runs import (
    DamagedRunFileError,
    RunDir,
    RunExistsError,
    iter_result_files,
    read_result_file,
)


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


def test_damaged_files_are_named_with_their_remedy(tmp_path):
    run = RunDir(tmp_path / "r", {"a": 1})
    run.set_status("completed")
    run.write_result({"experiment": "x", "status": "completed", "claims": []})
    (run.path / "result.json").write_text('{"experiment": "x", "sta')
    with pytest.raises(
        DamagedRunFileError, match=r"result\.json is damaged \(invalid JSON.*--resume to recompute"
    ):
        run.result()
    assert not run.is_complete()  # a damaged result is not a finished run
    run.status_file.write_text("[1, 2]")
    with pytest.raises(
        DamagedRunFileError, match=r"status\.json is damaged \(expected a JSON object, found list"
    ):
        run.status()
    run.status_file.write_text('{"status": "done"}')
    with pytest.raises(DamagedRunFileError, match="status must be one of"):
        run.status()
    assert {p.path.name for p in run.damaged_files()} == {"status.json", "result.json"}
    (run.path / "config.json").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(DamagedRunFileError, match=r"config\.json is damaged .*cannot be recomputed.*--name"):
        RunDir(run.path, {"a": 1}, resume=True)
    (run.path / "config.json").write_text("")
    with pytest.raises(DamagedRunFileError, match=r"config\.json is damaged \(empty\)"):
        RunDir.open(run.path)


def test_read_result_file_never_raises(tmp_path):
    run = RunDir(tmp_path / "exp" / "r", {"a": 1})
    assert read_result_file(run.path).state == "missing"
    run.write_result({"experiment": "exp", "status": "completed", "claims": [], "verdict": "agree"})
    good = read_result_file(run.path)
    assert good.ok and good.result["verdict"] == "agree" and good.run_dir == run.path
    run.write_result({"status": "completed", "claims": {}})
    bad = read_result_file(run.result_file)
    assert (
        bad.state == "unreadable"
        and "no 'experiment' name" in bad.reason
        and "'claims' is not a list" in bad.reason
    )
    (run.path / "result.json").write_text('{"experiment": "exp", "claims": [\x01')
    listed = list(iter_result_files(tmp_path))
    assert [r.state for r in listed] == ["unreadable"] and "invalid JSON" in listed[0].reason
    assert str(run.result_file) in listed[0].reason and "--resume" in listed[0].reason


def test_metric_append_drops_a_partial_line_left_by_a_killed_writer(tmp_path):
    run = RunDir(tmp_path / "r", {"a": 1})
    run.log_metrics({"step": 1})
    with open(run.metrics_file, "a") as handle:
        handle.write('{"step": 2, "lo')  # a writer killed mid-line
    assert run.metrics() == [{"step": 1}]  # the partial last line is not damage
    run.log_metrics({"step": 2})
    assert run.metrics() == [{"step": 1}, {"step": 2}]
    assert run.metrics_file.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_resume_removes_temporaries_of_a_killed_writer(tmp_path):
    run = RunDir(tmp_path / "r", {"a": 1})
    stale = [run.path / ".result.json.abc.tmp", run.checkpoints / ".train.pt.xyz.tmp"]
    for file in stale:
        file.write_bytes(b"half")
    RunDir.open(run.path)  # reading leaves them
    assert all(f.exists() for f in stale)
    RunDir(run.path, {"a": 1}, resume=True)
    assert not any(f.exists() for f in stale)


def _status_at(run: RunDir, **fields) -> None:
    """Overwrite status.json as an earlier process left it (times relative to now)."""
    import json
    import time

    now = time.time()
    payload = {k: now + v if k in ("time", "started") else v for k, v in fields.items()}
    run.status_file.write_text(json.dumps(payload))


def test_attempts_sum_the_time_of_a_stopped_and_resumed_run(tmp_path):
    run = RunDir(tmp_path / "r", {"a": 1})
    first = run.start_attempt()
    assert (first.number, first.spent_before_s) == (1, 0.0)
    assert run.status()["status"] == "running" and run.status()["attempt"] == 1
    _status_at(run, status="interrupted", time=-20.0, attempt=1, started=-80.0, spent_before_s=0.0)
    second = RunDir(tmp_path / "r", {"a": 1}, resume=True).start_attempt()
    assert second.number == 2 and second.spent_before_s == pytest.approx(60.0, abs=1.0)
    assert second.total_seconds() >= second.spent_before_s


def test_a_killed_attempt_counts_until_the_last_file_it_wrote(tmp_path):
    import os
    import time

    run = RunDir(tmp_path / "r", {"a": 1})
    checkpoint = run.checkpoints / "model.pt"
    checkpoint.write_bytes(b"x")
    now = time.time()
    os.utime(checkpoint, (now - 30.0, now - 30.0))
    os.utime(run.path / "config.json", (now - 200.0, now - 200.0))
    # an older dltheory wrote only "time" (the start) with the running status, and the process was killed
    _status_at(run, status="running", time=-100.0)
    resumed = RunDir(tmp_path / "r", {"a": 1}, resume=True).start_attempt()
    assert resumed.number == 2 and resumed.spent_before_s == pytest.approx(70.0, abs=1.0)
    # a damaged status counts as no earlier attempt instead of failing the run
    run.status_file.write_text("{not json")
    assert RunDir(tmp_path / "r", {"a": 1}, resume=True).start_attempt().number == 1


def test_a_completed_or_new_run_starts_at_attempt_one(tmp_path):
    run = RunDir(tmp_path / "r", {"a": 1})
    assert run.start_attempt().number == 1
    run.set_status("completed")
    assert run.status()["attempt"] == 1  # the attempt's fields stay on every later status
    assert RunDir(tmp_path / "r", {"a": 1}, resume=True).start_attempt().spent_before_s == 0.0
