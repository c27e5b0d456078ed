"""A self-contained HTML report from run directories.

Every number shown comes from a ``result.json`` under the runs directory; figures are embedded as
base64 PNG so the single file reads offline. Layout: a summary table of every claim with its verdict,
then one section per paper (its claim, then each experiment with figures, a theory-vs-experiment table,
data caveats and provenance). Failed experiments appear with their error.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from dltheory.core.io import atomic_write_text, read_json
from dltheory.core.papers import PAPER_ORDER, PAPERS

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:60rem;
padding:0 1rem;line-height:1.45;color:#1b1b1b}
h1{font-size:1.6rem}h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
h3{margin-top:1.6rem}
.table-wrap{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem;min-width:100%}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f3f3f3}
img{max-width:100%;height:auto;display:block;margin:.6rem 0;border:1px solid #eee}
.agree{color:#0a6b2d;font-weight:600}.disagree{color:#b00020;font-weight:600}
.failed,.diverged{color:#b00020;font-weight:600}.reported{color:#555;font-weight:600}
.note{background:#fff8e1;border-left:4px solid #f0c040;padding:.4rem .7rem;margin:.5rem 0}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;padding:.5rem;font-size:.8rem}
details{margin:.5rem 0}summary{cursor:pointer}
"""


def collect_results(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Every ``result.json`` under ``runs_dir/<experiment>/<run>/``, with its run directory attached."""
    results = []
    for file in sorted(Path(runs_dir).glob("*/*/result.json")):
        payload = read_json(file)
        payload["_run_dir"] = str(file.parent)
        results.append(payload)
    return results


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


def _verdict_cell(agree: Any) -> str:
    if agree is True:
        return '<span class="agree">agree</span>'
    if agree is False:
        return '<span class="disagree">disagree</span>'
    return '<span class="reported">reported</span>'


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _summary(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        anchor = f'<a href="#{html.escape(r["experiment"])}">{html.escape(r["experiment"])}</a>'
        if r.get("status", "completed") != "completed":
            status = html.escape(r.get("status", "failed"))
            rows.append(
                [anchor, html.escape(r.get("error", "")), "", f'<span class="{status}">{status}</span>']
            )
            continue
        for claim in r.get("claims", []):
            rows.append(
                [
                    anchor,
                    html.escape(claim["name"]),
                    html.escape(_fmt(claim.get("measured"))),
                    _verdict_cell(claim.get("agree")),
                ]
            )
        if not r.get("claims"):
            rows.append([anchor, "(no claims)", "", _verdict_cell(None)])
    return _table(["experiment", "claim", "measured", "verdict"], rows)


def _figure(run_dir: Path, relative: str) -> str:
    path = run_dir / relative
    if not path.exists():
        return f'<p class="note">figure {html.escape(relative)} is missing</p>'
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(Path(relative).stem)}">'


def _experiment_section(r: dict[str, Any]) -> str:
    name = html.escape(r["experiment"])
    parts = [f'<h3 id="{name}">{name}</h3>', f"<p>{html.escape(r.get('description', ''))}</p>"]
    status = r.get("status", "completed")
    if status != "completed":
        parts.append(f'<p class="{html.escape(status)}">status: {html.escape(status)}</p>')
        if r.get("error"):
            parts.append(f"<pre>{html.escape(r['error'])}</pre>")
        if r.get("traceback"):
            parts.append(
                f"<details><summary>traceback</summary><pre>{html.escape(r['traceback'])}</pre></details>"
            )
    run_dir = Path(r["_run_dir"])
    parts.extend(_figure(run_dir, f) for f in r.get("figures", []))
    if r.get("claims"):
        rows = [
            [
                html.escape(c["name"]),
                html.escape(_fmt(c.get("predicted"))),
                html.escape(_fmt(c.get("measured"))),
                html.escape(_fmt(c.get("tolerance"))),
                _verdict_cell(c.get("agree")),
                html.escape(c.get("note", "")),
            ]
            for c in r["claims"]
        ]
        parts.append(_table(["claim", "predicted", "measured", "tolerance", "verdict", "note"], rows))
    for note in r.get("notes", []):
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    env = r.get("environment", {})
    provenance = [
        ["profile", html.escape(str(r.get("profile", "")))],
        ["seed", html.escape(str(r.get("seed", "")))],
        ["wall time", f"{float(r.get('wall_time_s', 0.0)):.1f} s"],
        [
            "versions",
            html.escape(
                ", ".join(
                    f"{k} {env[k]}" for k in ("dltheory", "python", "numpy", "scipy", "torch") if k in env
                )
            ),
        ],
        [
            "hardware",
            html.escape(
                f"{env.get('platform', '')}, {env.get('cpu_count', '?')} CPUs"
                + (f", GPU {env['gpu']}" if env.get("gpu") else "")
            ),
        ],
        ["run directory", html.escape(str(run_dir))],
    ]
    parts.append(_table(["", ""], provenance))
    config = json.dumps(r.get("config", {}), indent=1)
    parts.append(f"<details><summary>configuration</summary><pre>{html.escape(config)}</pre></details>")
    return "\n".join(parts)


def render_report(results: list[dict[str, Any]]) -> str:
    """The report's HTML for a list of result payloads (as read by :func:`collect_results`)."""
    order = {p: i for i, p in enumerate(PAPER_ORDER)}
    results = sorted(results, key=lambda r: (order.get(r.get("paper", ""), 99), r["experiment"]))
    sections = []
    for paper in sorted({r.get("paper", "") for r in results}, key=lambda p: order.get(p, 99)):
        chosen = [r for r in results if r.get("paper", "") == paper]
        known = PAPERS.get(paper)
        title = html.escape(known.title if known else paper)
        claim = html.escape(known.claim if known else "")
        body = "\n".join(_experiment_section(r) for r in chosen)
        sections.append(
            f'<section id="paper-{html.escape(paper)}"><h2>{title}</h2><p><b>Claim.</b> {claim}</p>'
            f"{body}</section>"
        )
    counts = {
        v: sum(1 for r in results if r.get("verdict") == v)
        for v in ("agree", "disagree", "reported", "failed")
    }
    overview = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>dltheory reproduction report</title><style>{_CSS}</style></head><body>"
        "<h1>dltheory reproduction report</h1>"
        f"<p>{len(results)} experiment runs: {html.escape(overview)}. Every number below is read from the "
        "runs' result files.</p><h2>Summary</h2>"
        f"{_summary(results)}{''.join(sections)}</body></html>"
    )


def write_report(runs_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the report for every run under ``runs_dir`` (default ``runs_dir/report.html``)."""
    target = Path(output) if output is not None else Path(runs_dir) / "report.html"
    atomic_write_text(target, render_report(collect_results(runs_dir)))
    return target
