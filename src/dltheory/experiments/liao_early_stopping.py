"""Optimal early stopping vs the initialisation variance sigma2 (Liao & Couillet 2018, Section 3 and
Figure 3): a larger initialisation raises both the best achievable test error and the time at which
gradient descent should be stopped; sigma2 -> 0 approaches the best possible error Q(M/sqrt(M + c)).

Theory: :meth:`dltheory.learningdyn.GDTheory.optimal_stopping` (discrete time). Simulation: gradient
descent on p = 256, n = 512, mu = [2, 0, ...], alpha = 0.01; at each sigma2 the simulated mean test
error is read at the theory's optimal step (an unbiased check), and the argmin of the simulated mean
curve with its near-optimal window (mean within 2 SE of the minimum) is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dltheory.core.figures import new_figure, save_figure
from dltheory.experiments._liao_common import resumable_simulation
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.learningdyn import GDTheory, simulate
from dltheory.runner.runs import RunDir

NAME = "liao-early-stopping"


@dataclass(frozen=True)
class Config:
    p: int = 256
    n: int = 512
    mu_norm2: float = 4.0
    alpha: float = 0.01
    sigma2: tuple[float, ...] = (0.01, 0.0215, 0.0464, 0.1, 0.215, 0.464, 1.0)
    t_max: int = 3000
    runs: int = 50
    batch: int = 25
    seed: int = 0


PROFILES = {
    "tiny": Config(p=64, n=128, sigma2=(0.01, 0.1, 1.0), t_max=1500, runs=6, batch=3),
    "quick": Config(),
    "paper": Config(sigma2=tuple(float(s) for s in np.round(np.geomspace(0.01, 1.0, 11), 4)), runs=100),
}


def run(config: Config, run_dir: RunDir) -> Result:
    mu = np.zeros(config.p)
    mu[0] = np.sqrt(config.mu_norm2)
    steps = np.unique(np.round(np.geomspace(1, config.t_max, 160)))
    rows: list[dict[str, Any]] = []
    for k, sigma2 in enumerate(config.sigma2):
        theory = GDTheory.from_mu(mu, config.n, sigma2, config.alpha, discrete=True)
        stop = theory.optimal_stopping()
        times = np.unique(np.append(steps, stop.time))

        def batch(size: int, rng: np.random.Generator, s2: float = sigma2, t: np.ndarray = times):
            return simulate(mu, config.n, s2, config.alpha, t, runs=size, seed=rng, train_error=False)

        sim = resumable_simulation(run_dir, f"sigma2-{k}", config.runs, config.batch, config.seed + k, batch)
        mean, se = sim.test_error_mean, sim.test_error_se
        at_opt = int(np.searchsorted(sim.times, stop.time))
        best = int(np.argmin(mean))
        window = sim.times[mean <= mean[best] + 2 * se[best]]
        rows.append(
            {
                "sigma2": sigma2,
                "theory_time": stop.time,
                "theory_error": stop.error,
                "sim_error_at_theory_time": float(mean[at_opt]),
                "sim_se_at_theory_time": float(se[at_opt]),
                "sim_argmin_time": float(sim.times[best]),
                "sim_min_error": float(mean[best]),
                "sim_window": [float(window.min()), float(window.max())],
                "runs": sim.runs,
            }
        )
        run_dir.log_metrics({"sigma2": sigma2, **{k2: v for k2, v in rows[-1].items() if k2 != "sim_window"}})
    claims = []
    for row in rows:
        z = abs(row["sim_error_at_theory_time"] - row["theory_error"]) / row["sim_se_at_theory_time"]
        inside = row["sim_window"][0] <= row["theory_time"] <= row["sim_window"][1]
        claims.append(
            Claim(
                f"sigma2={row['sigma2']:g}: test error at the theory's optimal step "
                f"t*={row['theory_time']:.0f}",
                row["theory_error"],
                row["sim_error_at_theory_time"],
                "3 SE",
                bool(z <= 3.0),
                f"|z| = {z:.2f} ({row['runs']} runs); simulated mean curve: argmin t = "
                f"{row['sim_argmin_time']:.0f}, "
                f"near-optimal window [{row['sim_window'][0]:.0f}, {row['sim_window'][1]:.0f}] "
                f"{'contains' if inside else 'misses'} t*",
            )
        )
    theory_errors = [r["theory_error"] for r in rows]
    theory_times = [r["theory_time"] for r in rows]
    sim_errors = [r["sim_error_at_theory_time"] for r in rows]
    claims.append(
        Claim(
            "theory: larger sigma2 raises both the optimal error and the optimal stopping time",
            "strictly increasing",
            {"errors": theory_errors, "times": theory_times},
            None,
            bool(np.all(np.diff(theory_errors) > 0) and np.all(np.diff(theory_times) > 0)),
        )
    )
    claims.append(
        Claim(
            "simulation: the best test error grows with sigma2",
            "strictly increasing",
            sim_errors,
            None,
            bool(np.all(np.diff(sim_errors) > 0)),
            "simulated mean test error at each sigma2's optimal step",
        )
    )
    zero = GDTheory.from_mu(mu, config.n, 0.0, config.alpha)
    best_possible = zero.best_possible_error()
    claims.append(
        Claim(
            "sigma2 -> 0: the optimal error approaches the best possible error Q(M/sqrt(M + c))",
            best_possible,
            zero.optimal_stopping().error,
            1e-9,
            abs(zero.optimal_stopping().error - best_possible) < 1e-9,
            "theory at sigma2 = 0 (gradient flow): optimum as t -> 0+",
        )
    )
    dense = np.geomspace(min(config.sigma2) / 2, max(config.sigma2) * 1.5, 40)
    curve = [
        GDTheory.from_mu(mu, config.n, s2, config.alpha, discrete=True).optimal_stopping() for s2 in dense
    ]
    data = {
        "rows": rows,
        "dense_sigma2": dense.tolist(),
        "dense_time": [s.time for s in curve],
        "dense_error": [s.error for s in curve],
        "best_possible": best_possible,
        "setting": {"p": config.p, "n": config.n, "mu_norm2": config.mu_norm2, "alpha": config.alpha},
    }
    return Result(NAME, claims=claims, data=data)


def plot(result: Result, figures_dir: Path) -> list[Path]:
    data = result.data
    rows = data["rows"]
    s2 = np.array([r["sigma2"] for r in rows])
    fig, (ax_t, ax_e) = new_figure(1, 2, figsize=(11, 4.2))
    ax_t.plot(data["dense_sigma2"], data["dense_time"], color="tab:blue", label="theory: optimal step t*")
    low = [r["sim_argmin_time"] - r["sim_window"][0] for r in rows]
    high = [r["sim_window"][1] - r["sim_argmin_time"] for r in rows]
    ax_t.errorbar(
        s2,
        [r["sim_argmin_time"] for r in rows],
        yerr=[low, high],
        fmt="o",
        color="tab:orange",
        capsize=3,
        label="simulation: argmin of mean test error (bars: within 2 SE of the minimum)",
    )
    ax_t.set_xscale("log")
    ax_t.set_yscale("log")
    ax_t.set_xlabel("initialisation variance sigma2")
    ax_t.set_ylabel("optimal stopping step")
    ax_t.legend(fontsize=7)
    ax_e.plot(data["dense_sigma2"], data["dense_error"], color="tab:blue", label="theory: test error at t*")
    ax_e.errorbar(
        s2,
        [r["sim_error_at_theory_time"] for r in rows],
        yerr=[r["sim_se_at_theory_time"] for r in rows],
        fmt="o",
        color="tab:orange",
        capsize=3,
        label="simulation: mean test error at t* (+- SE)",
    )
    ax_e.axhline(data["best_possible"], color="tab:green", ls="--", label="best possible Q(M/sqrt(M+c))")
    ax_e.set_xscale("log")
    ax_e.set_xlabel("initialisation variance sigma2")
    ax_e.set_ylabel("test misclassification rate")
    ax_e.legend(fontsize=7)
    setting = data["setting"]
    fig.suptitle(
        f"Early stopping: p = {setting['p']}, n = {setting['n']}, ||mu||^2 = {setting['mu_norm2']:g}, "
        f"alpha = {setting['alpha']:g}",
        fontsize=10,
    )
    return [save_figure(fig, figures_dir / "liao_early_stopping.png", tight_layout=True)]


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description="Optimal stopping time and error vs initialisation variance sigma2: theory and simulation",
    paper="liao",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
