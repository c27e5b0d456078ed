import json
import struct

import pytest
from typer.testing import CliRunner

from dltheory.cli import app
from support import MNIST_FILES, has_dataset

runner = CliRunner()
needs_mnist = pytest.mark.skipif(not has_dataset("mnist", MNIST_FILES), reason="MNIST not on the data path")


def test_list_names_every_experiment():
    from dltheory.experiments.registry import experiments

    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0
    listed = {e["name"] for e in json.loads(result.stdout)}
    assert listed == set(experiments()) and "foundation-mnist-linear" in listed


@needs_mnist
def test_run_then_report_end_to_end(tmp_path):
    out = tmp_path / "runs"
    result = runner.invoke(app, ["run", "foundation-mnist-linear", "--profile", "tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output
    run_dir = out / "foundation-mnist-linear" / "tiny"
    payload = json.loads((run_dir / "result.json").read_text())
    assert payload["status"] == "completed" and payload["claims"]
    png = (run_dir / payload["figures"][0]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24])[0] > 100
    assert (run_dir / "config.json").exists() and (run_dir / "metrics.jsonl").exists()

    again = runner.invoke(app, ["run", "foundation-mnist-linear", "--profile", "tiny", "--out", str(out)])
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = runner.invoke(app, ["run", "foundation-mnist-linear", "-p", "tiny", "-o", str(out), "--resume"])
    assert resumed.exit_code == 0 and "already complete" in resumed.output

    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0
    html = (out / "report.html").read_text()
    assert "foundation-mnist-linear" in html and "data:image/png;base64," in html


def test_unknown_experiment_lists_valid_ones():
    result = runner.invoke(app, ["run", "no-such-experiment"])
    assert result.exit_code == 2
    assert "unknown experiment 'no-such-experiment'" in result.output
    assert "foundation-mnist-linear" in result.output


def test_unknown_config_key_lists_valid_keys(tmp_path):
    result = runner.invoke(app, ["run", "foundation-mnist-linear", "-o", str(tmp_path), "--set", "depth=3"])
    assert result.exit_code == 2
    assert "unknown config key 'depth'" in result.output and "batch_size" in result.output
    bad = runner.invoke(app, ["run", "foundation-mnist-linear", "-o", str(tmp_path), "--set", "steps=many"])
    assert bad.exit_code == 2 and "cannot parse 'many' as int" in bad.output


def test_unknown_profile(tmp_path):
    result = runner.invoke(app, ["run", "foundation-mnist-linear", "-p", "huge", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "profile must be one of" in result.output


def test_data_commands():
    listed = runner.invoke(app, ["data", "list"])
    assert listed.exit_code == 0 and "gas-sensor" in listed.output and "search path" in listed.output
    checked = runner.invoke(app, ["data", "check"])
    assert checked.exit_code == 0 and "digits" in checked.output


def test_data_check_exit_codes(monkeypatch):
    """Report-only by default; --only NAME and --strict exit 3 (missing data) when a checked set is
    missing or unreadable, after the table; an unknown --only is bad input."""
    from dltheory.data import DataNotFoundError, loaders
    from dltheory.exitcodes import ExitCode

    def missing(*args, **kwargs):
        raise DataNotFoundError("data set 'digits' not found; looked in: nowhere")

    def broken(*args, **kwargs):
        raise ValueError("truncated file")

    monkeypatch.setitem(loaders.LOADERS, "digits", missing)
    monkeypatch.setitem(loaders.LOADERS, "gas-sensor", broken)
    report = runner.invoke(app, ["data", "check", "--only", "digits", "--only", "gaussian-mixture", "--json"])
    assert report.exit_code == ExitCode.MISSING_DATA
    rows = {r["name"]: r["status"] for r in json.loads(report.stdout)}
    assert rows == {"digits": "missing", "gaussian-mixture": "ok"}
    assert report.stderr.strip().splitlines() == [
        "error: data set(s) ['digits'] missing or unreadable; see `dltheory data list` for the search path "
        "(or pass --download)"
    ]
    assert runner.invoke(app, ["data", "check", "--only", "gaussian-mixture"]).exit_code == 0
    unreadable = runner.invoke(app, ["data", "check", "--only", "gas-sensor", "--json"])
    assert unreadable.exit_code == ExitCode.MISSING_DATA
    assert json.loads(unreadable.stdout) == [
        {"name": "gas-sensor", "status": "unreadable", "error": "truncated file"}
    ]
    everything = runner.invoke(app, ["data", "check"])
    assert everything.exit_code == 0 and everything.stderr == ""
    assert "report only" in " ".join(everything.stdout.split())
    strict = runner.invoke(app, ["data", "check", "--strict", "--json"])
    assert strict.exit_code == ExitCode.MISSING_DATA and "'digits', 'gas-sensor'" in strict.stderr
    unknown = runner.invoke(app, ["data", "check", "--only", "imagenet"])
    assert (
        unknown.exit_code == ExitCode.BAD_INPUT
        and "--only" in unknown.stderr
        and "'imagenet'" in unknown.stderr
    )


def test_json_wherever_there_is_a_table(tmp_path):
    listed = json.loads(runner.invoke(app, ["data", "list", "--json"]).stdout)
    assert "gas-sensor" in {d["name"] for d in listed["datasets"]} and listed["search_path"]
    checked = json.loads(runner.invoke(app, ["data", "check", "--json"]).stdout)
    assert {r["name"]: r["status"] for r in checked}["digits"] == "ok"
    meanfield = json.loads(runner.invoke(app, ["meanfield", "--sigma-w2", "1.5", "--json"]).stdout)
    assert meanfield["phase"] in ("ordered", "chaotic", "critical")
    curve = json.loads(runner.invoke(app, ["learning-curve", "--json"]).stdout)
    assert 0 < curve["optimal_test_error"] < 0.5
    run = runner.invoke(app, ["run", "laurent-counterexample", "-p", "tiny", "-o", str(tmp_path), "--json"])
    payload = json.loads(run.stdout)
    assert run.exit_code == 0 and payload["status"] == "completed" and payload["device"] == "cpu"
    assert payload["exit_code"] == 0 and payload["verdict"] in ("agree", "disagree", "reported")
    result = json.loads((tmp_path / "laurent-counterexample" / "tiny" / "result.json").read_text())
    assert result["environment"]["device"] == "cpu"


def test_meanfield_rejects_bad_input_and_uses_the_library_phase(monkeypatch):
    for args in (["--sigma-b2", "-1"], ["--activation", "nope"], ["--sigma-w2", "0"]):
        bad = runner.invoke(app, ["meanfield", *args])
        assert bad.exit_code == 2 and bad.stdout == "" and bad.stderr.count("\n") == 1
        assert bad.stderr.startswith(f"error: {args[0]} must be")
    import dltheory.signalprop

    monkeypatch.setattr(dltheory.signalprop, "phase", lambda *args, **kwargs: "phase-from-the-library")
    summary = json.loads(runner.invoke(app, ["meanfield", "--sigma-w2", "1.5", "--json"]).stdout)
    assert summary["phase"] == "phase-from-the-library"
    relu = runner.invoke(app, ["meanfield", "--activation", "relu", "--json"])  # valid: no critical point
    assert relu.exit_code == 0 and "critical only at sigma_b2 = 0" in json.loads(relu.stdout)["critical_note"]


def test_device_option_of_run_and_reproduce(tmp_path):
    for command in (["run", "laurent-counterexample"], ["reproduce", "--only", "laurent-counterexample"]):
        bad = runner.invoke(app, [*command, "-p", "tiny", "-o", str(tmp_path), "--device", "gpu"])
        assert bad.exit_code == 2 and bad.stderr.startswith(
            "error: --device must be auto, cpu, cuda or cuda:N"
        )
    cpu = runner.invoke(
        app, ["run", "laurent-counterexample", "-p", "tiny", "-o", str(tmp_path), "--device", "cpu"]
    )
    assert cpu.exit_code == 0 and "on cpu" in cpu.stdout
    # the device is not part of the run's identity: the same run is found again under another device
    again = runner.invoke(
        app,
        ["run", "laurent-counterexample", "-p", "tiny", "-o", str(tmp_path), "--device", "auto", "--resume"],
    )
    assert again.exit_code == 0 and "already complete" in again.stdout
