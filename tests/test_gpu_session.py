"""benchmarks/gpu_session.py and bench_gpu_step.py (the GPU window's script) run through the library on a
CPU at tiny sizes: every stage writes its file, the headline run directory comes back recordable."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from support import MNIST_FILES, has_dataset

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not has_dataset("mnist", MNIST_FILES), reason="MNIST not available")


def test_the_gpu_session_smoke_run_writes_every_stage(tmp_path):
    out = tmp_path / "session"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_session.py"),
            str(out),
            "--smoke",
            "--window-s",
            "400",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    log = json.loads((out / "session.json").read_text())
    assert set(log["stages"]) == {"benchmark", "tf32", "headline"}
    assert log["stages"]["headline"]["result"]["exit"] == 0, log["stages"]["headline"]["result"]["tail"]
    rows = json.loads((out / "gpu_step.json").read_text())["rows"]
    assert {row["metric"] for row in rows} >= {"seconds per step", "peak memory"}
    tf32 = json.loads((out / "tf32.json").read_text())
    assert [entry["precision"] for entry in tf32] == ["fp32", "tf32"]
    assert tf32[0]["jacobian_mean_sq_singular_value"] == pytest.approx(
        tf32[1]["jacobian_mean_sq_singular_value"]
    )
    with tarfile.open(out / "headline.tar.gz") as archive:
        names = archive.getnames()
    assert "gpu-headline/result.json" in names and not any("checkpoints/" in n for n in names)


def test_the_gpu_benchmark_skips_without_cuda_unless_smoke(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the skip path is not taken")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu_step.py"), "--out", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "needs CUDA" in done.stdout and not (tmp_path / "x.json").exists()
