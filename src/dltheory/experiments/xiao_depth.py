"""Xiao et al. (2018), section 5 / figure 1: vanilla tanh CNNs with delta-orthogonal kernels at the
critical point train at any depth.

Trains :class:`~dltheory.nn.models.VanillaCNN` (no normalisation, no skips) at increasing depths with
the same recipe (:mod:`dltheory.nn.recipe`: Adam, stack learning rate ``lr / depth``, warm-up) and records
training and test curves. The paper trains 1,250 to 10,000 layers on MNIST and CIFAR-10 to accuracies
close to shallow vanilla networks; the quick profile checks the same statement at CPU scale (tens to a
few hundred layers, a few hundred steps), the paper profile uses the paper's depths.

Claims: every depth trains (training loss well below the chance level ln 10), and the deepest network's
test accuracy is within a tolerance of the shallowest one's (depth does not hurt).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import torch

from dltheory.core.figures import new_figure, save_figure
from dltheory.experiments._xiao_common import CHANCE_LOSS, curves, final_metrics, image_data, train_network
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.nn.models import DEFAULT_SIGMA_B2, VanillaCNN, critical_point
from dltheory.nn.recipe import TrainingRecipe
from dltheory.runner.runs import RunDir

NAME = "xiao-depth"


@dataclass(frozen=True)
class Config:
    dataset: str = "mnist"
    depths: tuple[int, ...] = (8, 64, 200)
    channels: int = 16
    sigma_b2: float = DEFAULT_SIGMA_B2
    q_star: float | None = None  # if set: the critical point with this q* (its sigma_b2 replaces sigma_b2)
    init: str = "delta_orthogonal"
    stem_init: str = "gaussian"
    optimizer: str = "adam"
    lr: float = 1e-2
    warmup_steps: int = 50
    steps: int = 300
    batch_size: int = 64
    train_size: int = 20000
    test_size: int = 2000
    loss_fraction: float = 0.7  # "trains": final training loss < loss_fraction * ln(10)
    # deepest vs shallowest test accuracy; None: reported, not judged (the paper's statement is about trained
    # networks, a CPU budget of a few hundred steps leaves deep ones behind)
    accuracy_tolerance: float | None = None
    seed: int = 0


PROFILES = {
    "tiny": Config(
        depths=(2, 6),
        channels=4,
        steps=12,
        batch_size=16,
        train_size=256,
        test_size=128,
        warmup_steps=4,
        loss_fraction=1.2,
    ),
    "quick": Config(),
    "paper": Config(
        depths=(1250, 2500, 5000, 10000),
        channels=64,
        steps=5000,
        batch_size=100,
        train_size=60000,
        test_size=10000,
        loss_fraction=0.2,
        q_star=0.02,
        accuracy_tolerance=0.03,
    ),
}


def run(config: Config, run_dir: RunDir) -> Result:
    data = image_data(config.dataset, config.train_size, config.test_size, device=run_dir.device)
    sigma_b2 = config.sigma_b2 if config.q_star is None else critical_point("tanh", q_star=config.q_star)[1]
    recipe = TrainingRecipe(optimizer=config.optimizer, lr=config.lr, warmup_steps=config.warmup_steps)
    runs: dict[str, Any] = {}
    statuses = []
    for depth in config.depths:
        generator = torch.Generator().manual_seed(config.seed)
        model = VanillaCNN(
            depth,
            config.channels,
            in_channels=data.in_channels,
            init=config.init,
            sigma_b2=sigma_b2,
            stem_init=config.stem_init,
            generator=generator,
        )
        outcome = train_network(
            model,
            recipe,
            data,
            steps=config.steps,
            batch_size=config.batch_size,
            seed=config.seed,
            run_dir=run_dir,
            name=f"depth-{depth}",
        )
        runs[str(depth)] = {**curves(outcome), **final_metrics(outcome), "sigma_w2": model.sigma_w2}
        statuses.append(outcome.status)

    threshold = config.loss_fraction * CHANCE_LOSS
    claims = [
        Claim(
            f"depth {depth} trains: final training loss below {config.loss_fraction} x chance",
            f"< {threshold:.3f} nats",
            runs[str(depth)]["final_train_loss"],
            None,
            bool(runs[str(depth)]["final_train_loss"] < threshold),
            f"test accuracy {runs[str(depth)]['final_test_accuracy']:.3f}; "
            f"status {runs[str(depth)]['status']}",
        )
        for depth in config.depths
    ]
    shallow, deep = runs[str(min(config.depths))], runs[str(max(config.depths))]
    gap = shallow["final_test_accuracy"] - deep["final_test_accuracy"]
    claims.append(
        Claim(
            f"depth {max(config.depths)} reaches the test accuracy of depth {min(config.depths)}",
            "similar accuracy once trained"
            if config.accuracy_tolerance is None
            else f"accuracy drop <= {config.accuracy_tolerance}",
            gap,
            config.accuracy_tolerance,
            None if config.accuracy_tolerance is None else bool(gap <= config.accuracy_tolerance),
            f"{deep['final_test_accuracy']:.3f} vs {shallow['final_test_accuracy']:.3f} "
            f"after {config.steps} steps"
            + (
                " (reported, not judged: this budget is far from convergence)"
                if config.accuracy_tolerance is None
                else ""
            ),
        )
    )
    notes = [
        f"{config.dataset}: first {config.train_size} training and {config.test_size} test images; "
        f"{config.channels} channels, sigma_b2 = {sigma_b2:g}, critical sigma_w2 = "
        f"{shallow['sigma_w2']:.6g}; recipe {recipe}",
        "Budgets are CPU-sized: accuracies are far from converged; the claim is trainability at depth.",
    ]
    status = "diverged" if "diverged" in statuses else "completed"
    return Result(
        NAME,
        claims=claims,
        data={"depths": list(config.depths), "runs": runs, "chance_loss": CHANCE_LOSS},
        notes=notes,
        status=status,
    )


def plot(result: Result, figures_dir: Path) -> list[Path]:
    data = result.data
    fig, (ax_loss, ax_acc) = new_figure(1, 2, figsize=(10, 3.8))
    cmap = matplotlib.colormaps["viridis"]
    depths = data["depths"]
    for i, depth in enumerate(depths):
        run = data["runs"][str(depth)]
        color = cmap(i / max(len(depths) - 1, 1))
        ax_loss.plot(
            run["step"], run["loss"], color=color, lw=1, alpha=0.8, label=f"depth {depth} (mini-batch)"
        )
        ax_loss.plot(run["eval_step"], run["train_loss"], "o", color=color, ms=4)
        ax_acc.plot(
            run["eval_step"],
            [100 * a for a in run["test_accuracy"]],
            "-o",
            color=color,
            ms=4,
            label=f"depth {depth} test",
        )
        ax_acc.plot(run["eval_step"], [100 * a for a in run["train_accuracy"]], ":", color=color)
    ax_loss.axhline(data["chance_loss"], color="grey", ls="--", label="chance (ln 10)")
    ax_loss.set_xlabel("training step")
    ax_loss.set_ylabel("cross-entropy (nats)")
    ax_loss.set_title("training loss (dots: training subset)")
    ax_loss.legend(fontsize=7)
    ax_acc.axhline(10, color="grey", ls="--", label="chance (10%)")
    ax_acc.set_xlabel("training step")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_title("test (solid) and training (dotted) accuracy")
    ax_acc.legend(fontsize=7)
    fig.suptitle("Vanilla tanh CNN, delta-orthogonal at criticality: training at increasing depth")
    fig.tight_layout()
    path = figures_dir / "xiao_depth_curves.png"
    save_figure(fig, path)
    return [path]


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description=(
        "Delta-orthogonal critical tanh CNNs train at increasing depths (up to 10,000 layers in 'paper')"
    ),
    paper="xiao",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
