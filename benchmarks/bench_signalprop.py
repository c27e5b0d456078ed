"""Benchmark: 200 x 200 (sigma_w2, sigma_b2) tanh phase diagram (q*, chi_1, xi_c) with
dltheory.signalprop.phase_diagram vs a per-point scipy.integrate.quad baseline in the same run.

The baseline (brentq on quad for q*, quad for chi_1, nested quad + brentq for c* and chi_c in the chaotic
phase) is run on a random subsample of the grid and its time extrapolated per point to the full grid
(stated in the output). Max deviations are measured on the subsample.
Run: python benchmarks/bench_signalprop.py [--grid 200] [--baseline-points 40]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.integrate import IntegrationWarning, quad
from scipy.optimize import brentq

from dltheory.core.io import atomic_write_json
from dltheory.signalprop import phase_diagram


def _pdf(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _e1(f, q: float) -> float:  # type: ignore[no-untyped-def]
    return quad(lambda z: f(math.sqrt(q) * z) * _pdf(z), -12, 12, epsabs=1e-14, epsrel=1e-11)[0]


def _e2(f, q: float, c: float) -> float:  # type: ignore[no-untyped-def]
    s = math.sqrt(1 - c * c)

    def inner(z1: float) -> float:
        return quad(lambda z2: f(math.sqrt(q) * (c * z1 + s * z2)) * _pdf(z2), -12, 12, epsabs=1e-13)[0]

    return quad(lambda z1: f(math.sqrt(q) * z1) * inner(z1) * _pdf(z1), -12, 12, epsabs=1e-13)[0]


def baseline_point(sw2: float, sb2: float) -> tuple[float, float, float]:
    """(q*, chi_1, xi_c) by per-point adaptive quadrature."""
    tanh2 = lambda x: math.tanh(x) ** 2  # noqa: E731
    dtanh = lambda x: 1 - math.tanh(x) ** 2  # noqa: E731
    if sb2 == 0 and sw2 <= 1:
        q = 0.0
    else:
        q = brentq(lambda t: sw2 * _e1(tanh2, t) + sb2 - t, 1e-12, sw2 + sb2 + 1e-9, xtol=1e-14, rtol=1e-13)
    chi1 = sw2 * _e1(lambda x: dtanh(x) ** 2, q) if q > 0 else sw2
    if chi1 <= 1 or q == 0:
        chic = chi1
    else:
        g = lambda c: (sw2 * _e2(math.tanh, q, c) + sb2) / q - c  # noqa: E731
        c_star = 0.0 if g(0.0) <= 0 else brentq(g, 0.0, 1 - 1e-9 if g(1 - 1e-9) < 0 else 1 - 1e-6, xtol=1e-12)
        chic = sw2 * _e2(dtanh, q, c_star)
    xi = math.inf if chic >= 1 else -1 / math.log(chic)
    return q, chi1, xi


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grid", type=int, default=200)
    parser.add_argument("--baseline-points", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    w = np.linspace(0.5, 4.0, args.grid)
    b = np.linspace(0.0, 0.3, args.grid)
    phase_diagram("tanh", w[:5], b[:5])  # warm-up (rule caches)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        diagram = phase_diagram("tanh", w, b)
        times.append(time.perf_counter() - start)
    fast = min(times)
    rng = np.random.default_rng(0)
    picks = [
        (int(rng.integers(args.grid)), int(rng.integers(args.grid))) for _ in range(args.baseline_points)
    ]
    dev = {"q_star": 0.0, "chi_1": 0.0, "xi_c": 0.0}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)
        for i, j in picks:
            q, chi1, xi = baseline_point(float(w[i]), float(b[j]))
            dev["q_star"] = max(dev["q_star"], abs(diagram.q_star[i, j] - q) / max(q, 1e-300))
            dev["chi_1"] = max(dev["chi_1"], abs(diagram.chi_1[i, j] - chi1) / chi1)
            if math.isfinite(xi):
                dev["xi_c"] = max(dev["xi_c"], abs(diagram.xi_c[i, j] - xi) / xi)
    per_point = (time.perf_counter() - start) / len(picks)
    baseline_full = per_point * args.grid**2
    result = {
        "grid": [args.grid, args.grid],
        "phase_diagram_seconds_best_of": fast,
        "phase_diagram_seconds_all": times,
        "baseline_seconds_per_point": per_point,
        "baseline_points_measured": len(picks),
        "baseline_seconds_extrapolated_full_grid": baseline_full,
        "speedup": baseline_full / fast,
        "max_relative_deviation": dev,
        "note": "baseline = per-point scipy quad/brentq (nested quad for c*, chi_c), timed on a random "
        "subsample "
        "and extrapolated per point; deviations measured on that subsample",
    }
    atomic_write_json(Path(__file__).parent / "results" / "signalprop.json", result)
    print(f"{'quantity':45s} value")
    label = f"phase_diagram {args.grid}x{args.grid} (best of {args.repeats}) [s]"
    print(f"{label:45s} {fast:.3f}")
    print(f"{'baseline per point [s]':45s} {per_point:.3f}")
    print(f"{'baseline full grid, extrapolated [s]':45s} {baseline_full:.0f}")
    print(f"{'speed-up':45s} {baseline_full / fast:.0f}x")
    for key, value in dev.items():
        print(f"{'max relative deviation ' + key:45s} {value:.2e}")


if __name__ == "__main__":
    main()
