"""mkdocs hooks of the dltheory documentation: every page part that comes from code or files is generated
here at build time, never typed by hand (and no experiment or benchmark is ever run by the build).

A page asks for generated content with a marker comment on a line of its own:

- ``<!-- dltheory:cli -->``: the reference of every ``dltheory`` sub-command, from the typer app;
- ``<!-- dltheory:experiments PAPER -->``: every registered experiment of a paper (its module docstring,
  profiles, how to run it) with the claims and figures of its recorded runs; ``other`` renders the
  experiments of papers that have no page in :data:`PAPER_PAGES`;
- ``<!-- dltheory:headline -->``: one line per experiment with the verdict of its latest recorded run;
- ``<!-- dltheory:records -->``: the table of every recorded run under ``docs/results/<experiment>/<record>/``
  and one section per record (provenance, claims, figures);
- ``<!-- dltheory:claims EXPERIMENT/RECORD | TEXT -->``: the claims of one record whose name contains
  ``TEXT`` (all of them without ``| TEXT``), with a link to the record: prose quotes numbers this way;
- ``<!-- dltheory:gpu-raw -->``: the earlier raw GPU results ``docs/results/gpu_*.json``;
- ``<!-- dltheory:benchmarks -->``: the recorded benchmark files ``docs/results/benchmarks/*.json``;
  ``<!-- dltheory:benchmarks NAME -->`` only ``NAME.json`` (prose elsewhere quotes a benchmark this way).

It also serves MathJax from the site itself (copied from the ``django-static-mathjax`` wheel of the ``docs``
extra), so pages render offline, and adds the nav entries of optional pages that exist.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.dltheory")

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!--\s*dltheory:([a-z-]+)(?:\s+([^>]*?))?\s*-->\s*$", re.MULTILINE)
ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|exc|obj|math):`~?([^`]+)`")
HTML_ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|exc|obj):(<code>)")
MATHJAX_PARTS = ("tex-chtml.js", "output/chtml", "input", "ui", "a11y", "adaptors")
MATHJAX_DEST = "assets/mathjax"

#: pages shown in the nav only when their file exists (written by other parts of the project)
OPTIONAL_PAGES = (
    ("Residual networks", "residual/index.md", "Papers"),
    ("Reliability", "reliability.md", "Results"),
    ("GPU", "gpu.md", "Results"),
)

#: docstrings griffe cannot parse cleanly in modules whose docstrings are maintained elsewhere: their
#: warnings are shown as INFO (listed here so that they are fixed at the source, not forgotten); every other
#: docstring warning fails the strict build. tests/docs/test_docstrings.py parses every module of the
#: package (rendered or not) and fails on an unlisted issue and on an entry whose module has none left.
KNOWN_DOCSTRING_ISSUES: tuple[str, ...] = ()

#: the page that documents each paper's experiments (``<!-- dltheory:experiments PAPER -->`` on it)
PAPER_PAGES = {
    "xiao": "xiao/experiments.md",
    "liao": "liao/experiments.md",
    "arora": "arora/experiments.md",
    "laurent": "laurent/experiments.md",
    "foundation": "development.md",
}
OTHER_PAGE = "results/index.md"

_rendered_experiments: set[str] = set()


class _KnownDocstringIssues(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno == logging.WARNING and any(k in message for k in KNOWN_DOCSTRING_ISSUES):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = f"known docstring issue (to fix in the module): {message}", ()
        return True


def on_startup(command: str, dirty: bool) -> None:
    griffe_log = logging.getLogger("mkdocs.plugins.griffe")
    if not any(isinstance(f, _KnownDocstringIssues) for f in griffe_log.filters):
        griffe_log.addFilter(_KnownDocstringIssues())


# ------------------------------------------------------------------------------------------ events


def on_config(config: Any) -> Any:
    """Add the optional pages that exist to the nav section they belong to."""
    docs_dir = Path(config["docs_dir"])
    nav = config.get("nav") or []
    for title, path, section in OPTIONAL_PAGES:
        if not (docs_dir / path).is_file() or _in_nav(nav, path):
            continue
        for entry in nav:
            if isinstance(entry, dict) and section in entry and isinstance(entry[section], list):
                entry[section].append({title: path})
                break
        else:
            nav.append({title: path})
    _rendered_experiments.clear()
    return config


def on_files(files: Files, config: Any) -> Files:
    """Serve MathJax (TeX input, CHTML output and its fonts) from ``assets/mathjax/`` of the site."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        log.warning(
            "MathJax not found: install the docs extra (pip install -e '.[docs]', which brings "
            "django-static-mathjax); equations will not render"
        )
        return files
    es5 = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5"
    for part in MATHJAX_PARTS:
        source = es5 / part
        paths = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        for path in paths:
            rel = path.relative_to(es5).as_posix()
            files.append(File.generated(config, f"{MATHJAX_DEST}/{rel}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Replace every ``<!-- dltheory:... -->`` marker of the page by its generated Markdown."""
    docs_dir = Path(config["docs_dir"])
    page_dir = posixpath.dirname(page.file.src_uri)

    def replace(match: re.Match[str]) -> str:
        kind, argument = match.group(1), (match.group(2) or "").strip()
        if kind == "cli":
            return render_cli()
        if kind == "experiments":
            return render_experiments(argument, docs_dir, page_dir)
        if kind == "headline":
            return render_headline(docs_dir, page_dir)
        if kind == "records":
            return render_records(docs_dir, page_dir)
        if kind == "claims":
            return render_claims(argument, docs_dir, page_dir)
        if kind == "gpu-raw":
            return render_gpu_raw(docs_dir)
        if kind == "benchmarks":
            return render_benchmarks(docs_dir, argument, page_dir)
        log.warning("%s: unknown generated-content marker %r", page.file.src_uri, kind)
        return match.group(0)

    return MARKER.sub(replace, markdown)


def on_page_content(html: str, page: Any, config: Any, files: Files) -> str:
    """Sphinx roles left in docstrings (``:func:`x```) render as plain code."""
    return HTML_ROLE.sub(r"\1", html)


# -------------------------------------------------------------------------------------------- CLI


def render_cli() -> str:
    """Markdown reference of every ``dltheory`` command, from the typer app (usage, help, options)."""
    import typer

    from dltheory.cli import app

    root = typer.main.get_command(app)
    out: list[str] = []
    _render_command(root, "dltheory", None, out, level=2)
    return "\n".join(out)


def _render_command(command: Any, name: str, parent: Any, out: list[str], level: int) -> None:
    ctx = command.context_class(command, info_name=name.split()[-1], parent=parent)
    anchor = "cli-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    out.append(f"{'#' * level} `{name}` {{ #{anchor} }}\n")
    if command.help:
        out.append(_clean_help(command.help) + "\n")
    usage = " ".join(command.collect_usage_pieces(ctx))
    out.append(f"```text\n{name} {usage}\n```\n")
    records = []
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        record = param.get_help_record(ctx)
        if record:
            records.append(record)
    if records:
        out.append("| argument / option | description |\n|---|---|")
        for flags, text in records:
            out.append(f"| `{_cell(flags)}` | {_cell(_clean_help(text))} |")
        out.append("")
    if hasattr(command, "list_commands"):
        for sub in command.list_commands(ctx):
            child = command.get_command(ctx, sub)
            if child is not None and not getattr(child, "hidden", False):
                _render_command(child, f"{name} {sub}", ctx, out, level=min(level + 1, 4))


def _clean_help(text: str) -> str:
    text = re.sub(r"\[/?[a-z ]+\]", "", text)  # rich markup
    return text.replace("\b\n", "").strip()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# -------------------------------------------------------------------------------------- experiments


def render_experiments(paper: str, docs_dir: Path, page_dir: str) -> str:
    """Every registered experiment of ``paper``: what it does (module docstring), how to run it, its
    profiles and its recorded runs (claims and figures)."""
    from dltheory.experiments.registry import experiments

    if paper == "other":
        specs = [spec for spec in experiments().values() if spec.paper not in PAPER_PAGES]
        if not specs:
            return "None: every registered experiment is documented on its paper's page.\n"
    else:
        specs = [spec for spec in experiments().values() if spec.paper == paper]
    if not specs:
        log.warning("no registered experiment for paper %r", paper)
        return f"No registered experiment for `{paper}`."
    records = _load_records(docs_dir)
    out: list[str] = []
    for spec in specs:
        _rendered_experiments.add(spec.name)
        out.append(_experiment_section(spec, records, page_dir))
    return "\n".join(out)


def _experiment_section(spec: Any, records: list[dict[str, Any]], page_dir: str) -> str:
    import importlib

    module = importlib.import_module(f"dltheory.experiments.{spec.module_name}")
    doc = ROLE.sub(
        lambda m: f"`{m.group(1).split('.')[-1] if '~' in m.group(0) else m.group(1)}`",
        (module.__doc__ or "").strip(),
    )
    lines = [f"## `{spec.name}` {{ #{spec.name} }}\n", f"*{spec.description}*\n", doc + "\n"]
    lines.append(
        "```bash\n"
        f"dltheory run {spec.name} --profile quick      # profiles: {', '.join(spec.profiles)}\n"
        "```\n"
    )
    lines.append(_profiles_table(spec))
    mine = [r for r in records if r["experiment"] == spec.name]
    if not mine:
        lines.append(
            "**No recorded run yet.** When a run of this experiment is recorded under "
            f"`docs/results/{spec.name}/<record>/`, its claims and figures appear here.\n"
        )
    for record in mine:
        lines.append(_record_block(record, page_dir, level=3, link=True))
    return "\n".join(lines)


def _profiles_table(spec: Any) -> str:
    names = list(spec.profiles)
    configs = {name: dataclasses.asdict(spec.profiles[name]) for name in names}
    fields = list(configs[names[0]])
    rows = ["| field | " + " | ".join(f"`{n}`" for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for field in fields:
        cells = [_short(configs[n].get(field), 48) for n in names]
        rows.append(f"| `{field}` | " + " | ".join(f"`{_cell(c)}`" for c in cells) + " |")
    return '??? info "Profiles (configuration fields)"\n\n' + "\n".join("    " + r for r in rows) + "\n"


def render_headline(docs_dir: Path, page_dir: str) -> str:
    """One row per registered experiment: paper, what it checks, the verdict of its latest record."""
    from dltheory.experiments.registry import experiments

    latest: dict[str, dict[str, Any]] = {}
    for record in _load_records(docs_dir):
        latest[record["experiment"]] = record  # records are sorted by date
    rows = ["| experiment | what it checks | latest recorded run |", "|---|---|---|"]
    for spec in experiments().values():
        page = PAPER_PAGES.get(spec.paper, OTHER_PAGE)
        link = f"[`{spec.name}`]({posixpath.relpath(page, page_dir or '.')}#{spec.name})"
        record = latest.get(spec.name)
        if record is None:
            status = "no recorded run yet"
        else:
            target = posixpath.relpath(OTHER_PAGE, page_dir or ".")
            overrides = record.get("overrides") or {}
            changed = ", ".join(f"{k}={v}" for k, v in overrides.items())
            changed = f" with {_cell(changed)}" if changed else ""
            status = (
                f"[{_verdict(record)}]({target}#{_anchor(record)}): `{_cell(str(record['record']))}` "
                f"({_cell(str(record.get('profile', '')))} profile{changed}; {_wall(record)}; "
                f"{_cell(str(record.get('date', ''))[:10])}; {_cell(_machine(record))})"
            )
        rows.append(f"| {link} | {_cell(spec.description)} | {status} |")
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------------------- records


def _load_records(docs_dir: Path) -> list[dict[str, Any]]:
    """Recorded runs: ``docs/results/<experiment>/<record>/record.json`` with result.json and figures."""
    found = []
    for path in sorted(docs_dir.glob("results/*/*/record.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("unreadable record %s: %s", path, exc)
            continue
        folder = path.parent
        record.setdefault("experiment", folder.parent.name)
        record.setdefault("record", folder.name)
        result_path = folder / "result.json"
        try:
            record["_result"] = json.loads(result_path.read_text()) if result_path.is_file() else {}
        except json.JSONDecodeError as exc:
            log.warning("unreadable %s: %s", result_path, exc)
            record["_result"] = {}
        record["_dir"] = folder.relative_to(docs_dir).as_posix()
        record["_figures"] = [
            p.relative_to(docs_dir).as_posix() for p in sorted(folder.glob("figures/*.png"))
        ]
        found.append(record)
    found.sort(key=lambda r: (r["experiment"], str(r.get("date", ""))), reverse=False)
    return found


def _anchor(record: dict[str, Any]) -> str:
    return "rec-" + re.sub(r"[^a-z0-9]+", "-", f"{record['experiment']}-{record['record']}".lower()).strip(
        "-"
    )


def _machine(record: dict[str, Any]) -> str:
    machine = record.get("machine") or {}
    if not isinstance(machine, dict):
        return str(machine)
    parts = [str(machine.get("gpu") or "")] if machine.get("gpu") else []
    cpu = machine.get("cpu_model")
    if cpu:
        count = machine.get("cpu_count")
        threads = machine.get("torch_threads")
        used = f", {threads} thread{'s' * (threads != 1)} used" if isinstance(threads, int) else ""
        parts.append(f"{cpu}" + (f" ({count} cores{used})" if count else ""))
    return "; ".join(parts) or "unknown"


def _wall(record: dict[str, Any]) -> str:
    wall = record.get("wall_time_s")
    if not isinstance(wall, int | float):
        return ""
    text = f"{wall:.0f} s" if wall < 120 else f"{wall / 60:.1f} min"
    attempts = record.get("attempts")
    return text + (f" ({attempts} attempts)" if isinstance(attempts, int) and attempts > 1 else "")


def render_records(docs_dir: Path, page_dir: str) -> str:
    records = _load_records(docs_dir)
    if not records:
        return (
            "**No recorded run yet.** Record a completed run with `dltheory record` (it copies the run into "
            "`docs/results/<experiment>/<record>/` with a `record.json`); this page lists it on the next "
            "docs build.\n"
        )
    rows = [
        "| experiment | record | profile | verdict | wall time | machine | date |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        rows.append(
            f"| `{r['experiment']}` | [{_cell(str(r['record']))}](#{_anchor(r)}) | "
            f"{_cell(str(r.get('profile', '')))}"
            f" | {_verdict(r)} | {_wall(r)} | {_cell(_machine(r))} | {_cell(str(r.get('date', ''))[:10])} |"
        )
    out = ["\n".join(rows) + "\n"]
    for r in records:
        out.append(_record_block(r, page_dir, level=2, link=False))
    return "\n".join(out)


def _verdict(record: dict[str, Any]) -> str:
    verdict = record.get("verdict") or record["_result"].get("verdict") or record.get("status", "")
    return {"agree": "agree", "disagree": "**disagree**"}.get(str(verdict), _cell(str(verdict)))


def _record_block(record: dict[str, Any], page_dir: str, level: int, link: bool) -> str:
    title = (
        f"`{record['experiment']}` / `{record['record']}`"
        if not link
        else f"Recorded run `{record['record']}`"
    )
    anchor = _anchor(record) if not link else _anchor(record) + "-summary"
    versions = record.get("versions") or {}
    version_text = ", ".join(f"{k} {v}" for k, v in versions.items()) if isinstance(versions, dict) else ""
    lines = [f"{'#' * level} {title} {{ #{anchor} }}\n"]
    facts = [
        ("profile", record.get("profile")),
        ("verdict", _verdict(record)),
        ("status", record.get("status")),
        ("command", f"`{record['command']}`" if record.get("command") else None),
        ("overrides", f"`{json.dumps(record['overrides'])}`" if record.get("overrides") else None),
        ("wall time", _wall(record)),
        ("machine", _machine(record)),
        ("date", record.get("date")),
        ("commit", f"`{str(record['commit'])[:12]}`" if record.get("commit") else None),
        ("versions", version_text),
    ]
    lines.append("\n".join(f"- **{k}**: {v}" for k, v in facts if v) + "\n")
    if link:
        target = posixpath.relpath("results/index.md", page_dir or ".")
        lines.append(f"[Full record]({target}#{_anchor(record)})\n")
    claims = record["_result"].get("claims") or []
    if claims:
        lines.append(_claims_table(claims))
    notes = record["_result"].get("notes") or []
    if notes:
        lines.append("\n".join(f"- *{_cell(str(n))}*" for n in notes) + "\n")
    for figure in record["_figures"]:
        rel = posixpath.relpath(figure, page_dir or ".")
        lines.append(f"![{record['experiment']}: {Path(figure).stem}]({rel})\n")
    return "\n".join(lines)


def _claims_table(claims: list[dict[str, Any]]) -> str:
    rows = ["| claim | predicted | measured | tolerance | agree | note |", "|---|---|---|---|---|---|"]
    for claim in claims:
        agree = claim.get("agree")
        mark = "reported" if agree is None else ("yes" if agree else "**no**")
        rows.append(
            f"| {_cell(str(claim.get('name', '')))} | {_cell(_short(claim.get('predicted')))} | "
            f"{_cell(_short(claim.get('measured')))} | {_cell(_short(claim.get('tolerance')))} | {mark} | "
            f"{_cell(str(claim.get('note', '')))} |"
        )
    return "\n".join(rows) + "\n"


def render_claims(argument: str, docs_dir: Path, page_dir: str) -> str:
    """The claims of one recorded run (``EXPERIMENT/RECORD``), or only those whose name contains the text
    after ``|`` (case-insensitive), with a link to the full record. A missing record or a filter that
    matches nothing is a build warning (an error under ``mkdocs build --strict``)."""
    target, _, wanted = (part.strip() for part in argument.partition("|"))
    experiment, _, name = target.partition("/")
    found = [r for r in _load_records(docs_dir) if r["experiment"] == experiment and r["record"] == name]
    if not found:
        log.warning("dltheory:claims: no recorded run %r under docs/results/", target)
        return f"*No recorded run `{target}`.*\n"
    record = found[0]
    claims = [
        c for c in record["_result"].get("claims") or [] if wanted.lower() in str(c.get("name", "")).lower()
    ]
    if not claims:
        log.warning("dltheory:claims: no claim of %s contains %r", target, wanted)
        return f"*No claim of `{target}` contains {wanted!r}.*\n"
    link = posixpath.relpath("results/index.md", page_dir or ".")
    profile, date = _cell(str(record.get("profile", ""))), _cell(str(record.get("date", ""))[:10])
    caption = (
        f"From the recorded run [`{target}`]({link}#{_anchor(record)}) ({profile} profile, {_wall(record)}, "
        f"{_cell(_machine(record))}, {date}):\n"
    )
    return caption + "\n" + _claims_table(claims)


def _short(value: Any, limit: int = 60) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:,.0f}" if 1e4 <= abs(value) < 1e15 else f"{value:.4g}"
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, default=str)
        text = re.sub(r"(\d+\.\d{5,})", lambda m: f"{float(m.group(1)):.4g}", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------------ raw GPU runs


def render_gpu_raw(docs_dir: Path) -> str:
    """The earlier GPU runs of ``benchmarks/gpu_xiao.py`` (their own JSON, not the record schema)."""
    files = sorted(docs_dir.glob("results/gpu_*.json"))
    if not files:
        return "No earlier raw GPU result files.\n"
    out = []
    for path in files:
        payload = json.loads(path.read_text())
        args = payload.get("args", {})
        out.append(f"### `{path.name}`\n")
        out.append(
            f"Device **{payload.get('device', '?')}**, torch {payload.get('torch', '?')}; "
            f"sigma_w2 = {_short(payload.get('sigma_w2'))}, sigma_b2 = {_short(payload.get('sigma_b2'))} "
            f"(q* = {args.get('q_star', '?')}), {args.get('channels', '?')} channels, batch "
            f"{args.get('batch_size', '?')}, lr {args.get('lr', '?')}, warm-up {args.get('warmup', '?')}, "
            f"time budget {args.get('budget_s', '?')} s; wall time {_short(payload.get('wall_s'))} s. "
            f"[Raw file]({path.name}).\n"
        )
        out.append(
            "| depth | status | steps | s / step | test accuracy | test loss | peak memory (GB) |\n"
            "|---|---|---|---|---|---|---|"
        )
        for depth, run in (payload.get("runs") or {}).items():
            accuracy = run.get("test_accuracy")
            out.append(
                f"| {depth} | {run.get('status', '')} | {run.get('steps', '')} | "
                f"{_short(run.get('s_per_step'))} | "
                f"{'' if accuracy is None else f'{100 * accuracy:.1f}%'} | {_short(run.get('test_loss'))} | "
                f"{_short(run.get('memory_gb'))} |"
            )
        out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------------------------- benchmarks


def render_benchmarks(docs_dir: Path, name: str = "", page_dir: str = "") -> str:
    """Tables of the recorded benchmark files ``docs/results/benchmarks/<name>.json`` (written by
    ``python benchmarks/run_all.py --record``), each with the machine and date it was measured on; only
    ``name`` if given (with links relative to the page's folder ``page_dir``)."""
    files = sorted((docs_dir / "results" / "benchmarks").glob(f"{name or '*'}.json"))
    if name and not files:
        log.warning("no recorded benchmark %r under docs/results/benchmarks", name)
        return f"**Benchmark `{name}` not recorded yet** (`python benchmarks/run_all.py --record {name}`).\n"
    if not files:
        return (
            "**No recorded benchmark yet.** On a quiet machine run `make bench` and then "
            "`python benchmarks/run_all.py --record`, and commit "
            "`docs/results/benchmarks/*.json`; the tables appear here on the next docs build.\n"
        )
    rows_of = _benchmark_rows()
    out = []
    for path in files:
        payload = json.loads(path.read_text())
        title = str(payload.get("name", path.stem))
        if not name:  # the Benchmarks page: one section per file
            out.append(f"## `{title}` {{ #bench-{re.sub(r'[^a-z0-9]+', '-', title.lower())} }}\n")
        machine = payload.get("machine") or {}
        out.append(
            f"Measured {str(payload.get('date', '?'))[:19].replace('T', ' ')} on {_cell(_machine(payload))}"
            + (
                f", load average {machine['load_average']}"
                if isinstance(machine, dict) and machine.get("load_average")
                else ""
            )
            + (f", commit `{str(payload['commit'])[:12]}`" if payload.get("commit") else "")
            + (f" (`{payload['command']}`)" if payload.get("command") else "")
            + f". [Raw file]({posixpath.relpath('results/benchmarks/' + path.name, page_dir or '.')}).\n"
        )
        rows = rows_of(payload.get("result", payload))
        if not rows:
            out.append("(no numeric entries)\n")
            continue
        out.append(
            "| benchmark | metric | value | baseline | ratio | target | met |\n|---|---|---|---|---|---|---|"
        )
        for row in rows:
            unit = str(row.get("unit", ""))
            met = {True: "yes", False: "**no**"}.get(row.get("met"), "")
            out.append(
                f"| {_cell(str(row.get('benchmark', '')))} | {_cell(str(row.get('metric', '')))} | "
                f"{_cell(_with_unit(row.get('value'), unit))} | "
                f"{_cell(_with_unit(row.get('baseline'), unit))} | "
                f"{_cell(_with_unit(row.get('ratio'), 'x'))} | "
                f"{_cell(str(row.get('target', '') or ''))} | {met} |"
            )
        out.append("")
    return "\n".join(out)


def _with_unit(value: Any, unit: str) -> str:
    if value is None:
        return ""
    return f"{_short(value, 40)} {unit}".strip()


def _benchmark_rows() -> Any:
    """``_rows`` of ``benchmarks/run_all.py`` (one definition of what a row of a result file is)."""
    spec = importlib.util.spec_from_file_location("_dltheory_run_all", ROOT / "benchmarks" / "run_all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._rows


# ------------------------------------------------------------------------------------------ helpers


def _in_nav(nav: Any, path: str) -> bool:
    if isinstance(nav, str):
        return nav == path
    if isinstance(nav, list):
        return any(_in_nav(item, path) for item in nav)
    if isinstance(nav, dict):
        return any(_in_nav(item, path) for item in nav.values())
    return False
