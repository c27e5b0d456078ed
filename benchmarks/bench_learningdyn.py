"""Benchmark: random-matrix learning curves (dltheory.learningdyn) vs the Monte Carlo needed for the same
precision, in the same run.

1. Identity covariance (paper setting p = 256, n = 512, ||mu||^2 = 4, sigma2 = 0.1, alpha = 0.01): test
   and training error at 1,000 steps with GDTheory (real-integral form; the contour form is timed too).
   Target <= 0.1 s.
2. General covariance, p = 512 (Toeplitz 0.4^|i-j|, n = 1024): GeneralCovGDTheory built from the matrix
   (eigendecomposition included) and evaluated at 1,000 steps. Target <= 2 s.
Baseline: gradient descent simulated on fresh draws (eigendecomposition per run, all steps at once). A
pilot of R0 runs gives the time per run and the per-run standard deviation s_t of the test error; the
runs needed for a standard error <= eps at every step is max_t (s_t/eps)^2, timed as runs x time per run.
eps = 1e-3 is the level at which theory and simulation were compared at these sizes (finite-size bias
below it); the theory's numerical precision (~1e-10) is out of reach of any simulation.
Run: python benchmarks/bench_learningdyn.py [--pilot-runs 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from dltheory.core.io import atomic_write_json
from dltheory.learningdyn import GDTheory, GeneralCovGDTheory, simulate

EPS = 1e-3


def best_of(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def simulation_cost(mu, n, cov, steps, pilot_runs, eps):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    sim = simulate(mu, n, 0.1, 0.01, steps, runs=pilot_runs, cov=cov, seed=1, train_error=True)
    per_run = (time.perf_counter() - start) / pilot_runs
    spread = float(np.max(sim.test_errors.std(0, ddof=1)))
    runs_needed = int(np.ceil((spread / eps) ** 2))
    return per_run, spread, runs_needed, sim


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pilot-runs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    steps = np.arange(1, 1001, dtype=np.float64)
    rows = []

    # 1. identity covariance ---------------------------------------------------------------------------
    p, n = 256, 512
    mu = np.zeros(p)
    mu[0] = 2.0

    def identity_curves():  # type: ignore[no-untyped-def]
        theory = GDTheory.from_mu(mu, n, 0.1, 0.01, discrete=True)
        terms = theory.terms(steps)
        return terms.test_error, terms.train_error

    identity_curves()
    fast = best_of(identity_curves, args.repeats)
    theory = GDTheory.from_mu(mu, n, 0.1, 0.01, discrete=True)
    contour_time = best_of(lambda: theory.terms(steps, form="contour"), max(1, args.repeats // 2))
    gap = float(np.max(np.abs(theory.terms(steps, form="contour").test_error - theory.test_error(steps))))
    per_run, spread, needed, sim = simulation_cost(mu, n, None, steps, args.pilot_runs, EPS)
    sim_time = needed * per_run
    bias = float(np.max(np.abs(sim.test_error_mean - theory.test_error(steps))))
    rows += [
        {
            "benchmark": "identity p=256 n=512",
            "metric": "theory curves, 1000 steps (real-integral form)",
            "value": fast,
            "unit": "s",
            "target": 0.1,
            "met": fast <= 0.1,
        },
        {
            "benchmark": "identity p=256 n=512",
            "metric": "theory curves, 1000 steps (contour form)",
            "value": contour_time,
            "unit": "s",
            "note": f"max |contour - integral| test error = {gap:.1e}",
        },
        {
            "benchmark": "identity p=256 n=512",
            "metric": f"simulation for SE <= {EPS:g} at every step",
            "value": sim_time,
            "unit": "s",
            "baseline": sim_time,
            "ratio": sim_time / fast,
            "note": f"{needed} runs x {per_run:.3f} s/run (pilot {args.pilot_runs} runs, max per-run sd "
            f"{spread:.3f}); pilot mean vs theory: max |diff| {bias:.1e}",
        },
    ]

    # 2. general covariance p = 512 -----------------------------------------------------------------------
    p, n = 512, 1024
    idx = np.arange(p)
    cov = 0.4 ** np.abs(idx[:, None] - idx[None, :])
    mu = np.zeros(p)
    mu[0] = 2.0

    def general_curves():  # type: ignore[no-untyped-def]
        theory = GeneralCovGDTheory(mu, cov, n, 0.1, 0.01, discrete=True)
        terms = theory.terms(steps)
        return terms.test_error, terms.train_error

    general_curves()
    slow = best_of(general_curves, max(1, args.repeats // 2))
    general = GeneralCovGDTheory(mu, cov, n, 0.1, 0.01, discrete=True)
    per_run_c, spread_c, needed_c, sim_c = simulation_cost(mu, n, cov, steps, args.pilot_runs, EPS)
    sim_time_c = needed_c * per_run_c
    bias_c = float(np.max(np.abs(sim_c.test_error_mean - general.test_error(steps))))
    rows += [
        {
            "benchmark": "general C p=512 n=1024",
            "metric": "theory curves, 1000 steps, incl. eigendecomposition",
            "value": slow,
            "unit": "s",
            "target": 2.0,
            "met": slow <= 2.0,
        },
        {
            "benchmark": "general C p=512 n=1024",
            "metric": f"simulation for SE <= {EPS:g} at every step",
            "value": sim_time_c,
            "unit": "s",
            "baseline": sim_time_c,
            "ratio": sim_time_c / slow,
            "note": f"{needed_c} runs x {per_run_c:.3f} s/run (pilot {args.pilot_runs} runs, max per-run sd "
            f"{spread_c:.3f}); pilot mean vs theory: max |diff| {bias_c:.1e}",
        },
    ]
    atomic_write_json(Path(__file__).parent / "results" / "learningdyn.json", rows)
    print(f"{'benchmark':24s} {'metric':58s} {'value':>10s} {'target':>7s} {'ratio':>9s}")
    for row in rows:
        target = f"{row['target']:g}" if "target" in row else ""
        ratio = f"{row['ratio']:.0f}x" if "ratio" in row else ""
        print(f"{row['benchmark']:24s} {row['metric']:58s} {row['value']:10.4f} {target:>7s} {ratio:>9s}")
        if "note" in row:
            print(f"{'':24s}   {row['note']}")


if __name__ == "__main__":
    main()
