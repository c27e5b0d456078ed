"""Learning curves of gradient descent on a Gaussian mixture: theory vs simulation (Liao & Couillet 2018,
Figures 1-2).

Settings of the paper: mu = [2, 0, ..., 0] (||mu||^2 = 4), sigma2 = 0.1, alpha = 0.01, t up to 1000,
(p, n) = (256, 512) and (512, 512), 50 runs. The theory (:class:`dltheory.learningdyn.GDTheory`) is
drawn in its exact discrete-time form (solid) and in the paper's gradient-flow form (dashed); the
simulation is gradient descent on fresh draws, its test error the exact population error of each w(t).
Marked: the least-squares level (t -> inf) and the best possible error Q(M/sqrt(M + c)).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltheory.core.figures import new_figure, save_figure
from dltheory.experiments._liao_common import (
    deviation,
    plot_learning_curve_panel,
    resumable_simulation,
)
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.learningdyn import GDTheory, simulate
from dltheory.runner.runs import RunDir

NAME = "liao-dynamics"


@dataclass(frozen=True)
class Config:
    settings: tuple[tuple[int, int], ...] = ((256, 512), (512, 512))  # (p, n)
    mu_norm2: float = 4.0
    sigma2: float = 0.1
    alpha: float = 0.01
    t_max: int = 1000
    checkpoints: tuple[int, ...] = (5, 10, 20, 50, 100, 200, 500, 1000)
    runs: int = 50
    batch: int = 10
    seed: int = 0


PROFILES = {
    "tiny": Config(
        settings=((64, 128), (128, 128)), t_max=200, checkpoints=(5, 20, 50, 200), runs=6, batch=3
    ),
    "quick": Config(),
    "paper": Config(),
}


def _steps(t_max: int) -> np.ndarray:
    """Simulated steps: every step up to 10, then about 60 per decade."""
    dense = np.arange(0, min(10, t_max) + 1)
    sparse = np.unique(np.round(np.geomspace(10, t_max, 120)))
    return np.unique(np.concatenate([dense, sparse, [t_max]])).astype(np.float64)


def _setting(config: Config, p: int, n: int, run_dir: RunDir) -> tuple[dict, list[Claim]]:
    mu = np.zeros(p)
    mu[0] = np.sqrt(config.mu_norm2)
    theory = GDTheory.from_mu(mu, n, config.sigma2, config.alpha, discrete=True)
    flow = GDTheory.from_mu(mu, n, config.sigma2, config.alpha)
    c = p / n
    steps = np.arange(0, config.t_max + 1, dtype=np.float64)
    times = _steps(config.t_max)
    with_limit = c != 1  # at c = 1 the least-squares norm diverges: finite-p runs do not converge to it
    sim_times = np.append(times, np.inf) if with_limit else times

    def batch(size: int, rng: np.random.Generator):
        return simulate(mu, n, config.sigma2, config.alpha, sim_times, runs=size, seed=rng)

    sim = resumable_simulation(run_dir, f"p{p}-n{n}", config.runs, config.batch, config.seed, batch)
    check = np.isin(sim.times, np.asarray(config.checkpoints, dtype=np.float64))
    test_theory = theory.test_error(sim.times)
    train_theory = theory.train_error(sim.times)
    test_dev = deviation(test_theory[check], sim.test_error_mean[check], sim.test_error_se[check])
    floor = 1.0 / (n * np.sqrt(sim.runs))  # resolution of a training error counted on n points
    train_dev = deviation(train_theory[check], sim.train_error_mean[check], sim.train_error_se[check], floor)
    all_dev = deviation(test_theory, sim.test_error_mean, sim.test_error_se)
    stop = theory.optimal_stopping()
    finite = np.isfinite(sim.times)
    k = int(np.argmin(np.where(finite, sim.test_error_mean, np.inf)))
    limit = theory.least_squares_limit()
    run_dir.log_metrics({"p": p, "n": n, "max_z_test": test_dev["max_z"], "max_z_train": train_dev["max_z"]})
    label = f"p={p}, n={n} (c={c:g})"
    claims = [
        Claim(
            f"{label}: test error, theory within 3 SE of gradient descent at t in {list(config.checkpoints)}",
            "max |z| <= 3",
            round(test_dev["max_z"], 3),
            3.0,
            test_dev["max_z"] <= 3.0,
            f"max |theory - simulation| = {test_dev['max_abs']:.2g}; over all {len(sim.times)} simulated "
            f"steps {100 * all_dev['within_3se']:.0f}% lie within 3 SE (max |z| {all_dev['max_z']:.2f}, "
            f"correlated steps, {sim.runs} runs)",
        ),
        Claim(
            f"{label}: training error, theory within 3 SE at the same steps",
            "max |z| <= 3",
            round(train_dev["max_z"], 3),
            3.0,
            train_dev["max_z"] <= 3.0,
            f"max |theory - simulation| = {train_dev['max_abs']:.2g}; SE floored at 1/(n sqrt(runs)) = "
            f"{floor:.2g} (all runs at 0 training errors give SE = 0)",
        ),
        Claim(
            f"{label}: optimal stopping (theory) vs argmin of the simulated mean test error",
            {"t": stop.time, "error": stop.error},
            {"t": float(sim.times[k]), "error": float(sim.test_error_mean[k])},
            None,
            None,
            "the simulated curve is flat near its minimum: its argmin is noisy, compare the errors",
        ),
    ]
    if with_limit:
        z_inf = abs(sim.test_error_mean[-1] - limit.test_error) / sim.test_error_se[-1]
        claims.append(
            Claim(
                f"{label}: least-squares limit (t = inf) within 3 SE",
                limit.test_error,
                float(sim.test_error_mean[-1]),
                "3 SE",
                bool(z_inf <= 3.0),
                f"|z| = {z_inf:.2f}; the paper: alignment shrinks by sqrt(1 - min(c, 1/c))",
            )
        )
    else:
        claims.append(
            Claim(
                f"{label}: least-squares limit at c = 1 is chance level",
                0.5,
                limit.test_error,
                1e-12,
                abs(limit.test_error - 0.5) < 1e-12,
                "theory; the norm of the least-squares solution diverges at p = n",
            )
        )
    spectrum = _spectrum(theory, mu, n, config.seed)
    data = {
        "spectrum": spectrum,
        "p": p,
        "n": n,
        "c": c,
        "steps": steps.tolist(),
        "theory_test": theory.test_error(steps).tolist(),
        "theory_train": theory.train_error(steps).tolist(),
        "flow_test": flow.test_error(steps).tolist(),
        "flow_train": flow.train_error(steps).tolist(),
        "least_squares_test": limit.test_error,
        "best_possible": theory.best_possible_error(),
        "optimal_stopping": [stop.time, stop.error],
        "simulation": sim.to_dict(),
    }
    return data, claims


def _spectrum(theory: GDTheory, mu: np.ndarray, n: int, seed: int) -> dict:
    """Eigenvalues of one draw of X X^T/n against the Marchenko-Pastur density and the spike."""
    rng = np.random.default_rng([seed, 999])
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    x = np.outer(mu, y) + rng.standard_normal((mu.size, n))
    eig = np.linalg.eigvalsh(x @ x.T / n)
    lo, hi = theory.marchenko_pastur.support
    grid = np.linspace(lo, hi, 400)
    return {
        "eigenvalues": eig.tolist(),
        "grid": grid.tolist(),
        "density": theory.marchenko_pastur.density(grid).tolist(),
        "atom_at_zero": theory.marchenko_pastur.atom_at_zero,
        "spike": theory.spike_location,
    }


def run(config: Config, run_dir: RunDir) -> Result:
    claims: list[Claim] = []
    panels = []
    for p, n in config.settings:
        data, setting_claims = _setting(config, p, n, run_dir)
        panels.append(data)
        claims.extend(setting_claims)
    notes = [
        "Simulated test errors are the exact population errors Q(w^T mu/||w||) of each run's w(t); "
        "training errors are counted on the training set.",
        "Theory: exact discrete-time filter (1 - alpha x)^t; the paper's gradient-flow curves are dashed.",
    ]
    return Result(NAME, claims=claims, data={"settings": panels}, notes=notes)


def plot(result: Result, figures_dir: Path) -> list[Path]:
    panels = result.data["settings"]
    fig, axes = new_figure(1, len(panels), figsize=(6.2 * len(panels), 4.6), squeeze=False)
    for ax, data in zip(axes[0], panels, strict=True):
        steps = plot_learning_curve_panel(ax, data)
        ax.plot(
            steps, data["flow_test"], color="tab:blue", ls="--", lw=0.9, label="test error, gradient flow"
        )
        ax.plot(
            steps, data["flow_train"], color="tab:orange", ls="--", lw=0.9, label="train error, gradient flow"
        )
        ax.set_title(
            f"p = {data['p']}, n = {data['n']} (||mu||^2 = 4, sigma2 = 0.1, alpha = 0.01)", fontsize=10
        )
        ax.legend(fontsize=7)
    curves = save_figure(fig, figures_dir / "liao_dynamics.png", tight_layout=True)
    return [curves, _plot_spectra(panels, figures_dir)]


def _plot_spectra(panels: list[dict], figures_dir: Path) -> Path:
    fig, axes = new_figure(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    for ax, data in zip(axes[0], panels, strict=True):
        spec = data["spectrum"]
        eig = np.asarray(spec["eigenvalues"], dtype=float)
        bulk = eig[eig > 1e-8] if spec["atom_at_zero"] == 0 else eig
        ax.hist(
            bulk,
            bins=60,
            density=True,
            color="0.75",
            label=f"eigenvalues of X X^T/n (one draw, p = {data['p']})",
        )
        ax.plot(spec["grid"], spec["density"], color="tab:blue", lw=1.5, label="Marchenko-Pastur density")
        if spec["spike"] is not None:
            ax.axvline(
                spec["spike"], color="tab:red", ls="--", label=f"spike c + 1 + M + c/M = {spec['spike']:.3f}"
            )
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density")
        ax.set_title(f"p = {data['p']}, n = {data['n']}", fontsize=10)
        ax.legend(fontsize=7)
    return save_figure(fig, figures_dir / "liao_dynamics_spectrum.png", tight_layout=True)


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description="Training/test error of gradient descent vs time: random-matrix theory over simulation",
    paper="liao",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
