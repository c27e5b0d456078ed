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

A per-layer operation profile (both widths) comes first, to show where the time goes.

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


def _build(c: int, depth: int, impl: str):  # type: ignore[no-untyped-def]
    """A training-step closure for one implementation (delta identity kernels: tanh stays unsaturated)."""
    import torch
    from torch import nn

    from dltheory.nn.convstack import conv_stack, default_segment

    x = torch.randn(BATCH, c, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
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

    def step() -> float:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        forward().square().mean().backward()
        optimizer.step()
        return time.perf_counter() - start

    return step


def _memory_worker(spec: dict) -> dict:
    """Peak resident memory of two training steps of one configuration, alone in this process."""
    import torch

    torch.set_num_threads(spec["threads"])
    base = _rss_bytes()
    step = _build(spec["channels"], spec["depth"], spec["impl"])
    seconds = [step(), step()]
    return {
        **spec,
        "peak_rss_gb": _peak_rss_bytes() / 1e9,
        "base_rss_gb": base / 1e9,
        "second_step_s": seconds[1],
    }


def _timing_worker(spec: dict) -> dict:
    """Median step time of several implementations measured round-robin in one process, so that the load of
    a shared machine hits all of them alike."""
    import torch

    torch.set_num_threads(spec["threads"])
    steps = {f"{impl}@{depth}": _build(spec["channels"], depth, impl) for impl, depth in spec["members"]}
    for step in steps.values():
        step()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(spec["repeats"]):
        for name, step in steps.items():
            times[name].append(step())
    return {**spec, "median_s": {k: statistics.median(v) for k, v in times.items()}, "all_s": times}


def _profile_ops(spec: dict) -> dict:
    """Microseconds per call of the operations of one layer (batch 64, 7x7, ``channels``), best of 5 runs."""
    import torch
    import torch.nn.functional as F

    from dltheory.nn.convstack import circular_pad

    torch.set_num_threads(spec["threads"])
    c, cl = spec["channels"], torch.channels_last
    x = torch.randn(BATCH, c, SIZE, SIZE)
    xcl = x.contiguous(memory_format=cl)
    w = torch.randn(c, c, 3, 3) / (3 * c**0.5)
    wcl, b = w.contiguous(memory_format=cl), torch.zeros(c)
    padded = circular_pad(xcl)
    g = torch.randn(BATCH, c, SIZE, SIZE).contiguous(memory_format=cl)
    ops = {
        "conv2d zero padding (NCHW)": lambda: F.conv2d(x, w, b, padding=1),
        "conv2d valid on padded (channels-last)": lambda: F.conv2d(padded, wcl, b),
        "conv + fused tanh (oneDNN post-op)": lambda: torch.ops.mkldnn._convolution_pointwise(
            padded, wcl, b, [0, 0], [1, 1], [1, 1], 1, "tanh", [None], ""
        ),
        "torch.tanh": lambda: torch.tanh(x),
        "torch.sigmoid (for comparison)": lambda: torch.sigmoid(x),
        "F.pad circular (NCHW)": lambda: F.pad(x, (1, 1, 1, 1), mode="circular"),
        "F.pad circular (channels-last)": lambda: F.pad(xcl, (1, 1, 1, 1), mode="circular"),
        "gather pad (channels-last rows)": lambda: circular_pad(xcl),
        "tanh_backward": lambda: torch.ops.aten.tanh_backward(g, xcl),
        "conv weight+bias gradient": lambda: torch.ops.aten.convolution_backward(
            g, padded, wcl, [c], [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [False, True, True]
        ),
        "conv input gradient (convolution_backward, 9x9)": lambda: torch.ops.aten.convolution_backward(
            g, padded, wcl, [c], [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [True, False, False]
        ),
        "conv input gradient (pad + flipped conv)": lambda: F.conv2d(circular_pad(g), wcl),
    }
    timings = {}
    for name, fn in ops.items():
        for _ in range(5):
            fn()
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(50):
                fn()
            best = min(best, (time.perf_counter() - start) / 50)
        timings[name] = 1e6 * best
    return {**spec, "per_op_us": timings}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def measure(spec: dict, timeout: float) -> dict:
    """Run one worker in a fresh interpreter (so that its peak memory is its own)."""
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
        lines = out.stderr.strip().splitlines()
        return {**spec, "error": lines[-1] if lines else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


IMPLS = ("fused-ckpt", "fused-plain", "reference", "floor")


def plan(full: bool, depths: tuple[int, ...], deepest: int) -> tuple[list[tuple], list[tuple]]:
    """Memory configurations (channels, depth, impl) and timing groups (channels, [(impl, depth), ...])."""
    memory = [(c, d, impl) for c in (16, 64) for d in depths for impl in IMPLS]
    memory += [(16, deepest, "fused-ckpt"), (16, deepest, "fused-plain")]
    timing = [(c, [(impl, d) for impl in IMPLS]) for c in (16, 64) for d in depths]
    floor_depth = max(depths)
    timing.append(
        (
            16,
            [
                ("fused-ckpt", deepest),
                ("fused-plain", deepest),
                ("floor", floor_depth),
                ("reference", floor_depth),
            ],
        )
    )
    if full:
        memory += [(64, deepest, "fused-ckpt"), (16, deepest, "reference"), (16, deepest, "floor")]
        timing.append((64, [("fused-ckpt", deepest), ("floor", floor_depth)]))
    return memory, timing


def rows_from(memory: list[dict], timing: list[dict], deepest: int) -> list[dict]:
    """Summary rows: step times against the reference of the same group, peak memory, the three targets."""
    rows = []
    for group in timing:
        c = group["channels"]
        if "error" in group:
            rows.append(
                {
                    "benchmark": f"timing group c={c}",
                    "metric": "step",
                    "value": None,
                    "target": group["error"],
                }
            )
            continue
        med = group["median_s"]
        for name, seconds in med.items():
            impl, depth = name.split("@")
            ref = med.get(f"reference@{depth}")
            rows.append(
                {
                    "benchmark": f"{impl} c={c} depth={depth}",
                    "metric": "step time",
                    "value": seconds,
                    "unit": "s",
                    "baseline": ref,
                    "ratio": seconds / ref if ref else None,
                }
            )
            if impl.startswith("fused") and int(depth) == deepest:
                floors = [(k, v) for k, v in med.items() if k.startswith("floor@")]
                if c == 16 and floors:
                    key, value = floors[0]
                    floor_s = value * deepest / int(key.split("@")[1])
                    rows.append(
                        {
                            "benchmark": f"{impl} c=16 depth={deepest} vs zero-padding floor ({key}, scaled)",
                            "metric": "step time",
                            "value": seconds,
                            "unit": "s",
                            "baseline": floor_s,
                            "ratio": seconds / floor_s,
                            "target": "<= 2x floor",
                            "met": seconds <= 2 * floor_s,
                        }
                    )
            if impl.startswith("fused") and int(depth) == 1000 and ref:
                rows.append(
                    {
                        "benchmark": f"{impl} c={c} depth=1000 throughput vs reference",
                        "metric": "steps/s",
                        "value": 1 / seconds,
                        "unit": "1/s",
                        "baseline": 1 / ref,
                        "ratio": ref / seconds,
                        "target": ">= reference",
                        "met": seconds <= ref,
                    }
                )
    for r in memory:
        name = f"{r['impl']} c={r['channels']} depth={r['depth']}"
        if "error" in r:
            rows.append({"benchmark": name, "metric": "peak memory", "value": None, "target": r["error"]})
            continue
        row = {"benchmark": name, "metric": "peak memory", "value": r["peak_rss_gb"], "unit": "GB"}
        if r["channels"] == 16 and r["depth"] == deepest and r["impl"].startswith("fused"):
            row.update({"target": "<= 6 GB", "met": r["peak_rss_gb"] <= 6.0})
        rows.append(row)
    return rows


def print_table(memory: list[dict], timing: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    peaks = {(r["channels"], r["depth"], r["impl"]): r.get("peak_rss_gb") for r in memory}
    table = Table(title="Deep circular tanh conv stack, batch 64, 7x7: one SGD training step")
    for column in (
        "channels",
        "depth",
        "implementation",
        "step (s)",
        "ms/layer",
        "vs reference",
        "peak RSS (GB)",
    ):
        table.add_column(column, justify="right")
    for group in timing:
        c = group["channels"]
        if "error" in group:
            table.add_row(str(c), "", "", group["error"], "", "", "")
            continue
        med = group["median_s"]
        for name, seconds in med.items():
            impl, depth = name.split("@")
            ref = med.get(f"reference@{depth}")
            peak = peaks.get((c, int(depth), impl))
            table.add_row(
                str(c),
                depth,
                impl,
                f"{seconds:.3f}",
                f"{1e3 * seconds / int(depth):.3f}",
                f"{seconds / ref:.2f}x" if ref else "",
                f"{peak:.2f}" if peak else "",
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
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed steps per implementation (10k: at most 2)"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per worker process")
    parser.add_argument("--smoke", action="store_true", help="depths 10, 30 and 100 only (seconds)")
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        worker = {"profile": _profile_ops, "memory": _memory_worker, "timing": _timing_worker}[spec["kind"]]
        print(json.dumps(worker(spec)))
        return 0
    depths, deepest = ((10, 30), 100) if args.smoke else ((100, 1000), 10000)
    memory_plan, timing_plan = plan(args.full, depths, deepest)
    profiles = []
    for c in (16, 64):
        profiles.append(measure({"kind": "profile", "channels": c, "threads": args.threads}, args.timeout))
        for name, us in profiles[-1].get("per_op_us", {}).items():
            print(f"c={c:3d} {name:48s} {us:8.1f} us", flush=True)
    timing = []
    for c, members in timing_plan:
        repeats = args.repeats if max(d for _, d in members) < 10000 else max(1, min(args.repeats, 2))
        spec = {
            "kind": "timing",
            "channels": c,
            "members": members,
            "threads": args.threads,
            "repeats": repeats,
        }
        timing.append(measure(spec, args.timeout))
        print(f"c={c:3d} {timing[-1].get('error') or timing[-1]['median_s']}", flush=True)
    memory = []
    for c, depth, impl in memory_plan:
        spec = {"kind": "memory", "channels": c, "depth": depth, "impl": impl, "threads": args.threads}
        memory.append(measure(spec, args.timeout))
        shown = memory[-1].get("error") or f"peak {memory[-1]['peak_rss_gb']:.2f} GB"
        print(f"c={c:3d} depth={depth:6d} {impl:12s} {shown}", flush=True)
    result_file = RESULT.with_name("vanilla_cnn_smoke.json") if args.smoke else RESULT
    result_file.parent.mkdir(parents=True, exist_ok=True)
    rows = rows_from(memory, timing, deepest)
    environment = {
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "batch": BATCH,
        "size": SIZE,
        "load_average": os.getloadavg(),
    }
    payload = {
        "rows": rows,
        "timing": timing,
        "memory": memory,
        "per_op_profile": profiles,
        "environment": environment,
    }
    result_file.write_text(json.dumps(payload, indent=2))
    print_table(memory, timing)
    for row in rows:
        if "met" in row:
            ratio = f", ratio {row['ratio']:.2f}" if row.get("ratio") else ""
            print(
                f"target {row['target']:>14s}: {'met' if row['met'] else 'NOT met'} ({row['benchmark']}: "
                f"{row['value']:.3g} {row['unit']}{ratio})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
