"""Xiao et al. (2018), sections 3-5: at a fixed large depth, the initialisation decides trainability.

Four deep vanilla tanh CNNs of the same depth, trained with the same recipe and the same stem:

- delta-orthogonal kernels at the critical point (dynamical isometry, every spatial Fourier mode
  propagates: lambda_m = 1 for all m);
- block-orthogonal kernels with spatial spread at the critical point (an isometry too, but the
  non-uniform spatial profile damps the non-zero Fourier modes of the mean-field covariance);
- Gaussian kernels at the critical point (the mean squared singular value of the input-output Jacobian
  is 1, but its variance grows like depth; the non-zero spatial modes die within a few layers);
- delta-orthogonal kernels off the critical point (``off_critical_sigma_w2``; the correlation depth
  scale xi_c from :func:`dltheory.signalprop.depth_scales` is finite and 6 xi_c < depth).

Claims: the critical delta-orthogonal network trains (training loss well below chance) and reaches a
higher test accuracy than each of the three others after the same budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dltheory.core.figures import new_figure, save_figure
from dltheory.experiments._xiao_common import CHANCE_LOSS, curves, final_metrics, image_data, train_network
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.nn.models import DEFAULT_SIGMA_B2, VanillaCNN, critical_point
from dltheory.nn.recipe import TrainingRecipe
from dltheory.runner.runs import RunDir
from dltheory.signalprop import depth_scales

NAME = "xiao-init"


@dataclass(frozen=True)
class Config:
    dataset: str = "mnist"
    depth: int = 100
    channels: int = 16
    sigma_b2: float = DEFAULT_SIGMA_B2
    q_star: float | None = None  # if set: the critical point with this q* (its sigma_b2 replaces sigma_b2)
    off_critical_sigma_w2: float = 3.0
    stem_init: str = "gaussian"
    optimizer: str = "adam"
    lr: float = 1e-2
    warmup_steps: int = 50
    steps: int = 200
    batch_size: int = 64
    train_size: int = 20000
    test_size: int = 2000
    loss_fraction: float = 0.8  # "trains": final training loss < loss_fraction * ln(10)
    seed: int = 0


PROFILES = {
    "tiny": Config(
        depth=6,
        channels=4,
        steps=10,
        batch_size=16,
        train_size=256,
        test_size=128,
        warmup_steps=3,
        loss_fraction=1.2,
        q_star=0.1,
    ),
    "quick": Config(),
    "paper": Config(
        depth=4000,
        channels=64,
        steps=5000,
        batch_size=100,
        train_size=60000,
        test_size=10000,
        loss_fraction=0.2,
        q_star=0.02,
    ),
}


def variants(config: Config) -> dict[str, dict[str, Any]]:
    """Label -> VanillaCNN keyword arguments of the four networks."""
    return {
        "delta-orthogonal, critical": {"init": "delta_orthogonal"},
        "block-orthogonal, critical": {"init": "orthogonal"},
        "Gaussian, critical": {"init": "gaussian"},
        f"delta-orthogonal, sigma_w2 = {config.off_critical_sigma_w2:g}": {
            "init": "delta_orthogonal",
            "sigma_w2": config.off_critical_sigma_w2,
        },
    }


def run(config: Config, run_dir: RunDir) -> Result:
    data = image_data(config.dataset, config.train_size, config.test_size, device=run_dir.device)
    sigma_b2 = config.sigma_b2 if config.q_star is None else critical_point("tanh", q_star=config.q_star)[1]
    recipe = TrainingRecipe(optimizer=config.optimizer, lr=config.lr, warmup_steps=config.warmup_steps)
    runs: dict[str, Any] = {}
    for index, (label, kwargs) in enumerate(variants(config).items()):
        generator = torch.Generator().manual_seed(config.seed)
        model = VanillaCNN(
            config.depth,
            config.channels,
            in_channels=data.in_channels,
            sigma_b2=sigma_b2,
            stem_init=config.stem_init,
            generator=generator,
            **kwargs,
        )
        outcome = train_network(
            model,
            recipe,
            data,
            steps=config.steps,
            batch_size=config.batch_size,
            seed=config.seed,
            run_dir=run_dir,
            name=f"variant-{index}",
        )
        xi_q, xi_c = depth_scales("tanh", model.sigma_w2, model.sigma_b2)
        runs[label] = {
            **curves(outcome),
            **final_metrics(outcome),
            "sigma_w2": model.sigma_w2,
            "six_xi_c": float(6 * xi_c),
        }

    labels = list(runs)
    best = runs[labels[0]]
    threshold = config.loss_fraction * CHANCE_LOSS
    claims = [
        Claim(
            "critical delta-orthogonal trains: final training loss below "
            f"{config.loss_fraction} x chance at depth {config.depth}",
            f"< {threshold:.3f} nats",
            best["final_train_loss"],
            None,
            bool(best["final_train_loss"] < threshold),
            f"test accuracy {best['final_test_accuracy']:.3f}",
        )
    ]
    for label in labels[1:]:
        other = runs[label]
        gap = best["final_test_accuracy"] - other["final_test_accuracy"]
        if other["status"] == "diverged":
            gap = best["final_test_accuracy"] - 0.1
        claims.append(
            Claim(
                f"critical delta-orthogonal beats {label}",
                "test accuracy difference > 0",
                gap,
                None,
                bool(gap > 0),
                f"{other['final_test_accuracy']:.3f} ({other['status']}); 6 xi_c = {other['six_xi_c']:.4g} "
                f"vs depth {config.depth}",
            )
        )
    notes = [
        f"{config.dataset}: first {config.train_size} training / {config.test_size} test images; depth "
        f"{config.depth}, {config.channels} channels, sigma_b2 = {sigma_b2:g}; stem initialised "
        f"{config.stem_init} in all four; recipe {recipe}; one seed ({config.seed}).",
    ]
    status = "completed"
    return Result(
        NAME,
        claims=claims,
        data={"depth": config.depth, "runs": runs, "chance_loss": CHANCE_LOSS},
        notes=notes,
        status=status,
    )


def plot(result: Result, figures_dir: Path) -> list[Path]:
    data = result.data
    fig, (ax_loss, ax_acc) = new_figure(1, 2, figsize=(10.5, 3.9))
    styles = ["-", "--", "-.", ":"]
    colors = ["C0", "C1", "C3", "C2"]
    for (label, run), style, color in zip(data["runs"].items(), styles, colors, strict=False):
        tag = f"{label} ({run['status']})" if run["status"] != "completed" else label
        ax_loss.plot(run["step"], run["loss"], style, color=color, lw=1.2, label=tag)
        ax_acc.plot(
            run["eval_step"],
            [100 * a for a in run["test_accuracy"]],
            style,
            marker="o",
            ms=4,
            color=color,
            label=tag,
        )
    ax_loss.axhline(data["chance_loss"], color="grey", lw=0.8, label="chance (ln 10)")
    ax_loss.set_xlabel("training step")
    ax_loss.set_ylabel("mini-batch cross-entropy (nats)")
    ax_loss.set_title("training loss")
    ax_loss.legend(fontsize=7)
    ax_acc.axhline(10, color="grey", lw=0.8, label="chance (10%)")
    ax_acc.set_xlabel("training step")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.set_title("test accuracy")
    ax_acc.legend(fontsize=7)
    fig.suptitle(f"Initialisation at depth {data['depth']} (vanilla tanh CNN, same recipe and stem)")
    return [save_figure(fig, figures_dir / "xiao_init_curves.png", tight_layout=True)]


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description=(
        "Delta-orthogonal vs block-orthogonal vs Gaussian (critical) vs off-critical at a fixed large depth"
    ),
    paper="xiao",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
