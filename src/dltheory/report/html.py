"""A self-contained HTML report from run directories and recorded runs.

Every number shown comes from a ``result.json``: of a fresh run under the runs directory, or of a recorded
run in the store (``docs/results``, see :mod:`dltheory.runner.records`). Figures are embedded as base64
PNG so the single file reads offline. Layout:

1. where the records came from, and the runs or records that could not be read (file, problem, remedy);
2. a scoreboard per paper: its headline (and the first figure of a record of it), claims agreeing,
   disagreeing and reported by the fresh runs and by the recorded (paper-scale) runs;
3. the summary table of every claim: the fresh verdict beside the recorded verdicts of the same
   experiment (same claim name, same row; claims judged only at scale name the record judging them);
4. one section per paper: its claim, then each experiment with figures, a theory-vs-experiment table,
   data caveats and provenance, followed by its recorded runs with their provenance.

Failed experiments appear with their error. Without records the report looks as it did before records
existed, plus one sentence saying there are none.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dltheory.core.io import atomic_write_text
from dltheory.core.papers import PAPER_ORDER, PAPERS
from dltheory.report.inputs import AUTO, collect_results, gather
from dltheory.runner.records import Record, Unreadable

__all__ = ["collect_results", "render_report", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:60rem;
padding:0 1rem;line-height:1.45;color:#1b1b1b}
h1{font-size:1.6rem}h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
h3{margin-top:1.6rem}h4{margin:1.2rem 0 .4rem}
.table-wrap{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem;min-width:100%}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f3f3f3}
img{max-width:100%;height:auto;display:block;margin:.6rem 0;border:1px solid #eee}
img.thumb{max-width:min(100%,22rem)}
figure{margin:.4rem 0}figcaption{font-size:.8rem;color:#555}
.agree{color:#0a6b2d;font-weight:600}.disagree{color:#b00020;font-weight:600}
.failed,.diverged{color:#b00020;font-weight:600}.reported{color:#555;font-weight:600}
.note{background:#fff8e1;border-left:4px solid #f0c040;padding:.4rem .7rem;margin:.5rem 0}
.score{border:1px solid #ddd;border-radius:6px;padding:.2rem .45rem;margin:.8rem 0}
.score h3{margin-top:.6rem;font-size:1.05rem}
.score table{font-size:.78rem}.score th,.score td{padding:.2rem .25rem}
.record{border-left:4px solid #9ab;padding-left:.7rem;margin:1rem 0}
code{overflow-wrap:anywhere;font-size:.85rem}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;padding:.5rem;font-size:.8rem}
details{margin:.5rem 0}summary{cursor:pointer}
"""
_COUNTED = ("agree", "disagree", "reported")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        if len(value) > 8:
            return f"[{', '.join(_fmt(v) for v in value[:8])}, ... ({len(value)} values)]"
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return "" if value is None else str(value)


def _esc(value: Any) -> str:
    return html.escape(_fmt(value))


def _seconds(value: Any) -> str:
    try:
        return f"{float(value):.1f} s"
    except (TypeError, ValueError):
        return "?"


def _verdict_word(agree: Any) -> str:
    return (
        {True: "agree", False: "disagree"}.get(agree, "reported") if isinstance(agree, bool) else "reported"
    )


def _verdict_cell(agree: Any) -> str:
    word = _verdict_word(agree)
    return f'<span class="{word}">{word}</span>'


def _status(r: dict[str, Any]) -> str:
    return str(r.get("status", "completed"))


def _table(headers: list[str], rows: list[list[str]], row_attrs: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    attrs = list(row_attrs) if row_attrs is not None else [""] * len(rows)
    body = "".join(
        f"<tr{attr}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
        for attr, row in zip(attrs, rows, strict=True)
    )
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _image(path: Path, alt: str, css: str = "") -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    klass = f' class="{css}"' if css else ""
    return f'<img{klass} src="data:image/png;base64,{encoded}" alt="{html.escape(alt)}">'


def _figure(run_dir: Path, relative: str) -> str:
    path = run_dir / relative
    if not path.is_file():
        return f'<p class="note">figure {html.escape(relative)} is missing</p>'
    return _image(path, Path(relative).stem)


def _paper_of(payload: dict[str, Any]) -> str:
    return str(payload.get("paper", ""))


def _paper_order(papers: Iterable[str]) -> list[str]:
    order = {p: i for i, p in enumerate(PAPER_ORDER)}
    return sorted(set(papers), key=lambda p: (order.get(p, len(order)), p))


def _record_link(record: Record) -> str:
    label = f"{record.experiment}/{record.name}"
    return f'<a href="#{html.escape(record.anchor)}">{html.escape(label)}</a>'


def _record_scale(record: Record) -> str:
    profile = str(record.meta.get("profile", ""))
    return profile if profile == record.name else f"{record.name}, profile {profile}"


# ----------------------------------------------------------------------------------------------------------
# scoreboard


def _counts(payloads: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts = {"runs": 0, **{k: 0 for k in _COUNTED}, "failed": 0}
    for payload in payloads:
        counts["runs"] += 1
        if _status(payload) != "completed":
            counts["failed"] += 1
            continue
        for claim in payload.get("claims", []):
            counts[_verdict_word(claim.get("agree"))] += 1
    return counts


def _score_row(label: str, scale: str, paper: str, counts: dict[str, int]) -> tuple[str, list[str]]:
    attr = f' data-paper="{html.escape(paper)}" data-scale="{scale}"'
    cells = [label, str(counts["runs"])]
    for key in (*_COUNTED, "failed"):
        css = f' class="{key}"' if counts[key] and key != "reported" else ""
        cells.append(f'<span{css} data-count="{key}">{counts[key]}</span>')
    return attr, cells


def _scoreboard(results: list[dict[str, Any]], records: list[Record]) -> str:
    parts = [
        '<h2 id="scoreboard">Scoreboard</h2>',
        "<p>Claims per paper that agree with theory, disagree, or are reported without a verdict: in the "
        "fresh runs of this report and in the recorded runs at paper scale; failed counts runs.</p>",
    ]
    papers = _paper_order([_paper_of(r) for r in results] + [_paper_of(rec.result) for rec in records])
    for paper in papers:
        fresh = [r for r in results if _paper_of(r) == paper]
        recorded = [rec for rec in records if _paper_of(rec.result) == paper]
        known = PAPERS.get(paper)
        title = html.escape(known.title if known else (paper or "other experiments"))
        block = [f'<div class="score" id="score-{html.escape(paper)}"><h3>{title}</h3>']
        if known:
            block.append(f"<p><b>Headline.</b> {html.escape(known.headline)}</p>")
        with_figures = [rec for rec in recorded if rec.figures and (rec.path / rec.figures[0]).is_file()]
        if with_figures:
            rec = with_figures[0]
            block.append(
                "<figure>"
                + _image(rec.path / rec.figures[0], f"headline figure from record {rec.name}", "thumb")
                + f"<figcaption>First figure of the record {_record_link(rec)}.</figcaption></figure>"
            )
        profiles = sorted({str(r.get("profile", "?")) for r in fresh})
        scales = ", ".join(sorted({_record_scale(rec) for rec in recorded}))
        rows = [
            _score_row(
                f"fresh ({html.escape(', '.join(profiles))})" if fresh else "fresh (no run)",
                "fresh",
                paper,
                _counts(fresh),
            ),
            _score_row(
                f"recorded at scale ({html.escape(scales)})" if recorded else "recorded (no record)",
                "recorded",
                paper,
                _counts(rec.result for rec in recorded),
            ),
        ]
        block.append(
            _table(
                ["runs at", "runs", "agree", "disagree", "reported", "failed"],
                [c for _, c in rows],
                [a for a, _ in rows],
            )
        )
        block.append("</div>")
        parts.append("".join(block))
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------------------
# the summary table


def _recorded_cell(name: str, records: list[Record]) -> str:
    entries = []
    for rec in records:
        for claim in rec.result.get("claims", []):
            if claim["name"] == name:
                measured = _esc(claim.get("measured"))
                entries.append(
                    f"{_record_link(rec)}: {_verdict_cell(claim.get('agree'))}"
                    + (f" ({measured})" if measured else "")
                )
    return "<br>".join(entries)


def _summary(results: list[dict[str, Any]], records: list[Record]) -> str:
    with_records = bool(records)
    rows: list[list[str]] = []
    order = {p: i for i, p in enumerate(PAPER_ORDER)}
    experiments = sorted(
        {r["experiment"] for r in results} | {rec.experiment for rec in records},
        key=lambda e: (order.get(_experiment_paper(e, results, records), len(order)), e),
    )
    for experiment in experiments:
        anchor = f'<a href="#{html.escape(experiment)}">{html.escape(experiment)}</a>'
        fresh = [r for r in results if r["experiment"] == experiment]
        recorded = [rec for rec in records if rec.experiment == experiment]
        fresh_names: set[str] = set()
        for r in fresh:
            if _status(r) != "completed":
                status = html.escape(_status(r))
                row = [anchor, _esc(r.get("error", "")), "", f'<span class="{status}">{status}</span>']
                rows.append(row + ([""] if with_records else []))
                continue
            for claim in r.get("claims", []):
                fresh_names.add(claim["name"])
                row = [
                    anchor,
                    _esc(claim["name"]),
                    _esc(claim.get("measured")),
                    _verdict_cell(claim.get("agree")),
                ]
                rows.append(row + ([_recorded_cell(claim["name"], recorded)] if with_records else []))
            if not r.get("claims"):
                row = [anchor, "(no claims)", "", _verdict_cell(None)]
                rows.append(row + ([""] if with_records else []))
        only_at_scale: list[str] = []
        for rec in recorded:
            for claim in rec.result.get("claims", []):
                if claim["name"] not in fresh_names and claim["name"] not in only_at_scale:
                    only_at_scale.append(claim["name"])
        for name in only_at_scale:
            judges = [rec for rec in recorded if any(c["name"] == name for c in rec.result.get("claims", []))]
            what = "judged only at scale" if fresh else "no fresh run"
            verdict = f'<span class="reported">{what}</span>: ' + ", ".join(
                _record_link(rec) for rec in judges
            )
            rows.append([anchor, _esc(name), "", verdict, _recorded_cell(name, recorded)])
    headers = ["experiment", "claim", "measured", "verdict"]
    if with_records:
        headers = ["experiment", "claim", "measured (fresh)", "verdict (fresh)", "recorded at scale"]
    return _table(headers, rows)


def _experiment_paper(experiment: str, results: list[dict[str, Any]], records: list[Record]) -> str:
    for payload in [r for r in results if r["experiment"] == experiment] + [
        rec.result for rec in records if rec.experiment == experiment
    ]:
        if _paper_of(payload):
            return _paper_of(payload)
    return ""


# ----------------------------------------------------------------------------------------------------------
# experiment sections


def _claims_table(claims: list[dict[str, Any]]) -> str:
    rows = [
        [
            _esc(c["name"]),
            _esc(c.get("predicted")),
            _esc(c.get("measured")),
            _esc(c.get("tolerance")),
            _verdict_cell(c.get("agree")),
            _esc(c.get("note", "")),
        ]
        for c in claims
    ]
    return _table(["claim", "predicted", "measured", "tolerance", "verdict", "note"], rows)


def _notes(r: dict[str, Any]) -> list[str]:
    notes = r.get("notes", [])
    return [f'<p class="note">{_esc(note)}</p>' for note in (notes if isinstance(notes, list) else [notes])]


def _versions(env: dict[str, Any]) -> str:
    return _esc(
        ", ".join(f"{k} {env[k]}" for k in ("dltheory", "python", "numpy", "scipy", "torch") if k in env)
    )


def _config(r: dict[str, Any]) -> str:
    config = json.dumps(r.get("config", {}), indent=1, default=str)
    return f"<details><summary>configuration</summary><pre>{html.escape(config)}</pre></details>"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _environment(r: dict[str, Any]) -> dict[str, Any]:
    return _mapping(r.get("environment"))


def _experiment_section(r: dict[str, Any], *, heading: bool = True) -> str:
    name = html.escape(r["experiment"])
    parts = [f'<h3 id="{name}">{name}</h3>'] if heading else []
    parts.append(f"<p>{_esc(r.get('description', ''))}</p>")
    status = _status(r)
    if status != "completed":
        parts.append(f'<p class="{html.escape(status)}">status: {html.escape(status)}</p>')
        if r.get("error"):
            parts.append(f"<pre>{_esc(r['error'])}</pre>")
        if r.get("traceback"):
            parts.append(f"<details><summary>traceback</summary><pre>{_esc(r['traceback'])}</pre></details>")
    run_dir = Path(r["_run_dir"])
    parts.extend(_figure(run_dir, f) for f in r.get("figures", []))
    if r.get("claims"):
        parts.append(_claims_table(r["claims"]))
    parts.extend(_notes(r))
    env = _environment(r)
    provenance = [
        ["profile", _esc(r.get("profile", ""))],
        ["seed", _esc(r.get("seed", ""))],
        ["wall time", _seconds(r.get("wall_time_s", 0.0))],
        ["versions", _versions(env)],
        [
            "hardware",
            _esc(
                f"{env.get('platform', '')}, {env.get('cpu_count', '?')} CPUs"
                + (f", GPU {env['gpu']}" if env.get("gpu") else "")
            ),
        ],
        ["run directory", html.escape(str(run_dir))],
    ]
    parts.append(_table(["", ""], provenance))
    parts.append(_config(r))
    return "\n".join(parts)


def _record_section(rec: Record) -> str:
    meta, r = rec.meta, rec.result
    verdict = str(meta.get("verdict", ""))
    parts = [
        f'<div class="record" id="{html.escape(rec.anchor)}">',
        f"<h4>Recorded run {html.escape(rec.experiment)}/{html.escape(rec.name)} "
        f"({_esc(_record_scale(rec))}): "
        f'<span class="{html.escape(verdict)}">{html.escape(verdict)}</span></h4>',
    ]
    parts.extend(_figure(rec.path, f) for f in rec.figures)
    if r.get("claims"):
        parts.append(_claims_table(r["claims"]))
    parts.extend(_notes(r))
    versions = _mapping(meta.get("versions"))
    machine = _mapping(meta.get("machine"))
    commit = _esc(meta.get("commit")) or "not a git checkout"
    if r.get("commit_dirty"):
        commit += " (with uncommitted changes to the sources)"
    hardware = f"{machine.get('cpu_model', '?')}, {machine.get('cpu_count', '?')} CPUs"
    if machine.get("gpu"):
        hardware += f", GPU {machine['gpu']}"
    provenance = [
        ["command", f"<code>{_esc(meta.get('command'))}</code>"],
        ["profile", _esc(meta.get("profile"))],
        ["overrides", _esc(meta.get("overrides")) or "none"],
        ["seed", _esc(meta.get("seed"))],
        ["commit", commit],
        ["date", _esc(meta.get("date"))],
        ["wall time", _seconds(meta.get("wall_time_s"))],
        ["versions", _esc(", ".join(f"{k} {v}" for k, v in versions.items() if v is not None))],
        ["machine", _esc(hardware)],
        ["record", html.escape(str(rec.path))],
    ]
    parts.append(_table(["provenance", ""], provenance))
    parts.append(_config(r))
    parts.append("</div>")
    return "\n".join(parts)


def _unreadable(items: Sequence[Unreadable]) -> str:
    rows = [[html.escape(str(u.path)), html.escape(u.problem), html.escape(u.remedy)] for u in items]
    return (
        '<h2 id="unreadable">Unreadable runs and records</h2><p class="note">These files could not be read; '
        "they are left out of the counts below.</p>" + _table(["file", "problem", "remedy"], rows)
    )


def render_report(
    results: list[dict[str, Any]],
    records: Sequence[Record] = (),
    *,
    unreadable: Sequence[Unreadable] = (),
    records_source: str = "",
) -> str:
    """The report's HTML.

    Args:
        results: fresh result payloads (as read by :func:`collect_results`, with ``_run_dir``).
        records: recorded runs (:func:`dltheory.runner.records.scan_records`).
        unreadable: runs and records that could not be read; listed with their remedy.
        records_source: the sentence saying where records came from (or why there are none).

    Returns:
        A complete HTML document.
    """
    order = {p: i for i, p in enumerate(PAPER_ORDER)}
    results = sorted(results, key=lambda r: (order.get(_paper_of(r), 99), r["experiment"]))
    recs = sorted(records, key=lambda rec: (rec.experiment, rec.name))
    sections = []
    for paper in _paper_order([_paper_of(r) for r in results] + [_paper_of(rec.result) for rec in recs]):
        known = PAPERS.get(paper)
        title = html.escape(known.title if known else paper)
        claim = html.escape(known.claim if known else "")
        body: list[str] = []
        fresh_names = [r["experiment"] for r in results if _paper_of(r) == paper]
        record_names = [rec.experiment for rec in recs if _paper_of(rec.result) == paper]
        for experiment in sorted(set(fresh_names) | set(record_names)):
            fresh = [r for r in results if r["experiment"] == experiment]
            body.extend(_experiment_section(r) for r in fresh)
            recorded = [rec for rec in recs if rec.experiment == experiment]
            if recorded and not fresh:
                name = html.escape(experiment)
                body.append(
                    f'<h3 id="{name}">{name}</h3><p>{_esc(recorded[0].result.get("description", ""))}</p>'
                    '<p class="note">No fresh run of this experiment in this report; its recorded runs:</p>'
                )
            body.extend(_record_section(rec) for rec in recorded)
        sections.append(
            f'<section id="paper-{html.escape(paper)}"><h2>{title}</h2><p><b>Claim.</b> {claim}</p>'
            f"{''.join(body)}</section>"
        )
    counts = {v: sum(1 for r in results if r.get("verdict") == v) for v in (*_COUNTED, "failed")}
    overview = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    intro = (
        f"<p>{len(results)} experiment runs: {html.escape(overview)}. Every number below is read from the "
        "runs' result files"
        + (f", and from the {len(recs)} recorded runs' result files" if recs else "")
        + ".</p>"
    )
    if records_source:
        intro += f"<p>{html.escape(records_source)}</p>"
    if unreadable:
        intro += (
            f'<p class="note">{len(unreadable)} run(s) or record(s) could not be read: see '
            '<a href="#unreadable">below</a>.</p>'
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>dltheory reproduction report</title><style>{_CSS}</style></head><body>"
        "<h1>dltheory reproduction report</h1>"
        f"{intro}{_scoreboard(results, recs)}{_unreadable(unreadable) if unreadable else ''}"
        f"<h2>Summary</h2>{_summary(results, recs)}{''.join(sections)}</body></html>"
    )


def write_report(
    runs_dir: str | Path, output: str | Path | None = None, *, records: str | Path | None = AUTO
) -> Path:
    """Write the report for every run under ``runs_dir`` and the recorded runs of ``records``.

    Args:
        runs_dir: the root of the run directories.
        output: the HTML file (default ``runs_dir/report.html``).
        records: the store of recorded runs; ``"auto"`` (default) for the source checkout's
            ``docs/results`` when it exists; None for none.

    Returns:
        The path written.

    Raises:
        ValueError: ``records`` names a directory that does not exist.
    """
    inputs = gather(runs_dir, records)
    target = Path(output) if output is not None else Path(runs_dir) / "report.html"
    page = render_report(
        inputs.results, inputs.records, unreadable=inputs.unreadable, records_source=inputs.records_source
    )
    atomic_write_text(target, page)
    return target
