"""The documentation site in a real headless browser (Debian's chromium): it builds with
``mkdocs build --strict``, and served on 127.0.0.1 its home page and a paper's theory page show no broken
images, no console errors, rendered equations and no horizontal overflow at phone width (412 px)."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import CHROMIUM, run_chromium

ROOT = Path(__file__).resolve().parents[2]
MISSING = [
    what
    for what, present in (
        ("chromium (apt-get install chromium)", CHROMIUM is not None),
        ("mkdocs (pip install -e '.[docs]')", importlib.util.find_spec("mkdocs") is not None),
        ("mkdocs-material (pip install -e '.[docs]')", importlib.util.find_spec("material") is not None),
        ("mkdocstrings (pip install -e '.[docs]')", importlib.util.find_spec("mkdocstrings") is not None),
    )
    if not present
]
pytestmark = pytest.mark.skipif(bool(MISSING), reason="missing: " + ", ".join(MISSING))

PHONE_WIDTH = 412
# Headless Chromium's window is at least 500 px wide, so the page is loaded into a 412 px iframe (its own
# viewport: the phone layout's media queries apply) and inspected from the outer page, same origin.
PROBE = """<!doctype html><html><head><meta charset="utf-8"></head><body style="margin:0">
<iframe id="page" src="{url}" style="width:{width}px;height:900px;border:0"></iframe>
<script>
const frame = document.getElementById('page');
frame.addEventListener('load', () => {{
  const win = frame.contentWindow, doc = frame.contentDocument;
  const done = () => {{
    const imgs = Array.from(doc.images);
    const result = {{
      images: imgs.length,
      broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).length,
      overflow: doc.documentElement.scrollWidth > win.innerWidth,
      width: win.innerWidth,
      math: doc.querySelectorAll('.arithmatex').length,
      mathjax: doc.querySelectorAll('mjx-container').length,
      matherrors: doc.querySelectorAll('mjx-merror').length,
      title: doc.title,
    }};
    for (const [key, value] of Object.entries(result)) document.body.setAttribute('data-' + key, value);
    document.body.setAttribute('data-probed', 'yes');
  }};
  const mj = win.MathJax && win.MathJax.startup && win.MathJax.startup.promise;
  if (mj) {{ mj.then(done, done); }} else {{ done(); }}
}});
</script></body></html>"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _sample_record(docs: Path) -> None:
    """A recorded run in the schema of ``dltheory record`` (record.json, result.json, a real PNG figure),
    so that the record pages and figure embedding are exercised before any real run is recorded."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    folder = docs / "results" / "liao-dynamics" / "browser-test-sample"
    (folder / "figures").mkdir(parents=True)
    fig = Figure(figsize=(6, 3))
    ax = fig.add_subplot()
    ax.plot([0, 1, 2], [0.5, 0.2, 0.1], label="theory")
    ax.legend()
    fig.savefig(folder / "figures" / "curves.png")
    record = {
        "experiment": "liao-dynamics",
        "record": "browser-test-sample",
        "command": "dltheory run liao-dynamics --profile tiny",
        "profile": "tiny",
        "overrides": {},
        "commit": "0123456789abcdef",
        "date": "2026-01-01T00:00:00+00:00",
        "wall_time_s": 1.5,
        "versions": {"dltheory": "0.1.0", "torch": "2.13.0", "numpy": "2.4", "python": "3.11"},
        "machine": {"cpu_model": "Test CPU", "cpu_count": 2, "gpu": None},
        "verdict": "agree",
        "status": "completed",
    }
    claims = [
        {
            "name": "test error at t = 100",
            "predicted": 0.1,
            "measured": 0.101,
            "tolerance": 0.01,
            "agree": True,
            "note": "sample",
        }
    ]
    (folder / "record.json").write_text(json.dumps(record))
    (folder / "result.json").write_text(json.dumps({"experiment": "liao-dynamics", "claims": claims}))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built with ``mkdocs build --strict`` from a copy of docs/ plus a sample recorded run."""
    work = tmp_path_factory.mktemp("docs")
    shutil.copy(ROOT / "mkdocs.yml", work / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", work / "docs")
    for linked in ("src", "benchmarks"):
        (work / linked).symlink_to(ROOT / linked)
    _sample_record(work / "docs")
    out = work / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "MPLBACKEND": "Agg"}
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(work / "mkdocs.yml"), "-d", str(out)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-5000:]
    return out


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_chromium(*args, cwd=cwd, budget_ms=8000, timeout=180)


def _probe(site: Path, server: str, page: str, tmp_path: Path) -> tuple[str, list[str]]:
    probe = site / f"probe-{page.strip('/').replace('/', '-') or 'home'}.html"
    probe.write_text(PROBE.format(url="/" + page, width=PHONE_WIDTH))
    dom = _chromium("--enable-logging=stderr", "--v=0", "--dump-dom", server + probe.name, cwd=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-probed="yes"' in dom.stdout, "the probe did not run: " + dom.stderr[-2000:]
    console_errors = [line for line in dom.stderr.splitlines() if "CONSOLE" in line and "rror" in line]
    return dom.stdout, console_errors


def _attribute(dom: str, name: str) -> str:
    marker = f'{name}="'
    start = dom.index(marker) + len(marker)
    return dom[start : dom.index('"', start)]


@pytest.mark.parametrize(
    ("page", "needs_math", "images"),
    [("", False, 0), ("xiao/theory/", True, 0), ("liao/experiments/", True, 1), ("results/", False, 1)],
    ids=["home", "xiao-theory", "liao-experiments", "records"],
)
def test_page_renders_in_headless_chromium(
    site: Path, server: str, tmp_path: Path, page: str, needs_math: bool, images: int
) -> None:
    dom, console_errors = _probe(site, server, page, tmp_path)
    assert not console_errors, console_errors
    assert _attribute(dom, "data-width") == str(PHONE_WIDTH)
    assert "dltheory" in _attribute(dom, "data-title")
    assert int(_attribute(dom, "data-images")) >= images
    assert _attribute(dom, "data-broken") == "0", "broken images"
    assert _attribute(dom, "data-overflow") == "false", "page wider than a phone screen (412 px)"
    if needs_math:
        assert int(_attribute(dom, "data-math")) > 0
        assert int(_attribute(dom, "data-mathjax")) >= int(_attribute(dom, "data-math")), (
            "equations not typeset"
        )
        assert _attribute(dom, "data-matherrors") == "0", "MathJax could not parse an equation"


def test_generated_pages_are_in_the_site(site: Path) -> None:
    cli = (site / "reference" / "cli" / "index.html").read_text()
    for command in ("dltheory run", "dltheory reproduce", "dltheory meanfield", "--profile"):
        assert command in cli
    api = (site / "xiao" / "api" / "index.html").read_text()
    assert "critical_sigma_w2" in api and "delta_orthogonal_" in api
    experiments = (site / "xiao" / "experiments" / "index.html").read_text()
    assert "xiao-depth" in experiments and "signalprop-phase-diagram" in experiments
    assert (site / "assets" / "mathjax" / "tex-chtml.js").is_file()
    records = (site / "results" / "index.html").read_text()
    assert "browser-test-sample" in records and "Test CPU" in records and "test error at t = 100" in records
