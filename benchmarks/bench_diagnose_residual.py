"""Benchmark: cost of ``dltheory.diagnose`` on a 1,000-block residual MLP vs one training step of it.

The network: :class:`dltheory.nn.ResidualMLP` with ``depth`` reduced tanh blocks ``h + W tanh(h) + b`` of
width ``width`` (and, with ``--block mlp --norm layer``, pre-LN GELU MLP blocks), on a batch of ``batch``
Gaussian inputs. One training step is forward + cross-entropy backward + SGD step (plain autograd); the
diagnosis is the default ``diagnose(model, x)``: torch.fx tracing, the recorded forward through the graph,
one backward, the mean-field graph propagation (including the correlated Gaussian expectations of every
activation at every tracked pair), the residual verdict, its extrapolation and the branch-scale
recommendation. Both are timed in the same process, interleaved, and the best of ``repeats`` is kept; the
fastest diagnosis' phases (``report.timings``: tracing, recorded forward, backward, theory) show where its
time goes.
The issue's target: diagnose of a 1,000-block residual MLP costs <= 3x one training step.

Run: python benchmarks/bench_diagnose_residual.py [--depth 1000] [--widths 512 256] [--batch 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dltheory.core.io import atomic_write_json
from dltheory.nn.diagnose import diagnose
from dltheory.nn.resnets import ResidualMLP

TARGET_RATIO = 3.0


def time_training_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    return time.perf_counter() - start


def time_diagnosis(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, dict[str, object]]:
    start = time.perf_counter()
    report = diagnose(model, x)
    seconds = time.perf_counter() - start
    res = report.residual
    return seconds, {
        "verdict": report.phase,
        "blocks": None if res is None else res.blocks,
        "growth_measured": None if res is None else res.growth,
        "growth_predicted": None if res is None else res.growth_pred,
        "timings": report.timings,
    }


def measure(args: argparse.Namespace, width: int) -> list[dict[str, object]]:
    generator = torch.Generator().manual_seed(0)
    activation = "gelu" if args.block == "mlp" else "tanh"
    model = ResidualMLP(
        width,
        width,
        args.depth,
        activation=activation,
        block=args.block,
        norm=args.norm,
        alpha=1.0 / args.depth**0.5,
        sigma_b2=0.05,
        generator=generator,
    )
    x = torch.randn(args.batch, width, generator=generator)
    y = torch.randint(0, 10, (args.batch,), generator=generator)
    time_training_step(model, x[:2], y[:2])  # warm-up (allocator, kernels)
    steps, diagnoses, infos = [], [], []
    for _ in range(args.repeats):
        steps.append(time_training_step(model, x, y))
        seconds, info = time_diagnosis(model, x)
        diagnoses.append(seconds)
        infos.append(info)
    step, diag = min(steps), min(diagnoses)
    info = infos[diagnoses.index(diag)]
    timings: dict[str, float] = info["timings"]  # type: ignore[assignment]
    ratio = diag / step
    size = (
        f"{args.depth} {args.block} blocks ({activation}{', ' + args.norm + 'norm' if args.norm else ''}), "
        f"width {width}, batch {args.batch}, alpha = 1/sqrt(depth)"
    )
    note = f"{size}; best of {args.repeats}; threads {torch.get_num_threads()}"
    print(
        f"width {width}: training step {step:.3f} s, diagnose {diag:.3f} s, ratio {ratio:.2f} "
        f"(target <= {TARGET_RATIO}); {info}"
    )
    phases = [
        {
            "benchmark": "diagnose-residual",
            "metric": f"diagnosis phase: {phase} (width {width})",
            "value": timings[phase],
            "unit": "s",
            "note": f"{size}; report.timings of the fastest diagnosis",
        }
        for phase in ("trace", "forward", "backward", "theory")
        if phase in timings
    ]
    return [
        {
            "benchmark": "diagnose-residual",
            "metric": f"training step (width {width})",
            "value": step,
            "unit": "s",
            "note": note,
        },
        {
            "benchmark": "diagnose-residual",
            "metric": f"diagnosis / training step (width {width})",
            "value": diag,
            "unit": "s",
            "baseline": step,
            "ratio": ratio,
            "target": f"<= {TARGET_RATIO}",
            "met": bool(ratio <= TARGET_RATIO),
            "note": f"{note}; verdict {info.get('verdict')}, growth measured "
            f"{info.get('growth_measured'):.4g}, mean field {info.get('growth_predicted'):.4g}",
        },
        *phases,
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--widths", type=int, nargs="+", default=[512, 256])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--block", default="reduced", choices=["reduced", "two_layer", "mlp"])
    parser.add_argument("--norm", default=None, choices=[None, "layer", "rms"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on shared cores)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "diagnose_residual.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [row for width in args.widths for row in measure(args, width)]
    atomic_write_json(args.out, rows)


if __name__ == "__main__":
    main()
