"""Time per training step and peak memory of deep circular-padded tanh conv stacks (Xiao et al. 2018).

Implementations, each measured in its own subprocess (peak memory = the child's ``ru_maxrss``):

- ``fused``: :func:`dltheory.nn.conv_stack` with sqrt(depth) checkpoint segments (``fused-ckpt``) or
  keeping every activation (``fused-plain``);
- ``reference``: the plain PyTorch model of the issue, ``nn.Sequential`` of ``nn.Conv2d(c, c, 3,
  padding=1, padding_mode="circular")`` + ``nn.Tanh``, no checkpointing;
- ``floor``: the same with zero padding (``padding_mode="zeros"``): the cost of the convolutions and
  activations alone, the floor the target refers to.

A training step is forward, loss ``mean(out^2)``, backward and an SGD-with-momentum step on a batch of 64
7x7 maps (the deep part of the MNIST network). Timings are the median of ``--repeats`` steps after one
warm-up step. The floor is measured at depth 1,000 and scaled linearly to 10,000 layers (per-layer cost
does not depend on depth; a 10,000-layer plain model needs ~4-8 GB and is skipped unless ``--full``).

Targets (issue 8): 10,000 layers at 16 channels train in <= 6 GB; a 10,000-layer step at 16 channels
<= 2x the zero-padding floor; throughput at depth 1,000 >= the plain reference's.

Usage: ``python benchmarks/bench_vanilla_cnn.py [--full] [--threads N] [--repeats R]``; writes
``benchmarks/results/vanilla_cnn.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "vanilla_cnn.json"
BATCH = 64
SIZE = 7


def _worker(spec: dict) -> dict:
    """Run inside the subprocess: build, time ``repeats`` steps, report time and peak memory."""
    import torch
    from torch import nn

    from dltheory.nn.convstack import conv_stack, default_segment

    torch.set_num_threads(spec["threads"])
    depth, c, impl = spec["depth"], spec["channels"], spec["impl"]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, c, SIZE, SIZE, generator=gen)
    base_rss = _rss_bytes()
    if impl.startswith("fused"):
        weight = torch.zeros(depth, c, c, 3, 3)
        weight[:, :, :, 1, 1] = torch.eye(c)
        weight = nn.Parameter(weight)
        bias = nn.Parameter(torch.zeros(depth, c))
        params = [weight, bias]
        segment = default_segment(depth) if impl == "fused-ckpt" else 1

        def forward() -> torch.Tensor:
            return conv_stack(x, weight, bias, segment=segment)

    else:
        mode = "circular" if impl == "reference" else "zeros"
        layers: list[nn.Module] = []
        for _ in range(depth):
            conv = nn.Conv2d(c, c, 3, padding=1, padding_mode=mode)
            with torch.no_grad():
                conv.weight.zero_()
                conv.weight[:, :, 1, 1] = torch.eye(c)
                conv.bias.zero_()
            layers += [conv, nn.Tanh()]
        model = nn.Sequential(*layers)
        params = list(model.parameters())

        def forward() -> torch.Tensor:
            return model(x)

    optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    times = []
    for _ in range(spec["repeats"] + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        forward().square().mean().backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return {
        **spec,
        "step_s": statistics.median(times[1:]),
        "step_s_all": times[1:],
        "peak_rss_gb": _peak_rss_bytes() / 1e9,
        "base_rss_gb": base_rss / 1e9,
    }


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def measure(spec: dict, timeout: float) -> dict:
    """Run one configuration in a fresh interpreter (so that peak memory is its own)."""
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timeout after {timeout:.0f} s"}
    if out.returncode != 0:
        return {
            **spec,
            "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}",
        }
    return json.loads(out.stdout.strip().splitlines()[-1])


def plan(full: bool) -> list[tuple[int, int, str]]:
    """(channels, depth, impl) to measure; the default set stays within a few minutes and ~6 GB."""
    configs = []
    for c in (16, 64):
        for depth in (100, 1000):
            configs += [(c, depth, impl) for impl in ("fused-ckpt", "fused-plain", "reference", "floor")]
    configs += [(16, 10000, "fused-ckpt"), (16, 10000, "fused-plain")]
    if full:
        configs += [(64, 10000, "fused-ckpt"), (16, 10000, "reference"), (16, 10000, "floor")]
    return configs


def rows_from(results: list[dict]) -> list[dict]:
    """The summary rows: every measurement, then the three targets."""

    def find(c: int, depth: int, impl: str) -> dict | None:
        for r in results:
            if (r["channels"], r["depth"], r["impl"]) == (c, depth, impl) and "step_s" in r:
                return r
        return None

    rows = []
    for r in results:
        name = f"{r['impl']} c={r['channels']} depth={r['depth']}"
        if "error" in r:
            rows.append(
                {"benchmark": name, "metric": "step", "value": None, "unit": "s", "target": r["error"]}
            )
            continue
        ref = find(r["channels"], r["depth"], "reference")
        rows.append(
            {
                "benchmark": name,
                "metric": "step time",
                "value": r["step_s"],
                "unit": "s",
                "baseline": ref["step_s"] if ref else None,
                "ratio": r["step_s"] / ref["step_s"] if ref else None,
            }
        )
        rows.append({"benchmark": name, "metric": "peak memory", "value": r["peak_rss_gb"], "unit": "GB"})
    for impl in ("fused-ckpt", "fused-plain"):
        deep = find(16, 10000, impl)
        if deep is not None:
            rows.append(
                {
                    "benchmark": f"{impl} c=16 depth=10000",
                    "metric": "peak memory",
                    "value": deep["peak_rss_gb"],
                    "unit": "GB",
                    "target": "<= 6 GB",
                    "met": deep["peak_rss_gb"] <= 6.0,
                }
            )
            floor = find(16, 10000, "floor") or find(16, 1000, "floor")
            if floor is not None:
                floor_s = floor["step_s"] * 10000 / floor["depth"]
                rows.append(
                    {
                        "benchmark": f"{impl} c=16 depth=10000 vs zero-padding floor",
                        "metric": "step time",
                        "value": deep["step_s"],
                        "unit": "s",
                        "baseline": floor_s,
                        "ratio": deep["step_s"] / floor_s,
                        "target": "<= 2x floor",
                        "met": deep["step_s"] <= 2 * floor_s,
                    }
                )
    for c in (16, 64):
        ref = find(c, 1000, "reference")
        for impl in ("fused-ckpt", "fused-plain"):
            ours = find(c, 1000, impl)
            if ref and ours:
                rows.append(
                    {
                        "benchmark": f"{impl} c={c} depth=1000 throughput vs reference",
                        "metric": "steps/s",
                        "value": 1 / ours["step_s"],
                        "unit": "1/s",
                        "baseline": 1 / ref["step_s"],
                        "ratio": ref["step_s"] / ours["step_s"],
                        "target": ">= reference",
                        "met": ours["step_s"] <= ref["step_s"],
                    }
                )
    return rows


def print_table(results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Deep circular tanh conv stack, batch 64, 7x7: one training step")
    for column in (
        "channels",
        "depth",
        "implementation",
        "step (s)",
        "ms / layer",
        "vs reference",
        "peak RSS (GB)",
    ):
        table.add_column(column, justify="right")
    refs = {
        (r["channels"], r["depth"]): r["step_s"]
        for r in results
        if r["impl"] == "reference" and "step_s" in r
    }
    for r in results:
        if "error" in r:
            table.add_row(str(r["channels"]), str(r["depth"]), r["impl"], r["error"], "", "", "")
            continue
        ref = refs.get((r["channels"], r["depth"]))
        table.add_row(
            str(r["channels"]),
            str(r["depth"]),
            r["impl"],
            f"{r['step_s']:.3f}",
            f"{1e3 * r['step_s'] / r['depth']:.3f}",
            f"{r['step_s'] / ref:.2f}x" if ref else "",
            f"{r['peak_rss_gb']:.2f}",
        )
    Console().print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument(
        "--full", action="store_true", help="add 10,000 layers at 64 channels and plain 10k models"
    )
    parser.add_argument(
        "--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count() or 1
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per configuration")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0
    results = []
    for c, depth, impl in plan(args.full):
        repeats = args.repeats if depth < 10000 else max(1, min(args.repeats, 2))
        spec = {"channels": c, "depth": depth, "impl": impl, "threads": args.threads, "repeats": repeats}
        result = measure(spec, args.timeout)
        results.append(result)
        shown = result.get("error") or f"{result['step_s']:.3f} s/step, peak {result['peak_rss_gb']:.2f} GB"
        print(f"c={c:3d} depth={depth:6d} {impl:12s} {shown}", flush=True)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "rows": rows_from(results),
        "measurements": results,
        "environment": {"threads": args.threads, "cpu_count": os.cpu_count(), "batch": BATCH, "size": SIZE},
    }
    RESULT.write_text(json.dumps(payload, indent=2))
    print_table(results)
    for row in payload["rows"]:
        if "met" in row:
            print(
                f"target {row['target']:>14s}: {'met' if row['met'] else 'NOT met'} ({row['benchmark']}, "
                f"{row['value']:.3g} {row['unit']}"
                + (f", ratio {row['ratio']:.2f}" if row.get("ratio") else "")
                + ")"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
