"""End to end: `reproduce` on the tiny profile, interruption, failures, and the report's structure."""

import dataclasses
import json
import re
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from dltheory.experiments import foundation_mnist_linear
from dltheory.experiments.registry import experiments
from dltheory.report.html import collect_results
from dltheory.reproduce import reproduce


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    # recorded runs are left out here (test_report_records.py covers them)
    records, report = reproduce("tiny", out=out, progress=False, records=None)
    return out, records, report


def test_every_registered_experiment_in_report(tiny_runs):
    out, records, report = tiny_runs
    html = report.read_text()
    assert {r.experiment for r in records} == set(experiments())
    for name in experiments():
        assert f'id="{name}"' in html, f"{name} missing from the report"
    failed = [(r.experiment, r.error) for r in records if r.status != "completed"]
    assert not failed, f"experiments failed on the tiny profile: {failed}"


def test_every_figure_referenced_exists_and_decodes(tiny_runs):
    out, _, report = tiny_runs
    html = report.read_text()
    for result in collect_results(out):
        assert result["figures"], f"{result['experiment']} produced no figure"
        for figure in result["figures"]:
            path = Path(result["_run_dir"]) / figure
            image = mpimg.imread(path)
            assert image.shape[0] > 50 and image.shape[1] > 50
    assert html.count("data:image/png;base64,") == sum(len(r["figures"]) for r in collect_results(out))


def test_summary_verdicts_match_result_files(tiny_runs):
    out, _, report = tiny_runs
    html = report.read_text()
    summary = html.split("<h2>Summary</h2>", 1)[1].split("<section", 1)[0]
    rows = re.findall(
        r"<tr><td><a href=\"#([^\"]+)\">.*?</td><td>(.*?)</td><td>.*?</td><td>(.*?)</td></tr>", summary
    )
    expected = []
    for result in sorted(collect_results(out), key=lambda r: r["experiment"]):
        for claim in result["claims"]:
            word = {True: "agree", False: "disagree"}.get(claim["agree"], "reported")
            expected.append((result["experiment"], word))
    found = sorted((name, re.sub(r"<[^>]+>", "", verdict)) for name, _, verdict in rows)
    assert found == sorted(expected)


def test_rerun_recomputes_nothing(tiny_runs):
    out, _, _ = tiny_runs
    records, _ = reproduce("tiny", out=out, progress=False, records=None)
    assert all(r.skipped for r in records)


def test_interrupted_experiment_resumes_from_checkpoint(tmp_path, monkeypatch):
    original_train = foundation_mnist_linear.train

    def interrupted_train(model, optimizer, get_batch, *args, **kwargs):
        def failing(step):
            if step == 45:
                raise KeyboardInterrupt("simulated Ctrl-C")
            return get_batch(step)

        return original_train(model, optimizer, failing, *args, **kwargs)

    monkeypatch.setattr(foundation_mnist_linear, "train", interrupted_train)
    with pytest.raises(KeyboardInterrupt):
        reproduce("tiny", out=tmp_path, names=["foundation-mnist-linear"], progress=False)
    run_dir = tmp_path / "foundation-mnist-linear" / "tiny"
    assert json.loads((run_dir / "status.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(foundation_mnist_linear, "train", original_train)
    records, _ = reproduce("tiny", out=tmp_path, names=["foundation-mnist-linear"], progress=False)
    assert records[0].status == "completed" and not records[0].skipped
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)), "metrics after the checkpoint were logged twice"
    assert steps[-1] == foundation_mnist_linear.PROFILES["tiny"].steps


def test_one_failure_does_not_stop_the_others(tmp_path, monkeypatch):
    def broken(config, run_dir):
        raise RuntimeError("deliberately broken experiment")

    registry = experiments()  # the spec holds the run function: replace the registered spec
    spec = registry["foundation-mnist-linear"]
    monkeypatch.setitem(registry, "foundation-mnist-linear", dataclasses.replace(spec, run=broken))
    names = ["foundation-mnist-linear"] + [n for n in experiments() if n != "foundation-mnist-linear"][:1]
    records, report = reproduce("tiny", out=tmp_path, names=names, progress=False)
    status = {r.experiment: r.status for r in records}
    assert status["foundation-mnist-linear"] == "failed"
    assert all(s == "completed" for n, s in status.items() if n != "foundation-mnist-linear")
    html = report.read_text()
    assert "deliberately broken experiment" in html and 'class="failed"' in html
