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
