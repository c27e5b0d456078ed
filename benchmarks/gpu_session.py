"""Everything issue 13 needs from one short GPU window (about 9 minutes), through the library.

Stages, each writing its JSON into OUT as soon as it has numbers (a killed session still leaves them):

1. ``gpu_step.json``: :mod:`bench_gpu_step` at 1,250 and 10,000 layers (64 channels, batch 128), eager vs
   CUDA-graph steps.
2. ``tf32.json``: the effect of TF32 on isometry at 10,000 layers (delta-orthogonal, q* from theory):
   per-layer gradient norms on one MNIST batch (first/last and max/min ratios) and the Jacobian's mean
   squared singular value of the stack (Hutchinson, :func:`dltheory.nn.jacobian_moments`), FP32 vs TF32.
3. The recorded headline: ``dltheory run xiao-depth --profile paper --device cuda`` with depths 1,250 and
   10,000, the Gaussian baseline at 10,000 layers, and a wall-clock budget sized to what is left of the
   window (no checkpoints: a 10,000-layer checkpoint is 4 GB and could not leave the machine); the run
   directory (result, metrics, figures) comes back as ``headline.tar.gz``, ready for ``dltheory record``.

``session.json`` logs the stages and their wall times. MNIST is searched as usual (DLTHEORY_DATA); on the
device machine carry it in the git-ignored ``gpu-data/`` folder (this script adds ``gpu-data`` to the
search path when it exists).

    PYTHONPATH=src python benchmarks/gpu_session.py "$OUT" --window-s 540
    python benchmarks/gpu_session.py /tmp/session --smoke        # CPU, tiny sizes, under a minute
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_gpu_step  # noqa: E402
from dltheory.core.io import atomic_write_json  # noqa: E402
from dltheory.experiments._xiao_common import gradient_spread, image_data, stack_gradient_norms  # noqa: E402
from dltheory.nn.convstack import reference_conv_stack  # noqa: E402
from dltheory.nn.jacobian import jacobian_moments  # noqa: E402
from dltheory.nn.models import VanillaCNN  # noqa: E402
from dltheory.runner.devices import device_info, float32_precision  # noqa: E402
from dltheory.signalprop import q_star_for_depth  # noqa: E402


def isometry(depth: int, channels: int, precision: str, device: str, probes: int) -> dict:
    """Gradient-norm spread and Jacobian mean squared singular value of a delta-orthogonal stack at the
    q* theory picks for ``depth`` (one MNIST batch of 128, one image for the Jacobian)."""
    q_star = q_star_for_depth("tanh", depth)
    data = image_data("mnist", 128, 1, device=device)
    model = VanillaCNN(
        depth, channels, q_star=q_star, stem_init="gaussian", generator=torch.Generator().manual_seed(0)
    ).to(device)
    with float32_precision(precision):
        norms = stack_gradient_norms(model, data.x_train, data.y_train)
        with torch.no_grad():
            h = data.x_train[:1]
            for conv in model.stem_convs:
                h = torch.tanh(conv(h))

        def stack(inputs: torch.Tensor) -> torch.Tensor:
            return reference_conv_stack(inputs, model.stack_weight.detach(), model.stack_bias.detach())

        moments = jacobian_moments(stack, h, probes=probes, generator=torch.Generator().manual_seed(0))
    return {
        "precision": precision,
        "depth": depth,
        "q_star": q_star,
        "gradient_spread": gradient_spread(norms),
        "jacobian_mean_sq_singular_value": moments.mean,
        "jacobian_mean_stderr": moments.mean_stderr,
        "jacobian_second_moment": moments.second_moment,
    }


def headline(out: Path, device: str, budget_s: float, timeout_s: float, smoke: bool) -> dict:
    """The library command for the recorded headline, run as a user would; returns its outcome."""
    sets = ["depths=[1250,10000]", f"budget_s={budget_s:.0f}", "checkpoints=false", "evaluations=4"]
    if smoke:
        sets = ["depths=[2,6]", "channels=4", "budget_s=3", "checkpoints=false", "test_size=64",
                "monitor_size=32", "train_size=512", "batch_size=16"]  # fmt: skip
    command = [sys.executable, "-m", "dltheory.cli", "run", "xiao-depth", "--profile", "paper"]
    command += ["--device", device, "--out", str(out / "runs"), "--name", "gpu-headline"]
    for item in sets:
        command += ["--set", item]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, timeout=timeout_s, capture_output=True, text=True)
        code, tail = done.returncode, (done.stdout + done.stderr)[-2000:]
    except subprocess.TimeoutExpired as exc:
        code, tail = None, f"killed after {timeout_s:.0f} s: {str(exc.stdout or '')[-1000:]}"
    run_dir = out / "runs" / "xiao-depth" / "gpu-headline"
    if run_dir.exists():
        with tarfile.open(out / "headline.tar.gz", "w:gz") as archive:
            archive.add(
                run_dir, arcname="gpu-headline", filter=lambda i: None if "checkpoints" in i.name else i
            )
    return {
        "command": " ".join(command[1:]),
        "exit": code,
        "wall_s": time.perf_counter() - started,
        "tail": tail,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--window-s", type=float, default=540.0, help="the whole session's time")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes (tests)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    carried = HERE.parent / "gpu-data"
    if carried.is_dir():
        os.environ["DLTHEORY_DATA"] = os.pathsep.join(
            filter(None, [str(carried), os.environ.get("DLTHEORY_DATA")])
        )
    device = "cpu" if args.smoke else "cuda:0"
    if not args.smoke and not torch.cuda.is_available():
        print("gpu_session: needs CUDA (or --smoke)")
        return 2
    log: dict = {"device": device_info(device), "window_s": args.window_s, "stages": {}}

    def stage(name: str, result: object) -> None:
        log["stages"][name] = {"at_s": time.perf_counter() - start, "result": result}
        atomic_write_json(out / "session.json", log)
        print(f"[{time.perf_counter() - start:6.1f} s] {name}: {json.dumps(result)[:400]}", flush=True)

    depths = ["4", "12"] if args.smoke else ["1250", "10000"]
    bench = ["--depths", *depths, "--steps", "3", "--out", str(out / "gpu_step.json")]
    bench += ["--smoke", "--channels", "4", "--batch", "8"] if args.smoke else []
    stage("benchmark", {"exit": bench_gpu_step.main(bench)})
    depth, channels, probes = (12, 4, 2) if args.smoke else (10000, 64, 2)
    tf32 = [isometry(depth, channels, p, device, probes) for p in ("fp32", "tf32")]
    atomic_write_json(out / "tf32.json", tf32)
    stage("tf32", tf32)
    left = args.window_s - (time.perf_counter() - start)
    # the two 10,000-layer runs get the budget, the 1,250-layer one an eighth of it; the rest is set-up
    # (data, building, CUDA-graph capture) and the final evaluations on 10,000 test images
    reserve = 20.0 if args.smoke else 150.0
    budget = max((left - reserve) / 2.125, 10.0)
    stage("headline", headline(out, device, budget, max(left - 10.0, 30.0), args.smoke))
    return 0


if __name__ == "__main__":
    sys.exit(main())
