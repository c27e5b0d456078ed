"""The fault campaign (issue #17): every fault a user can meet, tried on real processes and real files.

Each test names the fault, causes it (a process killed by its PID with SIGKILL or SIGTERM, a truncated or
corrupted file, missing data, a file-size limit standing in for a full disk, invalid input) and asserts
what the user gets: a resume bitwise equal to an uninterrupted run, an error naming the file and the
remedy, the documented exit code, nothing lost. docs/reliability.md lists them in one table.

The data set is a tiny learnable stand-in for MNIST written here (2,000 + 1,000 images), so the campaign
needs no download and runs the same everywhere; experiments use their ``tiny`` profile.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dltheory.cli import app
from dltheory.data import DataNotFoundError
from dltheory.data import loaders as loaders_module
from dltheory.data.idx import write_idx
from dltheory.data.sources import RemoteFile, download
from dltheory.exitcodes import ExitCode
from dltheory.runner.runs import read_metrics_file

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import fault_driver  # noqa: E402

DRIVER = HERE / "fault_driver.py"
TRAINING = "foundation-mnist-linear"  # 60 SGD steps, a checkpoint every 12, evaluations every 6
SECOND = "laurent-counterexample"  # a numpy experiment, for reproduce
VOLATILE = {"wall_time_s", "attempts", "environment", "date", "command", "commit", "commit_dirty"}
runner = CliRunner()


# ------------------------------------------------------------------------------------------- set-up


def _fake_mnist(folder: Path) -> None:
    """MNIST-format files whose classes are learnable (a bright bar whose place depends on the label)."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 2000), ("t10k", 1000)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 250
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Environment of every process of the campaign: the fake MNIST, no downloads, a private cache."""
    root = tmp_path_factory.mktemp("faults")
    (root / "data" / "mnist").mkdir(parents=True)
    _fake_mnist(root / "data" / "mnist")
    return {
        **os.environ,
        "DLTHEORY_DATA": str(root / "data"),
        "DLTHEORY_OFFLINE": "1",
        "XDG_CACHE_HOME": str(root / "cache"),
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }


def _cli(env, *args):
    """``dltheory ARGS`` in this process (the resumes and the references; only kills need a process)."""
    return runner.invoke(app, [str(a) for a in args], env={k: env[k] for k in _ENV_KEYS})


_ENV_KEYS = ("DLTHEORY_DATA", "DLTHEORY_OFFLINE", "XDG_CACHE_HOME")


@pytest.fixture(scope="module")
def reference(env, tmp_path_factory):
    """Uninterrupted runs: the training experiment alone, and reproduce of two experiments."""
    out = tmp_path_factory.mktemp("reference")
    done = _cli(env, "run", TRAINING, "-p", "tiny", "-o", out / "single")
    assert done.exit_code == 0, done.output
    both = _cli(env, "reproduce", "-p", "tiny", "-o", out / "both", "--only", TRAINING, "--only", SECOND,
                "--no-records")  # fmt: skip
    assert both.exit_code == 0, both.output
    return out


def _killed(env, tmp_path, point, *args, sig=signal.SIGKILL, mode="cli"):
    """Start the fault driver, wait until it reaches ``point``, send ``sig`` to its PID; return the
    process (waited for) and its stderr."""
    marker = tmp_path / f"reached-{point.replace(':', '-')}"
    proc = subprocess.Popen(
        [sys.executable, str(DRIVER), str(marker), point, mode, *map(str, args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"the process ended before {point}: {proc.stderr.read()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the process did not reach {point} in 120 s")
            time.sleep(0.02)
        assert int(marker.read_text()) == proc.pid
        os.kill(proc.pid, sig)  # this process only: we started it
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc, err


def _stable(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in VOLATILE}


def _assert_same_run(run: Path, ref: Path) -> None:
    """Bitwise the same outcome: result (but timing and provenance), metrics file, final parameters."""
    assert json.loads((run / "status.json").read_text())["status"] == "completed"
    result, expected = (json.loads((p / "result.json").read_text()) for p in (run, ref))
    assert _stable(result) == _stable(expected)
    assert (run / "metrics.jsonl").read_bytes() == (ref / "metrics.jsonl").read_bytes()
    for checkpoint in (ref / "checkpoints").glob("*.pt"):
        ours = torch.load(run / "checkpoints" / checkpoint.name, weights_only=True)
        theirs = torch.load(checkpoint, weights_only=True)
        assert ours["step"] == theirs["step"] and ours["history"] == theirs["history"]
        for key, tensor in theirs["model"].items():
            assert torch.equal(ours["model"][key], tensor), key
    assert not list(run.rglob(".*.tmp")), "temporary files left behind"
    for figure in result["figures"]:
        assert (run / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    assert "Traceback" not in output, output
    return lines[0]


# --------------------------------------------------------------------------------- SIGKILL: training


@pytest.mark.parametrize(
    ("point", "survivor"),
    [
        ("step:30", 24),  # mid-training, between checkpoints
        ("checkpoint-write:3", 24),  # half-way through writing the step-36 checkpoint
        ("result-write", 60),  # training done, half-way through writing result.json
    ],
)
def test_sigkill_during_training_then_resume_is_bitwise_equal(env, reference, tmp_path, point, survivor):
    out = tmp_path / "runs"
    proc, _ = _killed(env, tmp_path, point, "run", TRAINING, "-p", "tiny", "-o", out)
    assert proc.returncode == -signal.SIGKILL
    run = out / TRAINING / "tiny"
    assert json.loads((run / "status.json").read_text())["status"] == "running"
    assert not (run / "result.json").exists()  # never a half-written result
    assert torch.load(run / "checkpoints" / "train.pt", weights_only=True)["step"] == survivor
    read_metrics_file(run / "metrics.jsonl")  # every line that is there is whole

    again = _cli(env, "run", TRAINING, "-p", "tiny", "-o", out)
    assert again.exit_code == ExitCode.BAD_INPUT and "--resume" in _one_line_error(again.output)
    resumed = _cli(env, "run", TRAINING, "-p", "tiny", "-o", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    _assert_same_run(run, reference / "single" / TRAINING / "tiny")
    result = json.loads((run / "result.json").read_text())
    assert result["attempts"] == 2 and result["wall_time_s"] > 0  # the killed attempt's time included


def test_sigterm_interrupts_cleanly_with_its_exit_code(env, reference, tmp_path):
    out = tmp_path / "runs"
    proc, err = _killed(
        env, tmp_path, "step:30", "run", TRAINING, "-p", "tiny", "-o", out, sig=signal.SIGTERM
    )
    assert proc.returncode == ExitCode.INTERRUPTED
    assert "interrupted; continue it with --resume" in _one_line_error(err)
    run = out / TRAINING / "tiny"
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"
    assert _cli(env, "run", TRAINING, "-p", "tiny", "-o", out, "--resume").exit_code == 0
    _assert_same_run(run, reference / "single" / TRAINING / "tiny")


# ----------------------------------------------------------------------------------- SIGKILL: sweep


@pytest.mark.parametrize("point", ["cell:3.0", "cell-write:3"])
def test_sigkill_during_a_sweep_loses_nothing_and_recomputes_nothing_done(tmp_path, env, point):
    out, log = tmp_path / "sweep", tmp_path / "computed.log"
    proc, _ = _killed(env, tmp_path, point, out, log, mode="sweep")
    assert proc.returncode == -signal.SIGKILL
    assert log.read_text().split() == ["1.0", "2.0", "3.0"]
    assert len(list((out / "cells").glob("*.json"))) == 2  # cells 1 and 2; never a half-written cell file

    results = fault_driver.run_sweep(str(out), str(log))
    assert log.read_text().split() == ["1.0", "2.0", "3.0", "3.0", "4.0", "5.0"]  # only cells 3..5 again
    assert not list(out.rglob(".*.tmp"))
    reference = fault_driver.run_sweep(str(tmp_path / "reference"), str(log))
    assert [r.to_dict() for r in results] == [r.to_dict() for r in reference]


# ------------------------------------------------------------------------------- SIGKILL: reproduce


@pytest.mark.parametrize("point", ["step:30", "report"])
def test_sigkill_during_reproduce_then_rerun_completes_everything(env, reference, tmp_path, point):
    out = tmp_path / "runs"
    args = ("reproduce", "-p", "tiny", "-o", out, "--only", TRAINING, "--only", SECOND, "--no-records")
    proc, _ = _killed(env, tmp_path, point, *args)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "report.html").exists()
    rerun = _cli(env, *args)
    assert rerun.exit_code == 0, rerun.output
    for name in (TRAINING, SECOND):
        _assert_same_run(out / name / "tiny", reference / "both" / name / "tiny")
    assert (out / "report.html").read_text().count(f'id="{TRAINING}"') >= 1


# ------------------------------------------------------------------------------------- full disk


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write beyond the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_mid_run_keeps_the_previous_state_and_says_so(env, reference, tmp_path):
    ref = reference / "single" / TRAINING / "tiny"
    limit = (ref / "checkpoints" / "train.pt").stat().st_size - 1  # the last checkpoint cannot be written
    out = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "dltheory.cli", "run", TRAINING, "-p", "tiny", "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=_file_size_limit(limit),
        timeout=300,
    )
    assert proc.returncode == ExitCode.RESOURCE, proc.stderr
    message = _one_line_error(proc.stderr)
    assert "File too large" in message and "files written before are intact" in message
    assert "--resume" in message
    run = out / TRAINING / "tiny"
    state = torch.load(run / "checkpoints" / "train.pt", weights_only=True)  # the previous one, whole
    assert state["step"] in (12, 24, 36, 48) and state["status"] == "running"
    assert not list(run.rglob(".*.tmp"))
    assert json.loads((run / "status.json").read_text())["failure"] == "resource"
    read_metrics_file(run / "metrics.jsonl")  # no partial line

    resumed = _cli(env, "run", TRAINING, "-p", "tiny", "-o", out, "--resume")  # space freed
    assert resumed.exit_code == 0, resumed.output
    _assert_same_run(run, ref)


# ---------------------------------------------------------------------------------- damaged files


@pytest.fixture
def completed(reference, tmp_path):
    """A copy of the completed reference run to damage."""
    out = tmp_path / "runs"
    shutil.copytree(reference / "single", out)
    return out, out / TRAINING / "tiny"


def test_truncated_result_is_recomputed_on_resume_and_reported_not_crashed_on(env, reference, completed):
    out, run = completed
    text = (run / "result.json").read_text()
    (run / "result.json").write_text(text[: len(text) // 3])
    report = _cli(env, "report", out, "--no-records")
    assert report.exit_code == 0 and "Traceback" not in report.output, report.output
    assert "result.json" in (out / "report.html").read_text()  # listed as unreadable
    resumed = _cli(env, "run", TRAINING, "-p", "tiny", "-o", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "result.json was damaged" in resumed.output and "recomputed" in resumed.output
    _assert_same_run(run, reference / "single" / TRAINING / "tiny")


@pytest.mark.parametrize("damage", ["status", "metrics"])
def test_damaged_status_or_metrics_are_recomputed_on_resume(env, reference, completed, damage):
    out, run = completed
    if damage == "status":
        (run / "status.json").write_text('{"status": "comp')
    else:
        lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
        lines[5] = "\x00\x00garbage\n"
        (run / "metrics.jsonl").write_text("".join(lines))
    resumed = _cli(env, "run", TRAINING, "-p", "tiny", "-o", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert f"{'status.json' if damage == 'status' else 'metrics.jsonl'} was damaged" in resumed.output
    _assert_same_run(run, reference / "single" / TRAINING / "tiny")


def test_damaged_config_is_named_with_its_remedy(env, completed):
    out, run = completed
    (run / "config.json").write_text('{"experiment": "foundation-mnist-linear", "prof')
    resumed = _cli(env, "run", TRAINING, "-p", "tiny", "-o", out, "--resume")
    assert resumed.exit_code == ExitCode.DAMAGED_RUN
    line = _one_line_error(resumed.output)
    assert str(run / "config.json") in line and "invalid JSON" in line and "delete the run directory" in line


def test_damaged_checkpoint_of_an_unfinished_run_is_named_with_its_remedy(env, completed):
    out, run = completed
    (run / "status.json").write_text('{"status": "interrupted", "time": 0}')
    checkpoint = run / "checkpoints" / "train.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    resumed = _cli(env, "run", TRAINING, "-p", "tiny", "-o", out, "--resume")
    assert resumed.exit_code == ExitCode.DAMAGED_RUN
    line = _one_line_error(resumed.output)
    assert str(checkpoint) in line and "delete it to retrain" in line


# ------------------------------------------------------------------------- missing data, failures


def test_missing_data_tries_the_download_then_fails_with_exit_3(env, tmp_path, monkeypatch):
    """liao-mnist used to report "completed" without MNIST; now every experiment takes the one data path:
    search path, verified download (a dead mirror here), then an error naming files and folders."""
    monkeypatch.setitem(loaders_module._IDX_MIRRORS, "mnist", ("http://127.0.0.1:9/",))
    empty = {**env, "DLTHEORY_DATA": str(tmp_path / "nodata"), "DLTHEORY_OFFLINE": "0"}
    for name in ("liao-mnist", TRAINING):
        result = _cli(empty, "run", name, "-p", "tiny", "-o", tmp_path / "runs")
        assert result.exit_code == ExitCode.MISSING_DATA, result.output
        line = _one_line_error(result.output)
        assert "'mnist' not found" in line and str(tmp_path / "nodata" / "mnist") in line
        assert "download failed" in line and "train-images-idx3-ubyte.gz" in line and "offline" in line
        stored = json.loads((tmp_path / "runs" / name / "tiny" / "result.json").read_text())
        assert stored["status"] == "failed" and stored["failure"] == "data"


def test_reproduce_runs_the_others_writes_the_report_then_exits_non_zero(env, tmp_path):
    empty = {**env, "DLTHEORY_DATA": str(tmp_path / "nodata")}
    out = tmp_path / "runs"
    result = _cli(empty, "reproduce", "-p", "tiny", "-o", out, "--only", "liao-mnist", "--only", SECOND,
                  "--no-records", "--json")  # fmt: skip
    assert result.exit_code == ExitCode.MISSING_DATA
    payload = json.loads(result.stdout)
    assert {r["experiment"]: r["status"] for r in payload["runs"]} == {
        "liao-mnist": "failed",
        SECOND: "completed",
    }
    assert payload["exit_code"] == ExitCode.MISSING_DATA and (out / "report.html").exists()
    assert "liao-mnist failed" in _one_line_error(result.stderr)


def test_an_experiment_that_raises_exits_1_with_the_reason(env, tmp_path):
    result = _cli(env, "run", "liao-mnist", "-p", "tiny", "-o", tmp_path, "--set", "classes=[[1,7],[0,1]]")
    assert result.exit_code == ExitCode.EXPERIMENT_FAILED
    line = _one_line_error(result.output)
    assert "liao-mnist failed: ValueError: classes must give one pair per dataset" in line
    assert "result.json" in line


# ----------------------------------------------------------------------------------- downloads


class _CutHandler(http.server.BaseHTTPRequestHandler):
    """Announces 100,000 bytes, sends 1,000, then drops the connection."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"x" * 1000)
        self.wfile.flush()
        self.connection.shutdown(2)

    def log_message(self, *args):
        pass


def test_interrupted_download_leaves_no_partial_file(tmp_path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CutHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/f.bin"
        remote = RemoteFile("f.bin", (url,), hashlib.sha256(b"x" * 100000).hexdigest())
        with pytest.raises(DataNotFoundError, match="could not download f.bin"):
            download(remote, tmp_path / "dest", timeout=10)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert list((tmp_path / "dest").iterdir()) == []
