"""Xiao et al. (2018), figure 2 (after Schoenholz et al. 2017, figure 5): trainability over (sigma_w2, depth)
follows the mean-field correlation depth scale.

Every cell of a grid of weight variances sigma_w2 (at fixed sigma_b2) and depths trains a vanilla tanh
CNN for a fixed budget, for Gaussian and for delta-orthogonal kernels; the heat maps show the test
accuracy reached, with the curve ``depth = 6 xi_c(sigma_w2, sigma_b2)`` of
:func:`dltheory.signalprop.trainable_depth` drawn over them. Cells run through
:func:`dltheory.runner.sweep.sweep` (resumable; a local process pool with ``workers > 1``, Ray with
``ray_address``). A cell whose loss becomes non-finite is recorded as diverged and drawn hatched.

Claim: "trains" (test accuracy above ``trained_accuracy``) agrees with "depth <= 6 xi_c" in at least
``min_agreement`` of the cells, for each initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.cm
import matplotlib.colors
import matplotlib.patches
import numpy as np
import torch

from dltheory.core.figures import new_figure, save_figure
from dltheory.experiments._xiao_common import ImageData, final_metrics, image_data, train_network
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.nn.models import VanillaCNN
from dltheory.nn.recipe import TrainingRecipe
from dltheory.runner.runs import RunDir
from dltheory.runner.sweep import grid_product, sweep
from dltheory.signalprop import critical_sigma_w2, trainable_depth

NAME = "xiao-trainability"
INITS = ("gaussian", "delta_orthogonal")


@dataclass(frozen=True)
class Config:
    dataset: str = "mnist"
    sigma_w2s: tuple[float, ...] = (0.5, 0.8, 1.2, 1.76, 2.5, 4.0)
    depths: tuple[int, ...] = (3, 10, 30, 90)
    sigma_b2: float = 0.05
    channels: int = 8
    stem_init: str = "gaussian"
    optimizer: str = "adam"
    lr: float = 1e-2
    warmup_steps: int = 20
    steps: int = 150
    batch_size: int = 64
    train_size: int = 10000
    test_size: int = 1000
    trained_accuracy: float = 0.2  # a cell "trains" above this test accuracy (chance: 0.1)
    min_agreement: float = 0.75
    workers: int = 1
    ray_address: str | None = None
    seed: int = 0


PROFILES = {
    "tiny": Config(
        sigma_w2s=(0.5, 1.76),
        depths=(2, 6),
        channels=4,
        steps=6,
        batch_size=16,
        train_size=256,
        test_size=128,
        warmup_steps=2,
        min_agreement=0.0,
    ),
    "quick": Config(),
    "paper": Config(
        sigma_w2s=(0.5, 0.8, 1.0, 1.2, 1.5, 1.76, 2.0, 2.5, 3.0, 3.5, 4.0),
        depths=(10, 30, 100, 300, 1000, 3000, 10000),
        channels=64,
        steps=2000,
        batch_size=100,
        train_size=60000,
        test_size=10000,
        trained_accuracy=0.5,
        min_agreement=0.8,
    ),
}


@lru_cache(maxsize=2)
def _data(dataset: str, train_size: int, test_size: int) -> ImageData:
    return image_data(dataset, train_size, test_size)


def train_cell(
    *,
    init: str,
    sigma_w2: float,
    depth: int,
    sigma_b2: float,
    dataset: str,
    channels: int,
    stem_init: str,
    optimizer: str,
    lr: float,
    warmup_steps: int,
    steps: int,
    batch_size: int,
    train_size: int,
    test_size: int,
    seed: int,
) -> dict[str, Any]:
    """One cell of the grid: train and return the final metrics (status "diverged" on a non-finite loss)."""
    data = _data(dataset, train_size, test_size)
    recipe = TrainingRecipe(optimizer=optimizer, lr=lr, warmup_steps=warmup_steps)
    model = VanillaCNN(
        depth,
        channels,
        in_channels=data.in_channels,
        init=init,
        sigma_w2=sigma_w2,
        sigma_b2=sigma_b2,
        stem_init=stem_init,
        generator=torch.Generator().manual_seed(seed),
    )
    outcome = train_network(
        model,
        recipe,
        data,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        run_dir=None,
        name="cell",
        evaluations=1,
        train_eval_size=0,
    )
    return final_metrics(outcome)


def run(config: Config, run_dir: RunDir) -> Result:
    shared = {
        "sigma_b2": config.sigma_b2,
        "dataset": config.dataset,
        "channels": config.channels,
        "stem_init": config.stem_init,
        "optimizer": config.optimizer,
        "lr": config.lr,
        "warmup_steps": config.warmup_steps,
        "steps": config.steps,
        "batch_size": config.batch_size,
        "train_size": config.train_size,
        "test_size": config.test_size,
        "seed": config.seed,
    }
    grid = [
        {**cell, **shared}
        for cell in grid_product(init=INITS, sigma_w2=config.sigma_w2s, depth=config.depths)
    ]
    cells = sweep(
        train_cell, grid, out=run_dir.path / "sweep", workers=config.workers, ray_address=config.ray_address
    )

    sw2 = np.asarray(config.sigma_w2s, dtype=float)
    six_xi_c = trainable_depth("tanh", sw2, config.sigma_b2)
    shape = (len(config.depths), len(config.sigma_w2s))
    maps: dict[str, Any] = {}
    claims = []
    for init in INITS:
        accuracy = np.full(shape, np.nan)
        status = np.full(shape, "failed", dtype=object)
        for cell in cells:
            if cell.params["init"] != init:
                continue
            i = config.depths.index(cell.params["depth"])
            j = config.sigma_w2s.index(cell.params["sigma_w2"])
            if cell.status == "ok":
                status[i, j] = cell.result["status"]
                accuracy[i, j] = cell.result["final_test_accuracy"]
        trains = (accuracy > config.trained_accuracy) & (status == "completed")
        predicted = np.asarray(config.depths)[:, None] <= six_xi_c[None, :]
        judged = status != "failed"
        agreement = float(np.mean(trains[judged] == predicted[judged])) if judged.any() else float("nan")
        maps[init] = {
            "test_accuracy": accuracy.tolist(),
            "status": status.tolist(),
            "trains": trains.tolist(),
            "predicted": predicted.tolist(),
        }
        claims.append(
            Claim(
                f"{init}: cells that train are those with depth <= 6 xi_c",
                f"agreement >= {config.min_agreement}",
                agreement,
                None,
                bool(agreement >= config.min_agreement),
                f"{int(judged.sum())} cells; 'trains' = test accuracy > {config.trained_accuracy} after "
                f"{config.steps} steps; {int(np.sum(status == 'diverged'))} diverged, "
                f"{int(np.sum(status == 'failed'))} failed",
            )
        )
    critical = float(critical_sigma_w2("tanh", config.sigma_b2))
    notes = [
        f"sigma_b2 = {config.sigma_b2:g} (critical sigma_w2 = {critical:.4f}); {config.channels} channels; "
        f"{config.steps} steps of {config.optimizer} lr {config.lr} (stack lr / depth); {config.dataset} "
        f"({config.train_size} training / {config.test_size} test images); one seed per cell.",
        "6 xi_c is the Schoenholz et al. (2017) rule of thumb, not a theorem.",
    ]
    fine = np.linspace(min(config.sigma_w2s), max(config.sigma_w2s), 300)
    data = {
        "sigma_w2": list(config.sigma_w2s),
        "depths": list(config.depths),
        "six_xi_c": six_xi_c.tolist(),
        "curve_sigma_w2": fine.tolist(),
        "curve_six_xi_c": np.minimum(trainable_depth("tanh", fine, config.sigma_b2), 1e12).tolist(),
        "sigma_b2": config.sigma_b2,
        "trained_accuracy": config.trained_accuracy,
        "maps": maps,
    }
    return Result(NAME, claims=claims, data=data, notes=notes)


def plot(result: Result, figures_dir: Path) -> list[Path]:
    data = result.data
    sw2, depths = np.asarray(data["sigma_w2"]), np.asarray(data["depths"], dtype=float)
    x_edges = _log_edges(sw2)
    y_edges = _log_edges(depths)
    width = max(11.0, 0.9 * len(sw2) + 3.0)  # room for one label per sigma_w2 column
    fig, axes = new_figure(1, len(INITS), figsize=(width, 4.6), sharey=True)
    for ax, init in zip(axes, INITS, strict=True):
        m = data["maps"][init]
        accuracy = 100 * np.asarray(m["test_accuracy"], dtype=float)
        ax.pcolormesh(x_edges, y_edges, accuracy, cmap="magma", vmin=0, vmax=100, shading="flat")
        status = np.asarray(m["status"], dtype=object)
        for i, j in np.ndindex(accuracy.shape):
            x, y = sw2[j], depths[i]
            if status[i, j] != "completed":
                ax.add_patch(
                    matplotlib.patches.Rectangle(
                        (float(x_edges[j]), float(y_edges[i])),
                        x_edges[j + 1] - x_edges[j],
                        y_edges[i + 1] - y_edges[i],
                        fc="lightgrey",
                        hatch="xx",
                        ec="white",
                        lw=0,
                    )
                )
                ax.text(
                    x,
                    y,
                    {"diverged": "div.", "failed": "fail"}.get(str(status[i, j]), str(status[i, j])),
                    ha="center",
                    va="center",
                    color="black",
                    fontsize=7,
                    bbox={"fc": "white", "ec": "none", "pad": 1},
                )
            elif np.isfinite(accuracy[i, j]):
                shade = "black" if accuracy[i, j] > 60 else "white"
                ax.text(x, y, f"{accuracy[i, j]:.0f}%", ha="center", va="center", color=shade, fontsize=7)
        ax.plot(
            data["curve_sigma_w2"],
            data["curve_six_xi_c"],
            color="cyan",
            lw=2,
            label="depth = 6 xi_c (mean-field)",
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_yticks(depths, [str(int(d)) for d in depths])
        ax.minorticks_off()
        ax.set_xticks(sw2, [f"{v:g}" for v in sw2], rotation=60)
        ax.set_xlim(x_edges[0], x_edges[-1])
        ax.set_ylim(y_edges[0], y_edges[-1])
        ax.set_xlabel("sigma_w^2 (weight variance x fan-in)")
        ax.set_title(f"{init.replace('_', '-')} kernels")
        ax.legend(loc="upper right", fontsize=7)
    axes[0].set_ylabel("depth (layers of the circular stack)")
    fig.colorbar(
        matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 100), cmap="magma"),
        ax=list(axes),
        label="test accuracy (%)",
    )
    fig.suptitle(
        f"Trainability after a fixed budget, sigma_b^2 = {data['sigma_b2']:g} (grey hatched: diverged)"
    )
    path = figures_dir / "xiao_trainability.png"
    save_figure(fig, path, tight=True)
    return [path]


def _log_edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges for centres on a log axis: geometric midpoints, half a step beyond the ends."""
    logs = np.log(np.asarray(centres, dtype=float))
    if len(logs) == 1:
        return np.exp(logs[0] + np.array([-0.5, 0.5]))
    mids = (logs[1:] + logs[:-1]) / 2
    return np.exp(
        np.concatenate([[logs[0] - (logs[1] - logs[0]) / 2], mids, [logs[-1] + (logs[-1] - logs[-2]) / 2]])
    )


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description="Test accuracy over (sigma_w2, depth), Gaussian vs delta-orthogonal, with the 6 xi_c curve",
    paper="xiao",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
