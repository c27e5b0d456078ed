"""Benchmark: per-step cost of EndToEndOptimizer on a 1024 x 1024 nn.Linear vs gradient descent on the
explicit depth-N overparameterization (overparameterize(layer, N) + torch.optim.SGD), in the same run,
and the agreement of their trajectories.

One step = zero_grad, forward, MSE loss, backward, optimizer step, on a batch of random inputs. The
end-to-end optimizer costs one forward/backward through a single 1024 x 1024 matrix plus one SVD of it;
the explicit network costs N matrices in the forward and backward passes. Which is cheaper therefore
depends on the batch size; both are timed at several.
Trajectory agreement: both start from the same end-to-end matrix (balanced factors), see the same batches
and train for the same time ``steps * lr = --agreement-time``; reported is
``||W_e2e - W_explicit|| / ||W_explicit - W_0||``, which is O(lr) (first-order agreement: halving lr should
roughly halve it), at two learning rates.
Run: python benchmarks/bench_end_to_end.py [--width 1024] [--depths 2 3] [--batches 64 1024 4096]
     [--threads 1]
(on a loaded machine multi-threaded LAPACK SVDs slow down far more than matrix products: compare runs with
--threads 1 as well)
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from dltheory.core.io import atomic_write_json
from dltheory.nn import EndToEndOptimizer, overparameterize


def step_time(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, repeats: int
) -> float:
    """Median wall time of one training step (after one warm-up step)."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        if i > 0:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def agreement(width: int, depth: int, lr: float, total_time: float, batch: int, seed: int) -> float:
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(width, width, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(width, width, generator=gen) / width**0.5)
    teacher = torch.randn(width, width, generator=gen) / width**0.5
    start = layer.weight.detach().clone()
    deep = overparameterize(copy.deepcopy(layer), depth, generator=torch.Generator().manual_seed(seed))
    opt_e2e = EndToEndOptimizer(layer.parameters(), lr=lr, depth=depth)
    opt_deep = torch.optim.SGD(deep.parameters(), lr=lr)
    for _ in range(int(round(total_time / lr))):
        x = torch.randn(batch, width, generator=gen)
        y = x @ teacher.T
        for model, opt in ((layer, opt_e2e), (deep, opt_deep)):
            opt.zero_grad()
            (model(x) - y).square().sum(1).mean().div(2).backward()  # gradient (W - T) E[x x^T] ~ W - T
            opt.step()
    with torch.no_grad():
        explicit = deep.weight
        return float((layer.weight - explicit).norm() / (explicit - start).norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 1024, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--agreement-time", type=float, default=0.4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "end_to_end.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    gen = torch.Generator().manual_seed(0)
    rows = []
    for depth in args.depths:
        for batch in args.batches:
            x = torch.randn(batch, args.width, generator=gen)
            y = torch.randn(batch, args.width, generator=gen)
            layer = nn.Linear(args.width, args.width)
            deep = overparameterize(copy.deepcopy(layer), depth)
            t_e2e = step_time(
                layer, EndToEndOptimizer(layer.parameters(), lr=1e-3, depth=depth), x, y, args.repeats
            )
            t_deep = step_time(deep, torch.optim.SGD(deep.parameters(), lr=1e-3), x, y, args.repeats)
            print(
                f"depth {depth}, batch {batch}: end-to-end {t_e2e:.4f} s, explicit {t_deep:.4f} s", flush=True
            )
            rows.append(
                {
                    "depth": depth,
                    "batch": batch,
                    "end_to_end_s": t_e2e,
                    "explicit_s": t_deep,
                    "ratio_explicit_over_end_to_end": t_deep / t_e2e,
                }
            )
    agreements = [
        {
            "depth": depth,
            "lr": lr,
            "steps": int(round(args.agreement_time / lr)),
            "relative_deviation": agreement(args.width, depth, lr, args.agreement_time, args.width, seed=1),
        }
        for depth in args.depths
        for lr in (0.02, 0.01)
    ]
    payload = {
        "benchmark": "end_to_end",
        "description": "EndToEndOptimizer on nn.Linear vs SGD on overparameterize(nn.Linear, N): seconds per "
        "training step (median) and trajectory agreement",
        "width": args.width,
        "repeats": args.repeats,
        "timings": rows,
        "agreement": agreements,
        "environment": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
            "platform": platform.platform(),
        },
    }
    atomic_write_json(args.output, payload)

    table = Table(title=f"{args.width} x {args.width} linear layer: seconds per training step")
    for column in ("depth N", "batch", "EndToEndOptimizer", "explicit depth N", "explicit / end-to-end"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            str(r["depth"]),
            str(r["batch"]),
            f"{r['end_to_end_s']:.4f}",
            f"{r['explicit_s']:.4f}",
            f"{r['ratio_explicit_over_end_to_end']:.2f}",
        )
    console = Console()
    console.print(table)
    agree = Table(title=f"trajectory agreement, steps x lr = {args.agreement_time:g} (batch {args.width})")
    for column in ("depth N", "lr", "steps", "||W_e2e - W_explicit|| / ||W_explicit - W_0||"):
        agree.add_column(column, justify="right")
    for a in agreements:
        agree.add_row(str(a["depth"]), f"{a['lr']:g}", str(a["steps"]), f"{a['relative_deviation']:.3g}")
    console.print(agree)
    console.print(f"written to {args.output}")


if __name__ == "__main__":
    main()
