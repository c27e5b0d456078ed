"""Shared plumbing of the Liao & Couillet experiments: resumable Monte Carlo in batches of runs,
theory-vs-simulation deviation summaries and the learning-curve plots. No theory here."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

import numpy as np
from matplotlib.axes import Axes

from dltheory.core.io import atomic_save
from dltheory.learningdyn import Simulation
from dltheory.runner.runs import RunDir

BatchFn = Callable[[int, np.random.Generator], Simulation]


def resumable_simulation(
    run_dir: RunDir, key: str, runs: int, batch: int, seed: int, fn: BatchFn
) -> Simulation:
    """``runs`` runs of ``fn(size, generator)`` in batches of ``batch``; each finished batch is saved to
    ``run_dir.checkpoints/<key>-<b>.npz`` and reused on resume. Batch b draws from
    ``default_rng([seed, b])``, so a resumed run gives the same numbers as an uninterrupted one."""
    tests, trains, times = [], [], None
    for b, start in enumerate(range(0, runs, batch)):
        path = run_dir.checkpoints / f"{key}-{b:03d}.npz"
        if path.exists():
            with np.load(path) as stored:
                sim = Simulation(stored["times"], stored["test"], stored["train"])
        else:
            sim = fn(min(batch, runs - start), np.random.default_rng([seed, b]))
            atomic_save(path, _saver(sim))
        times = sim.times
        tests.append(sim.test_errors)
        trains.append(sim.train_errors)
    assert times is not None
    return Simulation(times, np.concatenate(tests), np.concatenate(trains))


def _saver(sim: Simulation) -> Callable[[IO[bytes]], None]:
    def save(handle: IO[bytes]) -> None:
        np.savez(handle, times=sim.times, test=sim.test_errors, train=sim.train_errors)

    return save


def deviation(theory: np.ndarray, mean: np.ndarray, se: np.ndarray, floor: float = 0.0) -> dict[str, Any]:
    """``|simulation - theory|`` in absolute terms and in units of ``max(se, floor)``. ``floor`` is the
    resolution of an error rate counted on m points over r runs, ``1/(m sqrt(r))``: where every run
    counts 0 errors the standard error is 0 while the theory is a tiny positive rate."""
    diff = np.abs(mean - theory)
    scale = np.maximum(se, floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), np.where(diff > 0, np.inf, 0.0))
    return {
        "max_abs": float(np.max(diff)),
        "max_z": float(np.max(z)),
        "within_3se": float(np.mean(z <= 3.0)),
        "z": z,
    }


def plot_curves(
    ax: Axes,
    steps: np.ndarray,
    theory: dict[str, np.ndarray],
    sim: dict[str, Any],
    *,
    levels: dict[str, float],
) -> None:
    """Theory lines over simulation mean +- one standard error (``sim`` as from ``Simulation.to_dict``,
    possibly read back from JSON); horizontal reference levels."""
    colors = {"test": "tab:blue", "train": "tab:orange"}
    times = np.asarray(sim["times"], dtype=float)
    finite = np.isfinite(times)
    for kind in ("test", "train"):
        ax.plot(steps, theory[kind], color=colors[kind], lw=1.6, label=f"{kind} error, theory")
        mean = np.asarray(sim[f"{kind}_error_mean"], dtype=float)
        se = np.asarray(sim[f"{kind}_error_se"], dtype=float)
        if np.all(np.isnan(mean)):
            continue
        ax.errorbar(
            times[finite],
            mean[finite],
            yerr=se[finite],
            fmt="o",
            ms=3,
            color=colors[kind],
            alpha=0.75,
            elinewidth=0.8,
            label=f"{kind} error, gradient descent ({sim['runs']} runs, mean +- SE)",
        )
    styles = iter([("k", ":"), ("tab:green", "--"), ("tab:red", "-.")])
    for name, value in levels.items():
        color, style = next(styles)
        ax.axhline(value, color=color, ls=style, lw=1.0, label=f"{name} = {value:.4f}")
    ax.set_xlabel("gradient-descent step t")
    ax.set_ylabel("misclassification rate")
    ax.set_ylim(bottom=0)


def mark_optimal_stopping(ax: Axes, optimum: tuple[float, float], last_step: float) -> None:
    """Star at the theory's optimal stopping point; log time axis from step 1 to ``last_step``."""
    t_opt, e_opt = optimum
    ax.plot(
        [t_opt], [e_opt], marker="*", color="k", ms=11, ls="none", label=f"optimal stopping, t = {t_opt:.0f}"
    )
    ax.set_xscale("log")
    ax.set_xlim(1, last_step)


def plot_learning_curve_panel(ax: Axes, panel: dict[str, Any]) -> np.ndarray:
    """One panel of a learning-curve figure from a result's panel (as ``liao-dynamics`` and ``liao-mnist``
    store it: ``steps``, ``theory_test``, ``theory_train``, ``simulation``, ``least_squares_test``,
    ``best_possible``, ``optimal_stopping``): theory over simulation (:func:`plot_curves`), the
    least-squares and best-possible levels, and the optimal stopping point (:func:`mark_optimal_stopping`).
    Returns the steps, for what the caller draws on top."""
    steps = np.asarray(panel["steps"], dtype=float)
    plot_curves(
        ax,
        steps,
        {"test": np.asarray(panel["theory_test"]), "train": np.asarray(panel["theory_train"])},
        panel["simulation"],
        levels={
            "least squares (t = inf)": panel["least_squares_test"],
            "best possible": panel["best_possible"],
        },
    )
    mark_optimal_stopping(ax, panel["optimal_stopping"], steps[-1])
    return steps
