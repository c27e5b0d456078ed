"""The store of recorded runs: `dltheory record` on a real tiny run (files, provenance), refusals
(incomplete, failed, without provenance, damaged, existing record), atomicity, and the provenance helpers."""

import dataclasses
import datetime
import json
import os
import subprocess
from pathlib import Path

import numpy
import pytest
import torch
from typer.testing import CliRunner

import dltheory
from dltheory.cli import app
from dltheory.core.figures import new_figure, save_figure
from dltheory.exitcodes import ExitCode
from dltheory.experiments.base import Claim, Result
from dltheory.experiments.execute import environment_info, run_experiment
from dltheory.experiments.registry import experiments
from dltheory.runner import records as records_module
from dltheory.runner.records import (
    PROVENANCE_FIELDS,
    RECORD_FIELDS,
    DamagedRecordFileError,
    RecordError,
    RecordExistsError,
    command_line,
    default_store,
    load_record,
    record_run,
    run_provenance,
    scan_records,
    source_checkout,
)
from dltheory.runner.runs import RunDir

runner = CliRunner()
EXPERIMENT = "signalprop-phase-diagram"  # needs no data set; the tiny profile runs in about a second


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    done = run_experiment(EXPERIMENT, "tiny", out=out, overrides={"grid": "12"}, run_name="tiny")
    assert done.status == "completed"
    return done.path


def _synthetic_run(root: Path, *, status: str = "completed", drop: tuple[str, ...] = ()) -> Path:
    """A run directory as a standalone script writes it: result, figure, provenance fields."""
    run = RunDir(root / "demo-exp" / "run1", {"x": 1})
    fig, ax = new_figure(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    save_figure(fig, run.figures / "curve.png", dpi=40)
    payload = Result("demo-exp", [Claim("depth 10000 trains", 0.99, 0.98, 0.05, True)]).to_dict()
    payload.update(
        status=status,
        paper="xiao",
        profile="cpu-1000",
        seed=3,
        wall_time_s=12.5,
        figures=["figures/curve.png"],
        environment=environment_info(),
        **run_provenance({"depth": "1000"}, argv=["benchmarks/demo.py", "--depth", "1000"]),
    )
    for key in drop:
        payload.pop(key)
    run.write_result(payload)
    run.set_status(status)
    return run.path


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_record_copies_result_figures_and_provenance(tiny_run, tmp_path):
    store = tmp_path / "store"
    result = runner.invoke(app, ["record", str(tiny_run), "--store", str(store), "--name", "tiny-grid12"])
    assert result.exit_code == 0, result.output
    target = store / EXPERIMENT / "tiny-grid12"
    payload = json.loads((tiny_run / "result.json").read_text())
    assert set(_tree(target)) == {"record.json", "result.json", *payload["figures"]}
    assert (target / "result.json").read_bytes() == (tiny_run / "result.json").read_bytes()
    for figure in payload["figures"]:
        assert (target / figure).read_bytes() == (tiny_run / figure).read_bytes()
    assert not (target / "checkpoints").exists() and not (target / "metrics.jsonl").exists()

    record = json.loads((target / "record.json").read_text())
    assert tuple(record) == (*RECORD_FIELDS, "attempts") and record["attempts"] == payload["attempts"] == 1
    assert record["experiment"] == EXPERIMENT and record["record"] == "tiny-grid12"
    assert record["profile"] == "tiny" and record["overrides"] == {"grid": "12"} and record["seed"] == 0
    assert record["command"] == payload["command"] == command_line()
    assert record["verdict"] == payload["verdict"] and record["status"] == "completed"
    assert record["wall_time_s"] == payload["wall_time_s"] > 0
    completed = datetime.datetime.fromisoformat(record["date"])
    assert completed.tzinfo is not None
    assert abs((datetime.datetime.now(datetime.timezone.utc) - completed).total_seconds()) < 3600
    assert record["versions"] == {
        "dltheory": dltheory.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": payload["environment"]["python"],
    }
    assert record["machine"]["cpu_count"] == os.cpu_count() and record["machine"]["cpu_model"]
    assert record["machine"]["torch_threads"] == payload["environment"]["torch_threads"] >= 1
    assert record["machine"]["gpu"] == (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    checkout = source_checkout()
    if checkout is None:
        assert record["commit"] is None
    else:
        head = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        assert record["commit"] == head.stdout.strip() and isinstance(payload["commit_dirty"], bool)
    assert load_record(target).figures == payload["figures"]


def test_existing_record_is_never_overwritten_silently(tiny_run, tmp_path):
    store = tmp_path / "store"
    target = record_run(tiny_run, store)
    assert target == store / EXPERIMENT / "tiny"
    (target / "record.json").write_text(
        json.dumps({**json.loads((target / "record.json").read_text()), "x": 1})
    )
    before = _tree(target)
    again = runner.invoke(app, ["record", str(tiny_run), "--store", str(store)])
    assert again.exit_code == 2 and "already exists" in again.output and "--replace" in again.output
    assert _tree(target) == before
    replaced = runner.invoke(app, ["record", str(tiny_run), "--store", str(store), "--replace"])
    assert replaced.exit_code == 0, replaced.output
    assert "x" not in json.loads((target / "record.json").read_text())
    assert [p.name for p in target.parent.iterdir()] == ["tiny"]  # no staging or old copies left


@pytest.mark.parametrize("status", ["running", "interrupted", "failed"])
def test_incomplete_or_failed_run_refused(tmp_path, status):
    run = _synthetic_run(tmp_path / "runs", status=status)
    result = runner.invoke(app, ["record", str(run), "--store", str(tmp_path / "store")])
    assert result.exit_code == 2 and "not completed" in result.output and status in result.output
    assert not (tmp_path / "store").exists()


def test_failed_experiment_refused(tmp_path, monkeypatch):
    def broken(config, run_dir):
        raise RuntimeError("deliberately broken")

    registry = experiments()
    monkeypatch.setitem(registry, EXPERIMENT, dataclasses.replace(registry[EXPERIMENT], run=broken))
    done = run_experiment(EXPERIMENT, "tiny", out=tmp_path / "runs")
    assert done.status == "failed"
    with pytest.raises(RecordError, match="not completed \\(status 'failed'\\)"):
        record_run(done.path, tmp_path / "store")
    (done.path / "status.json").unlink()  # the result file alone also says so
    with pytest.raises(RecordError, match="did not complete \\(result status 'failed'\\)"):
        record_run(done.path, tmp_path / "store")


def test_commit_is_the_one_the_run_started_from(tmp_path, monkeypatch):
    """A commit made while a run goes is not credited with its result: the process ran the code it
    imported, so the result (completed or failed) names the commit read when the attempt started."""
    from dltheory.experiments import execute

    commits = iter([("start-sha", False)])
    monkeypatch.setattr(execute, "git_commit", lambda: next(commits, ("later-sha", True)))
    monkeypatch.setattr(records_module, "git_commit", lambda: ("later-sha", True))
    done = run_experiment(EXPERIMENT, "tiny", out=tmp_path / "runs", overrides={"grid": "12"})
    payload = json.loads((done.path / "result.json").read_text())
    assert (payload["commit"], payload["commit_dirty"]) == ("start-sha", False)

    def broken(config, run_dir):
        raise RuntimeError("deliberately broken")

    commits = iter([("start-sha", False)])
    registry = experiments()
    monkeypatch.setitem(registry, EXPERIMENT, dataclasses.replace(registry[EXPERIMENT], run=broken))
    failed = run_experiment(EXPERIMENT, "tiny", out=tmp_path / "failed")
    assert json.loads((failed.path / "result.json").read_text())["commit"] == "start-sha"
    assert run_provenance(source=("given", None))["commit"] == "given"


def test_run_without_provenance_refused_naming_the_fields(tmp_path):
    run = _synthetic_run(tmp_path / "runs", drop=("command", "commit", "date"))
    result = runner.invoke(app, ["record", str(run), "--store", str(tmp_path / "store")])
    assert result.exit_code == 2
    assert "lacks the provenance fields ['command', 'commit', 'date']" in result.output
    assert not (tmp_path / "store").exists()


def test_damaged_result_and_bad_arguments_refused(tmp_path):
    run = _synthetic_run(tmp_path / "runs")
    text = (run / "result.json").read_text()
    (run / "result.json").write_text(text[: len(text) // 2])
    result = runner.invoke(app, ["record", str(run), "--store", str(tmp_path / "store")])
    assert (
        result.exit_code == ExitCode.DAMAGED_RUN and "result.json is damaged: invalid JSON" in result.output
    )
    with pytest.raises(DamagedRecordFileError, match="result.json is damaged") as caught:
        record_run(run, tmp_path / "store")
    assert isinstance(caught.value, RecordError) and caught.value.path == run / "result.json"
    (run / "status.json").write_text('{"status": "compl')
    damaged_status = runner.invoke(app, ["record", str(run), "--store", str(tmp_path / "store")])
    assert damaged_status.exit_code == ExitCode.DAMAGED_RUN
    assert "status.json is damaged" in damaged_status.stderr
    missing = runner.invoke(app, ["record", str(tmp_path / "nowhere"), "--store", str(tmp_path / "store")])
    assert missing.exit_code == 2 and "RUN_DIR must be a run directory" in missing.output
    empty = tmp_path / "empty-run"
    empty.mkdir()
    no_result = runner.invoke(app, ["record", str(empty), "--store", str(tmp_path / "store")])
    assert no_result.exit_code == 2
    assert no_result.stderr.strip() == (
        f"error: RUN_DIR {str(empty)!r} has no result.json; only a completed run "
        "(runs/EXPERIMENT/RUN-NAME) can be recorded"
    )
    assert not (tmp_path / "store").exists()
    with pytest.raises(ValueError, match="name must be 1-100 letters.*got '../x'"):
        record_run(_synthetic_run(tmp_path / "other"), tmp_path / "store", "../x")


def test_store_that_is_a_file_refused_on_one_line(tmp_path):
    run = _synthetic_run(tmp_path / "runs")
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    for store in (a_file, a_file / "below"):
        result = runner.invoke(app, ["record", str(run), "--store", str(store)])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --store must be a directory"), lines
    assert a_file.read_text() == "not a directory"


def test_standalone_run_recorded_with_its_own_provenance(tmp_path):
    run = _synthetic_run(tmp_path / "runs")
    target = record_run(run, tmp_path / "store", "cpu-1000")
    record = json.loads((target / "record.json").read_text())
    assert record["command"] == "python benchmarks/demo.py --depth 1000"
    assert (
        record["profile"] == "cpu-1000" and record["overrides"] == {"depth": "1000"} and record["seed"] == 3
    )
    records, unreadable = scan_records(tmp_path / "store")
    assert [r.name for r in records] == ["cpu-1000"] and not unreadable


def test_a_crash_while_copying_leaves_no_record(tmp_path, monkeypatch):
    run = _synthetic_run(tmp_path / "runs")
    store = tmp_path / "store"
    target = record_run(run, store, "kept")
    before = _tree(target)

    def crash(path, obj):
        raise OSError("disk full")

    monkeypatch.setattr(records_module, "atomic_write_json", crash)
    with pytest.raises(OSError, match="disk full"):
        record_run(run, store, "new")
    with pytest.raises(OSError, match="disk full"):
        record_run(run, store, "kept", replace=True)
    assert sorted(p.name for p in (store / "demo-exp").iterdir()) == ["kept"]
    assert _tree(target) == before


def test_scan_records_lists_unreadable_ones(tmp_path):
    store = tmp_path / "store"
    good = record_run(_synthetic_run(tmp_path / "a"), store, "good")
    bad = record_run(_synthetic_run(tmp_path / "b"), store, "bad")
    meta = json.loads((bad / "record.json").read_text())
    del meta["commit"]
    (bad / "record.json").write_text(json.dumps(meta))
    (store / "demo-exp" / "half").mkdir()
    (store / "demo-exp" / "half" / "result.json").write_text('{"experiment": "demo')
    (store / "benchmarks").mkdir()  # other content of docs/results is ignored
    (store / "benchmarks" / "table.json").write_text("{}")
    records, unreadable = scan_records(store)
    assert [r.path for r in records] == [good]
    problems = {u.path.name: u.problem for u in unreadable}
    assert problems == {"bad": "record.json lacks the fields ['commit']", "half": "record.json is missing"}
    assert all("dltheory record" in u.remedy for u in unreadable)


def test_provenance_helpers():
    assert command_line(["/x/.venv/bin/dltheory", "run", "a b"]) == "dltheory run 'a b'"
    assert command_line(["/usr/lib/python3/site-packages/pkg/__main__.py", "-q"]) == "python -m pkg -q"
    assert command_line([str(Path.cwd() / "bench.py"), "--n", "3"]) == "python bench.py --n 3"
    assert command_line([]) == ""
    provenance = run_provenance({"steps": 3})
    assert set(provenance) == {"command", "commit", "commit_dirty", "overrides", "date"}
    assert provenance["overrides"] == {"steps": 3}
    assert {"command", "commit", "date", "overrides", "environment.cpu_model"} <= set(PROVENANCE_FIELDS)


def test_default_store_is_the_checkouts_docs_results():
    checkout = source_checkout()
    if checkout is None:
        pytest.skip("dltheory is not imported from a source checkout")
    assert checkout == Path(__file__).resolve().parents[2]
    expected = checkout / "docs" / "results"
    assert default_store() == (expected if expected.is_dir() else None)


def test_record_without_store_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.setattr(records_module, "source_checkout", lambda: None)
    with pytest.raises(ValueError, match="store: none given.*--store DIR"):
        record_run(_synthetic_run(tmp_path / "runs"))


def test_existing_record_error_type(tmp_path):
    run = _synthetic_run(tmp_path / "runs")
    record_run(run, tmp_path / "store")
    with pytest.raises(RecordExistsError):
        record_run(run, tmp_path / "store")
