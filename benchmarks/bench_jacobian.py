"""Benchmark: extreme singular values of a 1,000-layer network's input-output Jacobian, matrix-free block
Lanczos vs the full Jacobian.

Network: ``depth x [Linear(width, width), tanh]`` in float64, orthogonal weights at the tanh critical point
of fixed point ``q*`` (:func:`dltheory.nn.critical_init_`), input at the fixed point. For every width, in
the same process:

- baseline: ``torch.autograd.functional.jacobian`` (its default, one backward pass per output) + SVD;
- the same with ``vectorize=True`` (one batched pass: the strong baseline);
- :func:`dltheory.nn.jacobian_lanczos` for the ``k`` largest only, and for ``k`` at both ends.

One thread by default (timings with two threads on the shared 2-core machine were erratic).
Agreement: relative error of the Lanczos values against the full SVD (for the smallest values, the error
of the squares relative to the largest square, the accuracy the method guarantees). Timings depend on the
machine's load; the result file records threads and load average.

q* defaults to the authors' MNIST demo value 0.025: at depth 1,000 the spectrum is then spread (variance
about 4 in the infinite-width theory), its largest values are separated and block Lanczos needs a small
Krylov space; the smallest squared values are clustered near 0 relative to the largest, so resolving both
ends needs a Krylov space about as large as the width (no gain at these widths). Smaller q* (e.g. 0.001)
gives a near-isometric, tightly clustered spectrum where both ends converge slowly.

Run: python benchmarks/bench_jacobian.py [--depth 1000] [--widths 256 512] [--k 3] [--q-star 0.025]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dltheory.core.io import atomic_write_json
from dltheory.nn import critical_init_, jacobian_lanczos


def network(depth: int, width: int, q_star: float, seed: int) -> tuple[nn.Module, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.Tanh()]
    model = nn.Sequential(*layers).double()
    critical_init_(model, "tanh", q_star=q_star, weights="orthogonal", generator=generator)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    x = torch.tanh(math.sqrt(q_star) * torch.randn(1, width, generator=generator, dtype=torch.float64))
    return model, x


def full_svd(model: nn.Module, x: torch.Tensor, vectorize: bool) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    jac = torch.autograd.functional.jacobian(
        lambda v: model(v.reshape(x.shape)).reshape(-1), x.reshape(-1), vectorize=vectorize
    )
    values = torch.linalg.svdvals(jac)
    return values, time.perf_counter() - start


def bench_width(
    depth: int, width: int, k: int, q_star: float, tol: float, block: int, seed: int
) -> dict[str, Any]:
    model, x = network(depth, width, q_star, seed)
    exact, t_loop = full_svd(model, x, vectorize=False)
    _, t_vector = full_svd(model, x, vectorize=True)
    top, bottom = exact[:k], exact[-k:]
    row: dict[str, Any] = {
        "width": width,
        "baseline_s": t_loop,
        "vectorized_s": t_vector,
        "largest_exact": top.tolist(),
        "smallest_exact": bottom.tolist(),
    }
    for which in ("largest", "both"):
        start = time.perf_counter()
        result = jacobian_lanczos(
            model, x, k, which=which, tol=tol, block=block, generator=torch.Generator().manual_seed(seed)
        )
        elapsed = time.perf_counter() - start
        largest = result.values[:k]
        entry = {
            "seconds": elapsed,
            "speedup_vs_baseline": t_loop / elapsed,
            "speedup_vs_vectorized": t_vector / elapsed,
            "steps": result.steps,
            "krylov_dimension": result.dimension,
            "products": result.products,
            "converged": result.converged,
            "largest_rel_error": float(((largest - top).abs() / top).max()),
        }
        if which == "both":
            smallest = result.values[-k:]
            entry["smallest_sq_error_rel_to_max"] = float(
                ((smallest**2 - bottom**2).abs()).max() / top[0] ** 2
            )
            entry["smallest_rel_error"] = float(((smallest - bottom).abs() / bottom).max())
        row[f"lanczos_{which}"] = entry
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--q-star", type=float, default=0.025)
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--block", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "jacobian.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [
        bench_width(args.depth, w, args.k, args.q_star, args.tol, args.block, args.seed) for w in args.widths
    ]
    result = {
        "benchmark": "extreme Jacobian singular values of a deep tanh net: block Lanczos vs full Jacobian",
        "depth": args.depth,
        "k": args.k,
        "q_star": args.q_star,
        "tol": args.tol,
        "block": args.block,
        "threads": args.threads,
        "load_average_1min": os.getloadavg()[0],
        "torch": torch.__version__,
        "rows": rows,
    }
    atomic_write_json(args.out, result)
    load = result["load_average_1min"]
    print(
        f"depth {args.depth}, k={args.k} per end, q*={args.q_star:g}, threads {args.threads}, load {load:.1f}"
    )
    columns = ("width", "jacobian s", "vectorized s", "method", "time s", "x base", "x vec", "dim", "top err")
    print(" ".join(f"{c:>12s}" for c in (*columns, "bottom err")))
    for row in rows:
        for which in ("largest", "both"):
            entry = row[f"lanczos_{which}"]
            bottom = entry.get("smallest_sq_error_rel_to_max")
            cells = [
                str(row["width"]),
                f"{row['baseline_s']:.2f}",
                f"{row['vectorized_s']:.2f}",
                f"lanczos {which}",
                f"{entry['seconds']:.2f}",
                f"{entry['speedup_vs_baseline']:.1f}x",
                f"{entry['speedup_vs_vectorized']:.1f}x",
                str(entry["krylov_dimension"]),
                f"{entry['largest_rel_error']:.1e}",
                "" if bottom is None else f"{bottom:.1e}",
            ]
            print(" ".join(f"{c:>12s}" for c in cells))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
