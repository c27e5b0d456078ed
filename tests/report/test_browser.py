"""The report rendered in a real headless browser (Debian's chromium): no broken images, no console
errors, and a phone-width screenshot kept as a test artifact in test-artifacts/."""

import base64
import io
import shutil
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from dltheory.experiments.base import Claim, Result
from dltheory.experiments.execute import environment_info
from dltheory.report.html import write_report
from dltheory.runner.records import record_run, run_provenance
from dltheory.runner.runs import RunDir
from support import CHROMIUM, run_chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PROBE = """<script>
window.addEventListener('error', e => document.title = 'JSERROR ' + e.message, true);
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).length;
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-broken', broken);
  document.body.setAttribute('data-overflow', document.documentElement.scrollWidth > window.innerWidth);
});
</script>"""


def _sample_runs(root: Path) -> None:
    for name, agree in (("demo-agree", True), ("demo-disagree", False)):
        run = RunDir(root / name / "tiny", {"x": 1})
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.plot([0, 1, 2], [0, 1, 4], label="theory")
        ax.set_xlabel("step")
        ax.set_ylabel("value")
        ax.legend()
        fig.savefig(run.figures / "f.png")
        plt.close(fig)
        payload = Result(name, [Claim("a claim", 1.0, 1.01, 0.05, agree)], notes=["a caveat"]).to_dict()
        payload.update(figures=["figures/f.png"], paper="foundation", description="demo", wall_time_s=1.0)
        run.write_result(payload)
    record_source = RunDir(root.parent / "to-record" / "demo-agree" / "cpu-1000", {"x": 1})
    shutil.copy(root / "demo-agree" / "tiny" / "figures" / "f.png", record_source.figures / "f.png")
    payload = Result("demo-agree", [Claim("a claim at depth 10000", 1.0, 0.99, 0.05, True)]).to_dict()
    payload.update(
        figures=["figures/f.png"],
        paper="foundation",
        description="demo",
        profile="cpu-1000",
        seed=0,
        wall_time_s=7200.0,
        environment=environment_info(),
        **run_provenance(
            {"depth": "10000"}, argv=["benchmarks/a_rather_long_script_name.py", "--depth=10000"]
        ),
    )
    record_source.write_result(payload)
    record_source.set_status("completed")
    record_run(record_source.path, root.parent / "store")
    failed = RunDir(root / "demo-failed" / "tiny", {"x": 1})
    failed.write_result(
        {**Result("demo-failed", status="failed").to_dict(), "error": "RuntimeError: boom", "paper": "xiao"}
    )


def _chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_chromium(*args, cwd=cwd, budget_ms=5000, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs Debian's chromium)")
@pytest.mark.parametrize("with_records", [True, False], ids=["records", "no-records"])
def test_report_renders_in_headless_chromium(tmp_path, with_records):
    runs = tmp_path / "runs"
    _sample_runs(runs)
    report = write_report(runs, records=tmp_path / "store" if with_records else None)
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))

    dom = _chromium(
        "--window-size=412,900",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        probed.as_uri(),
        cwd=tmp_path,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    images = 4 if with_records else 2  # with records: the record's figure and the scoreboard's thumbnail
    assert f'data-images="{images}"' in dom.stdout and 'data-broken="0"' in dom.stdout
    assert 'data-overflow="false"' in dom.stdout, "page wider than a phone screen"
    assert "<title>JSERROR" not in dom.stdout
    console_errors = [line for line in dom.stderr.splitlines() if "CONSOLE" in line and "rror" in line]
    assert not console_errors, console_errors

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / ("report-phone.png" if with_records else "report-phone-no-records.png")
    result = _chromium("--window-size=412,1400", f"--screenshot={shot}", report.as_uri(), cwd=tmp_path)
    assert result.returncode == 0 and shot.exists()
    image = plt.imread(io.BytesIO(shot.read_bytes()))
    assert image.shape[1] == 412 and image.std() > 0.01  # not a blank page
    assert base64.b64encode(shot.read_bytes())[:4]
