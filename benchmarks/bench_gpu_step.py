"""Seconds per training step and peak memory of the library's vanilla CNN on a GPU: eager steps vs steps
replayed from a CUDA graph, in one run (Xiao et al. 2018 at paper scale).

The model is :class:`dltheory.nn.VanillaCNN` (MNIST input, 64 channels, delta-orthogonal at a critical
point, every activation kept), the optimizer the recipe's Adam (:func:`dltheory.nn.recipe.build_optimizer`;
built with ``capturable=True`` for the graph). The eager step is :func:`dltheory.runner.graphed.eager_step`,
the graphed one :class:`dltheory.runner.graphed.GraphedStep` (3 eager warm-up steps, capture, replay).
Each timing is the median of ``--steps`` steps after warm-up (``torch.cuda.synchronize`` around each);
peak memory is ``torch.cuda.max_memory_allocated`` over that configuration. The FLOP rate counts the
three 3x3 convolutions per layer and step (forward, input gradient, weight gradient).

Target (issue 13): <= 0.5 s per step at 10,000 layers (64 channels, batch 128) on an H100/H200-class card;
the eager library step was recorded at 3.06 s there.

Usage: ``python benchmarks/bench_gpu_step.py [--depths 1250 10000] [--steps 5] [--out FILE]``; without
CUDA it prints that and exits 0 (``--smoke`` runs the same code path on a CPU at tiny sizes, eager only,
for tests). Writes ``benchmarks/results/gpu_step.json`` (rows, plus the card's name) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dltheory.core.io import atomic_write_json
from dltheory.nn.models import VanillaCNN
from dltheory.nn.recipe import TrainingRecipe, build_optimizer
from dltheory.runner.devices import device_info, float32_precision
from dltheory.runner.graphed import GraphedStep, eager_step

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "gpu_step.json"
TARGET_S = 0.5
SIZE = 7  # the stack runs on 7x7 maps (28 -> 14 -> 7 in the stem)


def step_flop(depth: int, channels: int, batch: int) -> float:
    """FLOP of the stack per training step: 3 convolutions (forward, input and weight gradients) of
    2 * batch * 7 * 7 * channels^2 * 9 multiply-adds per layer."""
    return 3.0 * 2.0 * batch * SIZE * SIZE * channels * channels * 9 * depth


def measure(depth: int, channels: int, batch: int, mode: str, steps: int, device: str) -> dict:
    """Median seconds per step and peak memory of one configuration."""
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model = VanillaCNN(
        depth, channels, q_star=0.001, checkpoint="none", generator=torch.Generator().manual_seed(0)
    ).to(device)
    optimizer, _ = build_optimizer(model, TrainingRecipe(warmup_steps=0), capturable=mode == "graph")
    step = (
        GraphedStep(model, optimizer, F.cross_entropy, warmup=3)
        if mode == "graph"
        else eager_step(model, optimizer, F.cross_entropy)
    )
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 1, 28, 28, generator=generator).to(device)
    y = torch.randint(0, 10, (batch,), generator=generator).to(device)

    def timed() -> float:
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        loss = step(x, y)
        float(loss)  # waits for the step
        return time.perf_counter() - start

    setup = [timed() for _ in range(4 if mode == "graph" else 1)]  # warm-up (and capture)
    times = [timed() for _ in range(steps)]
    seconds = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else float("nan")
    return {
        "depth": depth,
        "mode": mode,
        "seconds_per_step": seconds,
        "setup_s": sum(setup),
        "peak_memory_gib": peak,
        "tflop_per_s": step_flop(depth, channels, batch) / seconds / 1e12,
    }


def rows(measured: list[dict], channels: int, batch: int) -> list[dict]:
    out = []
    for depth in sorted({m["depth"] for m in measured}):
        by_mode = {m["mode"]: m for m in measured if m["depth"] == depth}
        eager = by_mode.get("eager")
        for mode, m in by_mode.items():
            name = f"train step, depth {depth:,}, {channels} ch, batch {batch}, {mode}"
            is_target = depth == 10000 and mode == "graph"
            out.append(
                {
                    "benchmark": name,
                    "metric": "seconds per step",
                    "value": m["seconds_per_step"],
                    "unit": "s",
                    "baseline": eager["seconds_per_step"] if eager and mode != "eager" else None,
                    "ratio": eager["seconds_per_step"] / m["seconds_per_step"]
                    if eager and mode != "eager"
                    else None,
                    "target": f"<= {TARGET_S} s" if is_target else "",
                    "met": m["seconds_per_step"] <= TARGET_S if is_target else None,
                }
            )
            out.append(
                {"benchmark": name, "metric": "peak memory", "value": m["peak_memory_gib"], "unit": "GiB"}
            )
            out.append(
                {"benchmark": name, "metric": "FLOP rate", "value": m["tflop_per_s"], "unit": "TFLOP/s"}
            )
            out.append({"benchmark": name, "metric": "warm-up + capture", "value": m["setup_s"], "unit": "s"})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[1250, 10000])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--precision", choices=["fp32", "tf32"], default="fp32")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, eager only (tests)")
    args = parser.parse_args(argv)
    if args.smoke:
        device, modes = "cpu", ("eager",)
    elif torch.cuda.is_available():
        device, modes = "cuda:0", ("eager", "graph")
        torch.backends.cudnn.benchmark = True
    else:
        print("bench_gpu_step: needs CUDA (torch sees no GPU); nothing measured")
        return 0
    measured = []
    payload = {
        "benchmark": "gpu_step",
        "device": device_info(device),
        "precision": args.precision,
        "rows": [],
    }
    with float32_precision(args.precision):
        for depth in args.depths:
            for mode in modes:
                measured.append(measure(depth, args.channels, args.batch, mode, args.steps, device))
                print(json.dumps(measured[-1]), flush=True)
                payload["rows"] = rows(measured, args.channels, args.batch)
                atomic_write_json(args.out, payload)  # as it goes
    for row in payload["rows"]:
        print(f"{row['benchmark']:<55} {row['metric']:<18} {row['value']:.4g} {row['unit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
