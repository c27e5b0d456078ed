"""Laurent & von Brecht (ICML 2018): differentiability is needed for "all local minima are global".

Widths 1 -> 1 -> 2 satisfy the width condition, but with the convex, non-differentiable
``f(a, b) = 2|a| + |b - 1| - 1`` the point ``w1 = 0, w2 = (1, 0)`` is a local minimum of value 0 while the
global minimum is -1 (:mod:`dltheory.deeplinear.counterexample`). The experiment certifies the bad point
(random-perturbation test, the analytic bound ``L >= 0`` on a box checked on a grid), certifies the
global one, shows that the Huber-smoothed f (convex and differentiable) turns the bad point into a strict
saddle, and runs gradient descent from the same random initialisations on both: with the non-smooth f a
share of the runs stops at value 0, with the smooth f every run reaches -1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltheory.core.figures import new_figure, save_figure
from dltheory.core.io import atomic_write_json, read_json
from dltheory.deeplinear import analyze, counterexample_function, train
from dltheory.deeplinear.counterexample import (
    GLOBAL_MINIMUM,
    GLOBAL_VALUE,
    LOCAL_BOX,
    LOCAL_MINIMUM,
    WIDTHS,
    network_loss,
)
from dltheory.deeplinear.train import init_weights
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.runner.runs import RunDir

NAME = "laurent-counterexample"


@dataclass(frozen=True)
class Config:
    restarts: int = 400
    steps: int = 20000
    lr: float = 0.1
    smoothing: float = 0.1
    grid: int = 41
    perturbation_samples: int = 500
    certify: int = 100
    seed: int = 0


PROFILES = {
    "tiny": Config(restarts=20, steps=4000, grid=11, perturbation_samples=100, certify=10),
    "quick": Config(),
    "paper": Config(restarts=2000, steps=50000, grid=81, perturbation_samples=2000, certify=400),
}

_VALUE_TOL = 1e-3


def _certificates(config: Config) -> dict:
    rough = counterexample_function()
    smooth = counterexample_function(config.smoothing)
    bad = analyze(
        list(LOCAL_MINIMUM), rough, perturbation_samples=config.perturbation_samples, seed=config.seed
    )
    good = analyze(list(GLOBAL_MINIMUM), rough, seed=config.seed)
    bad_smooth = analyze(list(LOCAL_MINIMUM), smooth, seed=config.seed)
    hx, hy, hz = LOCAL_BOX
    axis = np.linspace(-1.0, 1.0, config.grid)
    x, y, z = np.meshgrid(hx * axis, 1.0 + hy * axis, hz * axis, indexing="ij")
    box_min = float(network_loss(x, y, z).min())
    return {
        "bad": bad.to_dict(include_arrays=False),
        "good": good.to_dict(include_arrays=False),
        "bad_smooth": bad_smooth.to_dict(include_arrays=False),
        "escape_direction": [d.ravel().tolist() for d in bad_smooth.escape.direction]
        if bad_smooth.escape
        else None,
        "box_min": box_min,
        "box_points": config.grid**3,
    }


def _restarts(config: Config, smoothing: float | None) -> dict:
    rng = np.random.default_rng(config.seed)
    start = init_weights(WIDTHS, config.restarts, rng)
    init = [[w[r] for w in start] for r in range(config.restarts)]
    result = train(
        WIDTHS,
        counterexample_function(smoothing),
        restarts=config.restarts,
        steps=config.steps,
        lr=config.lr,
        init=init,
    )
    verdicts = [
        analyze(weights, counterexample_function(smoothing), seed=config.seed).verdict
        for weights in result.weights[: config.certify]
    ]
    return {"values": result.losses.tolist(), "status": result.status, "verdicts": verdicts}


def _cached(run_dir: RunDir, name: str, compute):  # type: ignore[no-untyped-def]
    path = run_dir.checkpoints / f"{name}.json"
    if path.exists():
        return read_json(path)
    value = compute()
    atomic_write_json(path, value)
    run_dir.log_metrics({"stage": name})
    return value


def run(config: Config, run_dir: RunDir) -> Result:
    cert = _cached(run_dir, "certificates", lambda: _certificates(config))
    rough = _cached(run_dir, "restarts_nonsmooth", lambda: _restarts(config, None))
    smooth = _cached(run_dir, "restarts_smooth", lambda: _restarts(config, config.smoothing))
    rough_values = np.array(rough["values"])
    smooth_values = np.array(smooth["values"])
    stuck = float(np.mean(np.abs(rough_values) <= _VALUE_TOL))
    rough_global = float(np.mean(rough_values <= GLOBAL_VALUE + _VALUE_TOL))
    smooth_global = float(np.mean(smooth_values <= GLOBAL_VALUE + _VALUE_TOL))
    converged = np.array([s == "converged" for s in smooth["status"]])
    smooth_converged_global = float(np.mean(smooth_values[converged] <= GLOBAL_VALUE + _VALUE_TOL))
    bad, good, bad_smooth = cert["bad"], cert["good"], cert["bad_smooth"]
    claims = [
        Claim(
            "non-smooth f: w1 = 0, w2 = (1, 0) certified a local minimum",
            "local_minimum",
            bad["verdict"],
            None,
            bad["verdict"] == "local_minimum",
            f"Clarke-stationarity estimate {bad['stationarity']:.2g}; smallest loss change over "
            f"{bad['perturbation']['samples']} random perturbations per radius: "
            + ", ".join(f"{c:.2g}" for c in bad["perturbation"]["min_change"]),
        ),
        Claim(
            "analysis: L >= 0 = L(bad point) on the box |x| < 3, |y - 1| < 1/3, |z| < 1/3",
            ">= 0",
            cert["box_min"],
            0.0,
            cert["box_min"] >= 0.0,
            f"minimum of L over a grid of {cert['box_points']} points of the box",
        ),
        Claim(
            "optimality gap of the bad local minimum (global optimum -1)",
            1.0,
            bad["optimality_gap"],
            1e-6,
            abs(bad["optimality_gap"] - 1.0) <= 1e-6,
            bad["global_optimum_method"],
        ),
        Claim(
            "w1 = 1, w2 = (0, 1) certified a global minimum",
            "global_minimum",
            good["verdict"],
            None,
            good["verdict"] == "global_minimum",
            good["reason"],
        ),
        Claim(
            f"Huber-smoothed f (delta = {config.smoothing}): the bad point becomes a saddle",
            "saddle",
            bad_smooth["verdict"],
            None,
            bad_smooth["verdict"] == "saddle",
            bad_smooth["reason"],
        ),
        Claim(
            "Huber-smoothed f: smallest Hessian eigenvalue at the bad point, 1/delta - sqrt(1/delta^2 + 1)",
            1.0 / config.smoothing - np.sqrt(1.0 / config.smoothing**2 + 1.0),
            bad_smooth["hessian_min"],
            1e-6,
            abs(
                bad_smooth["hessian_min"]
                - (1.0 / config.smoothing - np.sqrt(1.0 / config.smoothing**2 + 1.0))
            )
            <= 1e-6,
            "Hessian block [[2/delta, -1], [-1, 0]] in (w1, w2[1])",
        ),
        Claim(
            "non-smooth f: share of gradient-descent runs ending at the sub-optimal value 0",
            "> 0",
            stuck,
            None,
            stuck > 0.0,
            f"{config.restarts} Gaussian initialisations; {rough_global:.0%} reach -1; the rest stall at "
            "non-stationary kinks",
        ),
        Claim(
            "smooth f: share of converged gradient-descent runs at the global value -1 (same inits)",
            1.0,
            smooth_converged_global,
            0.0,
            smooth_converged_global == 1.0,
            f"{int(converged.sum())} of {config.restarts} runs converged (gradient norm <= 1e-7) within "
            f"{config.steps} steps; {smooth_global:.2%} of all runs are at -1 (the others are still "
            f"escaping a saddle); value tolerance {_VALUE_TOL}",
        ),
    ]
    notes = [
        "Gradient descent on the non-smooth f is a subgradient method with backtracking: runs that stall at "
        "a kink which is not stationary are counted neither as stuck nor as global.",
        "Verdicts of the first runs (non-smooth): "
        + ", ".join(f"{v} {rough['verdicts'].count(v)}" for v in sorted(set(rough["verdicts"])))
        + "; (smooth): "
        + ", ".join(f"{v} {smooth['verdicts'].count(v)}" for v in sorted(set(smooth["verdicts"]))),
    ]
    data = {
        "nonsmooth_values": rough["values"],
        "smooth_values": smooth["values"],
        "escape_direction": cert["escape_direction"],
        "smoothing": config.smoothing,
        "bad_perturbation_radii": bad["perturbation"]["radii"],
        "bad_perturbation_min_change": bad["perturbation"]["min_change"],
    }
    return Result(NAME, claims=claims, data=data, notes=notes)


def plot(result: Result, figures_dir: Path) -> list[Path]:
    data = result.data
    delta = data["smoothing"]
    x, z = np.meshgrid(np.linspace(-0.2, 0.2, 301), np.linspace(-1.0, 1.0, 301))
    fig, axes = new_figure(1, 3, figsize=(15, 4.4))
    levels = np.linspace(-0.03, 0.03, 25)
    for ax, smoothing, title in (
        (axes[0], None, "non-smooth f: local minimum\n(no lower loss near the star)"),
        (axes[1], delta, f"Huber-smoothed f (delta={delta}): saddle\n(blue wedge of lower loss at the star)"),
    ):
        surface = network_loss(x, 1.0, z, smoothing) - network_loss(0.0, 1.0, 0.0, smoothing)
        contour = ax.contourf(x, z, np.clip(surface, -0.03, 0.03), levels=levels, cmap="RdBu_r")
        ax.contour(x, z, surface, levels=[0.0], colors="k", linewidths=0.8)
        ax.plot([0], [0], "*", color="gold", markeredgecolor="k", markersize=15, label="w1 = 0, w2 = (1, 0)")
        ax.set_xlabel("w1 (x)")
        ax.set_ylabel("w2[1] (z), with w2[0] = 1")
        ax.set_title(title, fontsize=10)
        fig.colorbar(contour, ax=ax, label="L(w) - L(star), clipped to +-0.03")
    direction = data.get("escape_direction")
    if direction:
        dx, dz = direction[0][0], direction[1][1]
        scale = 0.6 / max(abs(dz), 1e-12)
        axes[1].annotate(
            "", xy=(scale * dx, scale * dz), xytext=(0, 0), arrowprops={"color": "green", "width": 2}
        )
        axes[1].plot([], [], color="green", label="certified escape direction (x, z part)")
    for ax in axes[:2]:
        ax.legend(loc="lower left", fontsize=8)
    bins = np.linspace(-1.05, 0.6, 34)
    axes[2].hist(data["nonsmooth_values"], bins=bins, alpha=0.6, label="non-smooth f")
    axes[2].hist(data["smooth_values"], bins=bins, alpha=0.6, label=f"smooth f (delta={delta})")
    axes[2].axvline(-1.0, color="k", linestyle="--", label="global minimum -1 (theory)")
    axes[2].axvline(0.0, color="r", linestyle=":", label="bad local minimum 0 (theory)")
    axes[2].set_xlabel("final loss after gradient descent")
    axes[2].set_ylabel("number of random initialisations")
    axes[2].set_title("gradient descent from the same initialisations")
    axes[2].legend(fontsize=8)
    return [save_figure(fig, figures_dir / "counterexample.png", tight_layout=True)]


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description="Non-differentiable loss: a certified sub-optimal local minimum that smoothing removes",
    paper="laurent",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
