"""Speed of the landscape certificate: ``analyze`` on a depth-10, width-256 deep linear network with
10,000 samples (squared loss), target <= 10 s on 2 cores with matrix-free Hessian extremes (issue 7).

Three points of the same problem: a global minimum (balanced factorisation of the least-squares
solution), a random non-critical point and W = 0 (a degenerate saddle). Besides the totals, the run
times one exact Hessian-vector product and compares, at the global minimum and the random point, the
extreme-eigenvalue solvers: our two-sided Lanczos against the baseline ARPACK ``eigsh`` (largest
eigenvalue, then the largest of ``lambda_max I - H``), same tolerance, same run. Run with
``OMP_NUM_THREADS=2 python benchmarks/bench_landscape.py``; results go to
``benchmarks/results/landscape.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from dltheory.core.io import atomic_write_json
from dltheory.deeplinear import analyze, make_objective
from dltheory.deeplinear.hessian import hessian_extremes
from dltheory.deeplinear.product_map import ProductHessian, end_to_end

TARGET_SECONDS = 10.0
RESULTS = Path(__file__).resolve().parent / "results" / "landscape.json"


def balanced_factors(A: np.ndarray, depth: int, width: int) -> list[np.ndarray]:
    """Weights of widths (d0, width, ..., width, dL) whose product is A, all layers with equal spectra."""
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    root = s ** (1.0 / depth)
    r = len(s)
    first = np.zeros((width, A.shape[1]))
    first[:r] = root[:, None] * Vt
    middle = np.zeros((width, width))
    middle[:r, :r] = np.diag(root)
    last = np.zeros((A.shape[0], width))
    last[:, :r] = U * root
    return [first] + [middle.copy() for _ in range(depth - 2)] + [last]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    d = args.width
    X = rng.normal(size=(args.samples, d))
    Y = X @ (rng.normal(size=(d, d)) / np.sqrt(d)) + 0.5 * rng.normal(size=(args.samples, d))

    objective = make_objective("squared", X, Y, (d, d))
    points = {
        "global minimum": balanced_factors(objective.A_star, args.depth, d),  # type: ignore[attr-defined]
        "random point": [rng.normal(size=(d, d)) / np.sqrt(d) for _ in range(args.depth)],
        "W = 0": [np.zeros((d, d)) for _ in range(args.depth)],
    }
    weights = points["global minimum"]
    A = end_to_end(weights)
    hessian = ProductHessian(weights, objective.gradient(A), lambda dA: objective.hessian_vector(A, dA))
    v = rng.normal(size=hessian.size)
    start = time.perf_counter()
    for _ in range(5):
        hessian.matvec(v)
    hvp_seconds = (time.perf_counter() - start) / 5

    rows: list[dict[str, Any]] = []
    for name, point in points.items():
        start = time.perf_counter()
        report = analyze(point, "squared", X, Y)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "point": name,
                "seconds": seconds,
                "ratio_to_target": seconds / TARGET_SECONDS,
                "verdict": report.verdict,
                "justification": report.justification,
                "hessian_min": report.hessian_min,
                "hessian_max": report.hessian_max,
                "hessian_converged": report.hessian_converged,
                "optimality_gap": report.optimality_gap,
            }
        )
    solvers: list[dict[str, Any]] = []
    for name in ("global minimum", "random point"):
        point = points[name]
        A = end_to_end(point)
        operator = ProductHessian(point, objective.gradient(A), partial(objective.hessian_vector, A))
        timings: dict[str, dict[str, Any]] = {}
        for method in ("lanczos", "arpack"):
            start = time.perf_counter()
            extremes = hessian_extremes(operator, method=method, tol=1e-4)
            timings[method] = {
                "seconds": time.perf_counter() - start,
                "matvecs": extremes.matvecs,
                "min": extremes.min_eigenvalue,
                "max": extremes.max_eigenvalue,
                "converged": extremes.converged,
            }
        solvers.append(
            {
                "point": name,
                **{f"{m}_{k}": v for m, t in timings.items() for k, v in t.items()},
                "speedup_vs_arpack": timings["arpack"]["seconds"] / timings["lanczos"]["seconds"],
            }
        )
    payload = {
        "benchmark": "analyze (landscape certificate)",
        "depth": args.depth,
        "width": d,
        "samples": args.samples,
        "parameters": hessian.size,
        "threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "target_seconds": TARGET_SECONDS,
        "hessian_vector_product_seconds": hvp_seconds,
        "results": rows,
        "hessian_solvers": solvers,
    }
    atomic_write_json(RESULTS, payload)

    table = Table(
        title=f"analyze: depth {args.depth}, width {d}, {args.samples} samples ({hessian.size} parameters)"
    )
    for column in ("point", "verdict", "seconds", "vs 10 s target", "Hessian [min, max]"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["point"],
            f"{row['verdict']} ({row['justification']})",
            f"{row['seconds']:.2f}",
            f"{row['ratio_to_target']:.2f}x",
            f"[{row['hessian_min']:.3g}, {row['hessian_max']:.3g}]",
        )
    console = Console()
    console.print(table)
    solver_table = Table(title="Hessian extremes, tol 1e-4: two-sided Lanczos vs ARPACK baseline")
    for column in ("point", "Lanczos s (matvecs)", "ARPACK s (matvecs)", "speed-up", "[min, max] Lanczos"):
        solver_table.add_column(column)
    for row in solvers:
        solver_table.add_row(
            row["point"],
            f"{row['lanczos_seconds']:.2f} ({row['lanczos_matvecs']})",
            f"{row['arpack_seconds']:.2f} ({row['arpack_matvecs']})",
            f"{row['speedup_vs_arpack']:.2f}x",
            f"[{row['lanczos_min']:.4g}, {row['lanczos_max']:.4g}]",
        )
    console.print(solver_table)
    console.print(f"one Hessian-vector product: {hvp_seconds * 1e3:.1f} ms; results in {RESULTS}")


if __name__ == "__main__":
    main()
