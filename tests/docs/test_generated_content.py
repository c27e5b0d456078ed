"""The generators behind the docs: ``benchmarks/run_all.py --record`` writes recorded benchmark files with
their provenance, and the docs hook renders them, recorded runs and the CLI reference (without a build)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hook() -> ModuleType:
    pytest.importorskip("mkdocs", reason="mkdocs not installed (pip install -e '.[docs]')")
    return _load("dltheory_docs_hook", ROOT / "docs" / "_hooks" / "dltheory_docs.py")


def test_record_benchmarks_and_render_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook) -> None:
    run_all = _load("run_all_under_test", ROOT / "benchmarks" / "run_all.py")
    results = tmp_path / "results"
    results.mkdir()
    rows = [
        {
            "benchmark": "phase diagram",
            "metric": "time",
            "value": 0.2,
            "unit": "s",
            "baseline": 5144.0,
            "ratio": 26000.0,
            "target": "<= 1 s",
            "met": True,
        }
    ]
    (results / "signalprop.json").write_text(json.dumps(rows))
    (results / "other.json").write_text(json.dumps({"benchmark": "x", "seconds": 1.5}))
    monkeypatch.setattr(run_all, "RESULTS", results)
    docs = tmp_path / "docs"
    written = run_all.record(["signalprop"], store=docs / "results" / "benchmarks")
    assert [p.name for p in written] == ["signalprop.json"]
    payload = json.loads(written[0].read_text())
    assert payload["result"] == rows and payload["machine"]["cpu_count"] >= 1
    assert payload["date"] and "python" in payload["versions"]

    page = hook.render_benchmarks(docs)
    assert "phase diagram" in page and "26,000 x" in page and "| yes |" in page
    assert payload["machine"]["cpu_model"] in page
    assert "No recorded benchmark yet" in hook.render_benchmarks(tmp_path / "empty")
    # one benchmark, quoted on a page in a sub-folder: its table only, the raw-file link relative to the page
    one = hook.render_benchmarks(docs, "signalprop", "residual")
    assert "phase diagram" in one and "](../results/benchmarks/signalprop.json)" in one
    assert "not recorded yet" in hook.render_benchmarks(docs, "missing", "residual")


def test_records_render_with_claims_and_figures(tmp_path: Path, hook) -> None:
    folder = tmp_path / "results" / "liao-dynamics" / "sample"
    (folder / "figures").mkdir(parents=True)
    (folder / "figures" / "curves.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    record = {
        "experiment": "liao-dynamics",
        "record": "sample",
        "profile": "quick",
        "verdict": "disagree",
        "wall_time_s": 200.0,
        "attempts": 2,
        "overrides": {"steps": "600"},
        "date": "2026-01-02",
        "machine": {"cpu_model": "CPU X", "cpu_count": 2},
    }
    (folder / "record.json").write_text(json.dumps(record))
    claims = [
        {"name": "c1", "predicted": [1.0, 2.0], "measured": 1.23456789, "tolerance": 0.1, "agree": False}
    ]
    (folder / "result.json").write_text(json.dumps({"claims": claims, "notes": ["a caveat"]}))

    page = hook.render_records(tmp_path, "results")
    assert "(#rec-liao-dynamics-sample)" in page and "**disagree**" in page and "3.3 min (2 attempts)" in page
    assert "| c1 | [1.0, 2.0] | 1.235 | 0.1 | **no** |" in page and "a caveat" in page
    assert "![liao-dynamics: curves](liao-dynamics/sample/figures/curves.png)" in page
    experiments = hook.render_experiments("liao", tmp_path, "liao")
    assert (
        "## `liao-dynamics`" in experiments
        and "../results/liao-dynamics/sample/figures/curves.png" in experiments
    )
    assert "No recorded run yet" in experiments  # the other liao experiments
    assert "no recorded run yet" in hook.render_headline(tmp_path / "none", "")
    headline = hook.render_headline(tmp_path, "")
    assert "[**disagree**](results/index.md#rec-liao-dynamics-sample): `sample`" in headline
    assert "(quick profile with steps=600; 3.3 min (2 attempts); 2026-01-02; CPU X (2 cores))" in headline

    quoted = hook.render_claims("liao-dynamics/sample | C1", tmp_path, "liao")
    assert "[`liao-dynamics/sample`](../results/index.md#rec-liao-dynamics-sample)" in quoted
    assert "| c1 | [1.0, 2.0] | 1.235 | 0.1 | **no** |" in quoted
    assert "No claim of" in hook.render_claims("liao-dynamics/sample | absent", tmp_path, "liao")
    assert "No recorded run" in hook.render_claims("liao-dynamics/other", tmp_path, "liao")


def test_cli_reference_lists_every_command(hook) -> None:
    import typer

    from dltheory.cli import app

    page = hook.render_cli()
    root = typer.main.get_command(app)
    for name in root.list_commands(None):  # type: ignore[arg-type]
        assert f"`dltheory {name}`" in page
    assert "--profile" in page and "| argument / option | description |" in page
