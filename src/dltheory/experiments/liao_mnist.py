"""Learning curves of gradient descent on real images (Liao & Couillet 2018, Figure 4: MNIST 1 vs 7).

Two classes are prepared as in the paper (:mod:`dltheory.learningdyn.realdata`: white noise at -10 dB,
class-wise whitening, re-centring to +-mu), n = p = 784 training images are drawn per run and the test
error is measured on all the other prepared images. The theory is :class:`dltheory.learningdyn.GDTheory`
with ``||mu||^2`` of the estimated mean and c = p/n. Fashion-MNIST (T-shirt/top vs Trouser) is run the
same way when its files are on the data search path (Debian: ``apt-get install dataset-fashion-mnist``).

Real data match the model only in their first two moments; the claims use an absolute tolerance on the
error rates (a "close fit", as in the paper's figure) and report the deviations in standard errors too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dltheory.core.figures import new_figure, save_figure
from dltheory.data import load, require
from dltheory.experiments._liao_common import (
    deviation,
    plot_learning_curve_panel,
    resumable_simulation,
)
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.learningdyn import GDTheory, simulate_on_data
from dltheory.learningdyn.realdata import prepare_two_class_arrays
from dltheory.runner.runs import RunDir

NAME = "liao-mnist"

CLASS_NAMES = {"mnist": ("digit", "digit"), "fashion-mnist": ("T-shirt/top", "Trouser")}


@dataclass(frozen=True)
class Config:
    datasets: tuple[str, ...] = ("mnist", "fashion-mnist")
    classes: tuple[tuple[int, int], ...] = ((1, 7), (0, 1))
    snr_db: float = -10.0
    n: int = 784
    sigma2: float = 0.1
    alpha: float = 0.01
    t_max: int = 1000
    checkpoints: tuple[int, ...] = (5, 10, 20, 50, 100, 200, 500, 1000)
    runs: int = 10
    batch: int = 5
    max_per_class: int = 0  # 0: every training image of the two classes
    tolerance: float = 0.02
    seed: int = 0


PROFILES = {
    "tiny": Config(
        datasets=("mnist",),
        classes=((1, 7),),
        t_max=200,
        checkpoints=(10, 50, 200),
        runs=2,
        batch=1,
        max_per_class=1200,
        tolerance=0.05,
    ),
    "quick": Config(),
    "paper": Config(runs=50, batch=10),
}


def _load(
    dataset: str, classes: tuple[int, int], max_per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load(dataset, "train")
    if max_per_class:
        rng = np.random.default_rng([seed, 7])
        keep = np.zeros(labels.size, dtype=bool)
        for label in classes:
            rows = np.flatnonzero(labels == label)
            keep[rng.choice(rows, size=min(max_per_class, rows.size), replace=False)] = True
        # the noise power keeps referring to the whole split (mean squared pixel of all images)
        other = ~np.isin(labels, classes)
        keep |= other
        images, labels = images[keep], labels[keep]
    return images, labels


def _steps(t_max: int) -> np.ndarray:
    return np.unique(np.concatenate([[0.0, 1.0, 2.0], np.round(np.geomspace(3, t_max, 45)), [t_max]]))


def _dataset(
    config: Config, dataset: str, classes: tuple[int, int], run_dir: RunDir
) -> tuple[dict, list[Claim]]:
    images, labels = _load(dataset, classes, config.max_per_class, config.seed)
    prepared = prepare_two_class_arrays(
        images, labels, classes, snr_db=config.snr_db, seed=config.seed, source=f"{dataset} train"
    )
    p = prepared.dimension
    theory = GDTheory(prepared.mu_norm2, (p, config.n), config.sigma2, config.alpha, discrete=True)
    times = _steps(config.t_max)

    def batch(size: int, rng: np.random.Generator):
        return simulate_on_data(
            prepared.x, prepared.y, config.n, config.sigma2, config.alpha, times, runs=size, seed=rng
        )

    sim = resumable_simulation(run_dir, dataset, config.runs, config.batch, config.seed, batch)
    check = np.isin(sim.times, np.asarray(config.checkpoints, dtype=float))
    test_theory, train_theory = theory.test_error(sim.times), theory.train_error(sim.times)
    held_out = prepared.x.shape[0] - config.n
    test_dev = deviation(test_theory[check], sim.test_error_mean[check], sim.test_error_se[check])
    train_dev = deviation(
        train_theory[check],
        sim.train_error_mean[check],
        sim.train_error_se[check],
        1.0 / (config.n * np.sqrt(sim.runs)),
    )
    stop = theory.optimal_stopping()
    best = int(np.argmin(sim.test_error_mean))
    at_opt = float(sim.test_error_mean[int(np.argmin(np.abs(sim.times - stop.time)))])
    label = f"{dataset} {classes[0]} vs {classes[1]}"
    counts = [int(np.sum(prepared.y == -1)), int(np.sum(prepared.y == 1))]
    run_dir.log_metrics(
        {"dataset": dataset, "mu_norm2": prepared.mu_norm2, "max_abs_test": test_dev["max_abs"]}
    )
    claims = [
        Claim(
            f"{label}: test error, theory vs gradient descent at t in {list(config.checkpoints)}",
            f"|difference| <= {config.tolerance}",
            round(test_dev["max_abs"], 4),
            config.tolerance,
            test_dev["max_abs"] <= config.tolerance,
            f"max deviation {test_dev['max_z']:.1f} SE ({sim.runs} runs, {held_out} held-out images); "
            f"||mu||^2 = {prepared.mu_norm2:.3f} from {counts[0]} + {counts[1]} prepared images, "
            f"c = {p}/{config.n}",
        ),
        Claim(
            f"{label}: training error, theory vs gradient descent at the same steps",
            f"|difference| <= {config.tolerance}",
            round(train_dev["max_abs"], 4),
            config.tolerance,
            train_dev["max_abs"] <= config.tolerance,
            f"max deviation {train_dev['max_z']:.1f} SE",
        ),
        Claim(
            f"{label}: optimal stopping (theory) vs the measured curve",
            {"t": stop.time, "error": stop.error},
            {
                "argmin t": float(sim.times[best]),
                "min error": float(sim.test_error_mean[best]),
                "error at t*": at_opt,
            },
            None,
            None,
            "the measured curve is sampled at ~50 steps: its argmin is coarse",
        ),
    ]
    steps = np.arange(0, config.t_max + 1, dtype=float)
    data = {
        "dataset": dataset,
        "classes": list(classes),
        "mu_norm2": prepared.mu_norm2,
        "counts": counts,
        "p": p,
        "n": config.n,
        "steps": steps.tolist(),
        "theory_test": theory.test_error(steps).tolist(),
        "theory_train": theory.train_error(steps).tolist(),
        "least_squares_test": theory.least_squares_limit().test_error,
        "best_possible": theory.best_possible_error(),
        "optimal_stopping": [stop.time, stop.error],
        "simulation": sim.to_dict(),
    }
    return data, claims


def run(config: Config, run_dir: RunDir) -> Result:
    if len(config.classes) != len(config.datasets):
        raise ValueError(
            f"classes must give one pair per dataset, got {config.classes} for {config.datasets}"
        )
    panels: list[dict[str, Any]] = []
    claims: list[Claim] = []
    notes = [
        "Preparation (docs/liao/theory.md): noise variance 10x the mean squared pixel of the split, "
        "class-wise whitening, re-centring to +-mu; n = 784 training images per run, test error on all "
        "other images.",
    ]
    if config.max_per_class:
        notes.append(f"Subsampled to {config.max_per_class} images per class (profile for quick checks).")
    for dataset in config.datasets:  # all data first (search path, verified download, or a clear error)
        require(dataset)
    for dataset, classes in zip(config.datasets, config.classes, strict=True):
        data, dataset_claims = _dataset(config, dataset, tuple(classes), run_dir)  # type: ignore[arg-type]
        panels.append(data)
        claims.extend(dataset_claims)
    return Result(NAME, claims=claims, data={"panels": panels}, notes=notes)


def plot(result: Result, figures_dir: Path) -> list[Path]:
    panels = result.data["panels"]
    if not panels:
        return []
    fig, axes = new_figure(1, len(panels), figsize=(6.2 * len(panels), 4.6), squeeze=False)
    for ax, data in zip(axes[0], panels, strict=True):
        plot_learning_curve_panel(ax, data)
        a, b = data["classes"]
        ax.set_title(
            f"{data['dataset']} {a} vs {b}: p = n = {data['n']}, ||mu||^2 = {data['mu_norm2']:.2f}",
            fontsize=10,
        )
        ax.legend(fontsize=7)
    return [save_figure(fig, figures_dir / "liao_mnist.png", tight_layout=True)]


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description="Gradient-descent learning curves on MNIST 1 vs 7 (and Fashion-MNIST): theory vs measurement",
    paper="liao",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
