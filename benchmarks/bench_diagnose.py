"""Benchmark: cost of ``dltheory.diagnose`` on a deep vanilla CNN vs one training step of the same network.

The network: ``depth`` x [3x3 circular conv (``channels`` -> ``channels``) + tanh] as ``nn.Sequential`` of
``nn.Conv2d`` modules, on a batch of ``batch`` inputs of ``channels`` x ``size`` x ``size`` (the deep stack
of Xiao et al.'s vanilla CNN after its stride-2 stem: 7 x 7 on MNIST, 8 x 8 on CIFAR-10). One training step
is forward + cross-entropy-free squared loss backward + SGD step (plain autograd); the diagnosis is the
default ``diagnose(model, x)`` (forward with hooks, one backward, mean-field predictions, verdict). Both are
timed in the same process, interleaved, and the best of ``repeats`` is kept. The issue's target is depth
1,000, 64 channels, batch 64, ratio <= 3; on 2 shared CPU cores one step at depth 1,000 takes minutes, so the
default depth is 100 (pass ``--depth 1000`` to measure the full size).

Run: python benchmarks/bench_diagnose.py [--depth 100] [--channels 64] [--batch 64] [--size 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from torch import nn

from dltheory.core.io import atomic_write_json
from dltheory.nn.diagnose import diagnose
from dltheory.signalprop import critical_sigma_w2

TARGET_RATIO = 3.0


def deep_cnn(depth: int, channels: int, generator: torch.Generator) -> nn.Sequential:
    """A critical tanh stack (sigma_b2 = 0.05, Gaussian kernels)."""
    sigma_w2 = float(critical_sigma_w2("tanh", 0.05))
    layers: list[nn.Module] = []
    for _ in range(depth):
        conv = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="circular")
        with torch.no_grad():
            conv.weight.normal_(0.0, math.sqrt(sigma_w2 / (9 * channels)), generator=generator)
            conv.bias.normal_(0.0, math.sqrt(0.05), generator=generator)
        layers += [conv, nn.Tanh()]
    return nn.Sequential(*layers)


def time_training_step(model: nn.Module, x: torch.Tensor) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss = model(x).square().mean()
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def time_diagnosis(model: nn.Module, x: torch.Tensor) -> tuple[float, str | None]:
    start = time.perf_counter()
    report = diagnose(model, x)
    return time.perf_counter() - start, report.phase


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on shared cores)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "diagnose.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    model = deep_cnn(args.depth, args.channels, generator)
    x = torch.randn(args.batch, args.channels, args.size, args.size, generator=generator)
    time_training_step(model, x[:2])  # warm-up (allocator, kernels)
    steps, diagnoses, phase = [], [], None
    for _ in range(args.repeats):
        steps.append(time_training_step(model, x))
        seconds, phase = time_diagnosis(model, x)
        diagnoses.append(seconds)
    step, diag = min(steps), min(diagnoses)
    ratio = diag / step
    size = f"depth {args.depth}, {args.channels} channels, batch {args.batch}, {args.size}x{args.size}"
    note = f"{size}; best of {args.repeats}; threads {torch.get_num_threads()}" + (
        "" if args.depth >= 1000 else "; measured below the issue's depth 1,000 (2 shared CPU cores)"
    )
    rows = [
        {"benchmark": "diagnose", "metric": "training step", "value": step, "unit": "s", "note": note},
        {
            "benchmark": "diagnose",
            "metric": "diagnosis / training step",
            "value": diag,
            "unit": "s",
            "baseline": step,
            "ratio": ratio,
            "target": f"<= {TARGET_RATIO}",
            "met": bool(ratio <= TARGET_RATIO),
            "note": f"{note}; verdict {phase}",
        },
    ]
    atomic_write_json(args.out, rows)
    print(f"{'measurement':<28}{'seconds':>10}")
    print(f"{'one training step':<28}{step:>10.3f}")
    print(f"{'diagnose (default)':<28}{diag:>10.3f}")
    print(f"ratio {ratio:.2f} (target <= {TARGET_RATIO}); {note}; verdict {phase}")


if __name__ == "__main__":
    main()
