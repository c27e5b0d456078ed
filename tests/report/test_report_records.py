"""The report with and without recorded runs: scoreboard counts equal the result files, the paper's
headline and headline figure, recorded verdicts beside the fresh ones (same claim, same row; claims
judged only at scale name their record), provenance, where the records came from, and unreadable runs
and records listed instead of crashing."""

import base64
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dltheory.cli import app
from dltheory.core.papers import PAPERS
from dltheory.report.html import write_report
from dltheory.reproduce import reproduce
from dltheory.runner import records as records_module
from dltheory.runner.records import record_run

runner = CliRunner()
PHASE = "signalprop-phase-diagram"  # paper xiao; no data set needed
COUNTER = "laurent-counterexample"  # paper laurent; no data set needed
ONLY_AT_SCALE = "depth 10000 trains"


def _record_variant(run: Path, work: Path, store: Path, name: str, edit) -> Path:
    """Record a copy of ``run`` whose result.json was changed by ``edit(payload)``."""
    copy = work / run.parent.name / name
    shutil.copytree(run, copy)
    payload = json.loads((copy / "result.json").read_text())
    edit(payload)
    (copy / "result.json").write_text(json.dumps(payload))
    return record_run(copy, store, name)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    runs = root / "runs"
    done, _ = reproduce("tiny", out=runs, names=[PHASE, COUNTER], progress=False, records=None)
    assert all(r.status == "completed" for r in done)
    store = root / "store"
    record_run(runs / PHASE / "tiny", store, "paper")

    def deeper(payload):  # a deeper CPU variant: one claim renamed, one judged otherwise
        payload["profile"] = "cpu-1000"
        payload["claims"][0]["name"] = ONLY_AT_SCALE
        payload["claims"][1]["agree"] = False
        payload["verdict"] = "disagree"

    _record_variant(runs / PHASE / "tiny", root / "work", store, "cpu-1000", deeper)

    def other_experiment(payload):  # a record of an experiment without a fresh run
        payload["experiment"] = "xiao-depth"
        payload["claims"] = [
            {"name": "depth 10000 trains", "predicted": 0.99, "measured": 0.1, "agree": None}
        ]
        payload["verdict"] = "reported"

    _record_variant(runs / PHASE / "tiny", root / "work", store, "paper-xd", other_experiment)
    return runs, store, root


def _results(directory: Path, pattern: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob(pattern))]


def _expected_counts(payloads: list[dict], paper: str) -> dict[str, int]:
    chosen = [p for p in payloads if p.get("paper") == paper]
    counts = {"runs": len(chosen), "agree": 0, "disagree": 0, "reported": 0, "failed": 0}
    for p in chosen:
        if p["status"] != "completed":
            counts["failed"] += 1
        for claim in p["claims"]:
            counts[{True: "agree", False: "disagree"}.get(claim["agree"], "reported")] += 1
    return counts


def _scoreboard_counts(page: str, paper: str, scale: str) -> dict[str, int]:
    row = re.search(rf'<tr data-paper="{paper}" data-scale="{scale}">(.*?)</tr>', page)
    assert row, f"no scoreboard row for {paper} / {scale}"
    cells = re.findall(r"<td>(.*?)</td>", row.group(1))
    counts = {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', row.group(1))}
    return {"runs": int(cells[1]), **counts}


def _summary_rows(page: str) -> list[list[str]]:
    summary = page.split("<h2>Summary</h2>", 1)[1].split("<section", 1)[0]
    body = summary.split("<tbody>", 1)[1]
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]


def _text(cell: str) -> str:
    return re.sub(r"<[^>]+>", "", cell)


def test_report_without_records(setup, tmp_path):
    runs, _, _ = setup
    page = write_report(runs, tmp_path / "none.html", records=None).read_text()
    assert "Recorded runs were not included (--no-records)." in page
    empty = tmp_path / "empty-store"
    empty.mkdir()
    page = write_report(runs, tmp_path / "empty.html", records=empty).read_text()
    assert f"No recorded runs: the store {empty} holds none" in page
    fresh = _results(runs, "*/*/result.json")
    for paper in ("xiao", "laurent"):
        assert _scoreboard_counts(page, paper, "fresh") == _expected_counts(fresh, paper)
        assert _scoreboard_counts(page, paper, "recorded")["runs"] == 0
        assert html_escape(PAPERS[paper].headline) in page.split("<h2>Summary</h2>")[0]
    assert "recorded at scale" not in page and 'class="thumb"' not in page and "record-" not in page
    rows = _summary_rows(page)
    assert all(len(row) == 4 for row in rows)
    assert len(rows) == sum(len(p["claims"]) for p in fresh)
    assert page.count("data:image/png;base64,") == sum(len(p["figures"]) for p in fresh)


def html_escape(text: str) -> str:
    import html

    return html.escape(text)


def test_report_with_records(setup, tmp_path):
    runs, store, _ = setup
    page = write_report(runs, tmp_path / "report.html", records=store).read_text()
    assert f"Recorded runs are read from {store} (given with --records)." in page
    fresh = _results(runs, "*/*/result.json")
    recorded = _results(store, "*/*/result.json")
    assert len(recorded) == 3
    for paper in ("xiao", "laurent"):
        assert _scoreboard_counts(page, paper, "fresh") == _expected_counts(fresh, paper)
        assert _scoreboard_counts(page, paper, "recorded") == _expected_counts(recorded, paper)
    xiao_row = re.search(r'<tr data-paper="xiao" data-scale="recorded"><td>(.*?)</td>', page).group(1)
    assert "cpu-1000" in xiao_row and "paper" in xiao_row

    # the headline figure: the first figure of the first record of the paper, as a thumbnail
    score = page.split('id="score-xiao"', 1)[1].split('<div class="score"', 1)[0]
    assert html_escape(PAPERS["xiao"].headline) in score
    thumb = re.search(r'<img class="thumb" src="data:image/png;base64,([^"]+)"', score).group(1)
    figure = json.loads((store / PHASE / "cpu-1000" / "result.json").read_text())["figures"][0]
    assert base64.b64decode(thumb) == (store / PHASE / "cpu-1000" / figure).read_bytes()
    assert 'href="#record-signalprop-phase-diagram-cpu-1000"' in score
    laurent = page.split('id="score-laurent"', 1)[1].split("</table>", 1)[0]
    assert 'class="thumb"' not in laurent and "recorded (no record)" in laurent

    rows = _summary_rows(page)
    assert all(len(row) == 5 for row in rows)
    by_claim = {(_text(r[0]), _text(r[1])): r for r in rows}
    phase_claims = [c["name"] for c in fresh[[p["experiment"] for p in fresh].index(PHASE)]["claims"]]
    same = by_claim[(PHASE, html_escape(phase_claims[2]))]  # in both records: same row, both verdicts
    assert _text(same[3]) == "agree"
    assert _text(same[4]).count("agree") == 2
    assert 'href="#record-signalprop-phase-diagram-paper"' in same[4]
    assert 'href="#record-signalprop-phase-diagram-cpu-1000"' in same[4]
    judged_otherwise = by_claim[(PHASE, html_escape(phase_claims[1]))]
    assert _text(judged_otherwise[3]) == "agree" and "disagree" in _text(judged_otherwise[4])
    renamed = by_claim[(PHASE, html_escape(phase_claims[0]))]  # renamed in cpu-1000: only the paper record
    assert "cpu-1000" not in renamed[4] and "paper" in renamed[4]
    only = by_claim[(PHASE, ONLY_AT_SCALE)]
    assert _text(only[3]).startswith("judged only at scale") and "cpu-1000" in only[3]
    assert _text(only[2]) == "" and "disagree" not in only[4]
    no_fresh = by_claim[("xiao-depth", ONLY_AT_SCALE)]
    assert _text(no_fresh[3]).startswith("no fresh run") and "paper-xd" in no_fresh[3]
    assert 'id="xiao-depth"' in page  # the summary's link has a target

    # provenance of a record, linked from the summary
    section = page.split('id="record-signalprop-phase-diagram-paper"', 1)[1].split('<div class="record"', 1)[
        0
    ]
    meta = json.loads((store / PHASE / "paper" / "record.json").read_text())
    assert html_escape(meta["command"]) in section and meta["date"] in section
    assert (meta["commit"] or "not a git checkout") in section and "profile" in section

    figures = sum(len(p["figures"]) for p in fresh + recorded)
    assert page.count("data:image/png;base64,") == figures + 1  # one thumbnail (xiao)


def test_unreadable_runs_and_records_are_listed(setup, tmp_path):
    runs, store, _ = setup
    runs_copy, store_copy = tmp_path / "runs", tmp_path / "store"
    shutil.copytree(runs, runs_copy)
    shutil.copytree(store, store_copy)
    truncated = runs_copy / COUNTER / "tiny" / "result.json"
    truncated.write_text(truncated.read_text()[:100])
    nameless = runs_copy / PHASE / "tiny" / "result.json"
    payload = json.loads(nameless.read_text())
    del payload["experiment"]
    nameless.write_text(json.dumps(payload))
    damaged = store_copy / PHASE / "paper" / "record.json"
    damaged.write_text(damaged.read_text()[:50])

    result = runner.invoke(app, ["report", str(runs_copy), "--records", str(store_copy)])
    assert result.exit_code == 0, result.output
    page = (runs_copy / "report.html").read_text()
    assert "3 run(s) or record(s) could not be read" in page
    table = page.split('<h2 id="unreadable">', 1)[1].split("<tbody>", 1)[1].split("</table>", 1)[0]
    rows = {
        _text(r[0]): r
        for r in (re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table))
    }
    assert rows[str(truncated)][1].startswith("is damaged: invalid JSON")
    remedy = f"dltheory run laurent-counterexample --profile tiny --out {runs_copy} --resume"
    assert remedy in rows[str(truncated)][2]
    assert rows[str(nameless)][1] == "missing field: experiment"
    assert rows[str(damaged.parent)][1].startswith("record.json is damaged: invalid JSON")
    assert "dltheory record RUN_DIR --name paper" in rows[str(damaged.parent)][2]
    # the readable record of the same experiment is still shown
    assert 'id="record-signalprop-phase-diagram-cpu-1000"' in page


def test_records_options_and_default_store(setup, tmp_path, monkeypatch):
    runs, store, _ = setup
    out = tmp_path / "runs"
    shutil.copytree(runs, out)
    bad = runner.invoke(app, ["report", str(out), "--records", str(tmp_path / "nowhere")])
    assert bad.exit_code == 2 and "records must be a directory" in bad.output
    both = runner.invoke(app, ["report", str(out), "--records", str(store), "--no-records"])
    assert both.exit_code == 2 and "exclude each other" in both.output
    assert runner.invoke(app, ["report", str(out), "--no-records"]).exit_code == 0
    assert "Recorded runs were not included" in (out / "report.html").read_text()

    # a fresh clone: the checkout's docs/results is found without any option
    clone = tmp_path / "clone"
    shutil.copytree(store, clone / "docs" / "results")
    monkeypatch.setattr(records_module, "source_checkout", lambda: clone)
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    page = (out / "report.html").read_text()
    sentence = f"Recorded runs are read from {clone / 'docs' / 'results'}, the source checkout's store"
    assert html_escape(sentence) in page
    assert 'id="record-signalprop-phase-diagram-paper"' in page

    monkeypatch.setattr(records_module, "source_checkout", lambda: None)
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    assert "does not run from a source checkout" in (out / "report.html").read_text()


def test_reproduce_shows_records(setup, tmp_path):
    runs, store, _ = setup
    out = tmp_path / "runs"
    shutil.copytree(runs, out)
    done, report = reproduce("tiny", out=out, names=[PHASE], progress=False, records=store)
    assert done[0].skipped
    page = report.read_text()
    assert 'data-scale="recorded"' in page and 'id="record-signalprop-phase-diagram-cpu-1000"' in page
    with pytest.raises(ValueError, match="records must be a directory"):
        reproduce("tiny", out=out, names=[PHASE], progress=False, records=tmp_path / "nowhere")
