"""Xiao et al. (2018), section 5 / figure 1: vanilla tanh CNNs with delta-orthogonal kernels at the
critical point train at any depth.

Trains :class:`~dltheory.nn.models.VanillaCNN` (no normalisation, no skips) at increasing depths with
the same recipe (:mod:`dltheory.nn.recipe`: Adam, stack learning rate ``lr / depth``, warm-up) and records
training and test curves. The paper trains 1,250 to 10,000 layers on MNIST and CIFAR-10 to accuracies
close to shallow vanilla networks; the quick profile checks the same statement at CPU scale (tens to a
few hundred layers, a few hundred steps), the paper profile uses the paper's depths.

At paper depths the fixed point q* comes from the theory (``q_star_target``: the largest q* whose
mean-field correlation map keeps that fraction of two inputs' decorrelation over the deepest depth,
:func:`dltheory.signalprop.q_star_for_depth`), the read-out learns at ``lr / sqrt(q*)`` (its inputs have
size sqrt(q*), see :mod:`dltheory.nn.recipe`), and a baseline initialisation (Gaussian kernels at the same
critical point) is trained at the deepest depth with the same recipe and budget. ``budget_s`` bounds the
training time by wall clock (the deepest run gets ``budget_s``, a run of depth d gets ``budget_s * d /
deepest``); the final evaluation then uses all ``test_size`` test images (``monitor_size`` during
training). ``partial.json`` in the run directory holds every finished run as soon as it exists. On a GPU
the steps replay from a CUDA graph (:mod:`dltheory.runner.graphed`); ``precision="tf32"`` opts in to
TensorFloat-32 products.

Claims: every depth trains (training loss well below the chance level ln 10), the deepest network's
test accuracy is within a tolerance of the shallowest one's (depth does not hurt), and with a baseline the
delta-orthogonal network beats it at the deepest depth.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch

from dltheory.core.figures import new_figure, save_figure
from dltheory.core.io import atomic_write_json, read_json
from dltheory.experiments._xiao_common import (
    CHANCE_LOSS,
    curves,
    evaluator,
    final_metrics,
    gradient_spread,
    image_data,
    stack_gradient_norms,
    train_network,
)
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.nn.models import DEFAULT_SIGMA_B2, VanillaCNN, critical_point
from dltheory.nn.recipe import TrainingRecipe
from dltheory.runner.devices import float32_precision
from dltheory.runner.runs import RunDir
from dltheory.signalprop import q_star_for_depth

NAME = "xiao-depth"


@dataclass(frozen=True)
class Config:
    dataset: str = "mnist"
    depths: tuple[int, ...] = (8, 64, 200)
    channels: int = 16
    sigma_b2: float = DEFAULT_SIGMA_B2
    q_star: float | None = None  # if set: the critical point with this q* (its sigma_b2 replaces sigma_b2)
    q_star_target: float | None = None  # if set: q* from theory for the deepest depth (replaces q_star)
    init: str = "delta_orthogonal"
    baseline_init: str | None = None  # trained at the deepest depth with the same recipe and budget
    stem_init: str = "gaussian"
    optimizer: str = "adam"
    lr: float = 1e-2
    scale_head_lr: bool = False  # read-out rate lr / sqrt(q*)
    warmup_steps: int = 50
    steps: int = 300
    budget_s: float | None = None  # wall-clock training budget of the deepest run (seconds)
    batch_size: int = 64
    train_size: int = 20000
    test_size: int = 2000
    monitor_size: int | None = None  # test images evaluated during training (None: all)
    evaluations: int = 5
    precision: str = "fp32"  # "tf32": TensorFloat-32 products on CUDA (opt-in)
    checkpoints: bool = True  # False: no checkpoints (a killed run restarts; for throw-away GPU machines)
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
        q_star_target=0.99,
        baseline_init="gaussian",
        scale_head_lr=True,
        warmup_steps=10,
        steps=5000,
        batch_size=128,
        train_size=60000,
        test_size=10000,
        monitor_size=1000,
        loss_fraction=0.2,
        accuracy_tolerance=0.03,
    ),
}


def _critical(config: Config) -> tuple[float | None, float]:
    """The fixed point q* used (None: the critical point at ``config.sigma_b2``) and sigma_b2."""
    q_star = config.q_star
    if config.q_star_target is not None:
        q_star = q_star_for_depth("tanh", max(config.depths), target=config.q_star_target)
    if q_star is None:
        return None, config.sigma_b2
    return q_star, critical_point("tanh", q_star=q_star)[1]


def _runs(config: Config) -> list[tuple[str, int, str]]:
    """(label, depth, init) of every training run, deepest baseline last."""
    runs = [(str(depth), depth, config.init) for depth in config.depths]
    if config.baseline_init is not None:
        deepest = max(config.depths)
        runs.append((f"{deepest}-{config.baseline_init}", deepest, config.baseline_init))
    return runs


def run(config: Config, run_dir: RunDir) -> Result:
    data = image_data(config.dataset, config.train_size, config.test_size, device=run_dir.device)
    q_star, sigma_b2 = _critical(config)
    head_lr = config.lr / math.sqrt(q_star) if config.scale_head_lr and q_star is not None else None
    recipe = TrainingRecipe(
        optimizer=config.optimizer, lr=config.lr, head_lr=head_lr, warmup_steps=config.warmup_steps
    )
    probe = data.x_train[: config.batch_size], data.y_train[: config.batch_size]
    final_test = evaluator(data, train_eval_size=0)
    deepest = max(config.depths)
    partial = run_dir.path / "partial.json"
    earlier = read_json(partial).get("runs", {}) if partial.exists() else {}
    runs: dict[str, Any] = {}
    statuses = []
    with float32_precision(config.precision):
        for label, depth, init in _runs(config):
            model = VanillaCNN(
                depth,
                config.channels,
                in_channels=data.in_channels,
                init=init,
                sigma_b2=sigma_b2,
                stem_init=config.stem_init,
                generator=torch.Generator().manual_seed(config.seed),
            ).to(run_dir.device)
            norms_init = stack_gradient_norms(model, *probe) if depth else None
            started = time.perf_counter()
            outcome = train_network(
                model,
                recipe,
                data,
                steps=config.steps,
                batch_size=config.batch_size,
                seed=config.seed,
                run_dir=run_dir,
                name=f"depth-{label}",
                evaluations=config.evaluations,
                monitor_size=config.monitor_size,
                budget_s=None if config.budget_s is None else config.budget_s * depth / deepest,
                checkpoints=config.checkpoints,
            )
            trained = outcome.step - outcome.resumed_from
            wall = time.perf_counter() - started
            runs[label] = {
                **curves(outcome),
                **final_metrics(outcome),
                "depth": depth,
                "init": init,
                "sigma_w2": model.sigma_w2,
                "step_mode": outcome.step_mode,
                "stopped_by_budget": outcome.stopped_by_budget,
                # a resumed, already finished run keeps the timing of the session that trained it
                "seconds_per_step": wall / trained
                if trained
                else earlier.get(label, {}).get("seconds_per_step"),
            }
            if norms_init is not None:
                norms_final = stack_gradient_norms(model, *probe)
                layers = np.unique(np.geomspace(1, depth, 64).astype(int)) - 1  # a log-spaced sample
                runs[label].update(
                    gradient_layers=(layers + 1).tolist(),
                    gradient_norms_init=norms_init[layers].tolist(),
                    gradient_norms_final=norms_final[layers].tolist(),
                    gradient_spread_init=gradient_spread(norms_init),
                    gradient_spread_final=gradient_spread(norms_final),
                )
            if outcome.status == "completed" and config.monitor_size is not None:
                model.eval()
                with torch.no_grad():
                    full = final_test(model)
                runs[label].update(
                    final_test_accuracy=full["test_accuracy"], final_test_loss=full["test_loss"]
                )
            statuses.append(outcome.status)
            atomic_write_json(partial, {"q_star": q_star, "runs": runs})

    threshold = config.loss_fraction * CHANCE_LOSS
    claims = [
        Claim(
            f"depth {depth} trains: final training loss below {config.loss_fraction} x chance",
            f"< {threshold:.3f} nats",
            runs[str(depth)]["final_train_loss"],
            None,
            bool(runs[str(depth)]["final_train_loss"] < threshold),
            f"test accuracy {runs[str(depth)]['final_test_accuracy']:.3f} on {config.test_size} test "
            f"images after {runs[str(depth)]['steps_done']} steps; status {runs[str(depth)]['status']}",
        )
        for depth in config.depths
    ]
    shallow, deep = runs[str(min(config.depths))], runs[str(deepest)]
    gap = shallow["final_test_accuracy"] - deep["final_test_accuracy"]
    claims.append(
        Claim(
            f"depth {deepest} reaches the test accuracy of depth {min(config.depths)}",
            "similar accuracy once trained"
            if config.accuracy_tolerance is None
            else f"accuracy drop <= {config.accuracy_tolerance}",
            gap,
            config.accuracy_tolerance,
            None if config.accuracy_tolerance is None else bool(gap <= config.accuracy_tolerance),
            f"{deep['final_test_accuracy']:.3f} vs {shallow['final_test_accuracy']:.3f} "
            f"after {deep['steps_done']} and {shallow['steps_done']} steps"
            + (
                " (reported, not judged: this budget is far from convergence)"
                if config.accuracy_tolerance is None
                else ""
            ),
        )
    )
    if config.baseline_init is not None:
        base = runs[f"{deepest}-{config.baseline_init}"]
        claims.append(
            Claim(
                f"at depth {deepest}, {config.init} beats {config.baseline_init} kernels (same critical "
                "point, recipe and budget)",
                "higher test accuracy by > 5 points",
                [deep["final_test_accuracy"], base["final_test_accuracy"]],
                0.05,
                bool(deep["final_test_accuracy"] > base["final_test_accuracy"] + 0.05),
                f"{config.baseline_init}: final training loss {base['final_train_loss']:.3f}, "
                f"{base['steps_done']} steps",
            )
        )
    point = f"q* = {q_star:.4g}" if q_star is not None else f"sigma_b2 = {sigma_b2:g}"
    notes = [
        f"{config.dataset}: first {config.train_size} training and {config.test_size} test images; "
        f"{config.channels} channels, critical point {point} (sigma_w2 = {shallow['sigma_w2']:.6g}); "
        f"recipe {recipe}; precision {config.precision}",
    ]
    if config.q_star_target is not None:
        notes.append(
            f"q* from theory: the largest q* whose correlation map keeps {config.q_star_target:.0%} of two "
            f"inputs' decorrelation over {deepest} layers"
        )
    if config.budget_s is not None:
        notes.append(f"wall-clock budget {config.budget_s:g} s for the deepest run (depth-proportional)")
    else:
        notes.append("Budgets are fixed step counts; accuracies may be far from converged.")
    status = "diverged" if "diverged" in statuses else "completed"
    return Result(
        NAME,
        claims=claims,
        data={
            "depths": list(config.depths),
            "runs": runs,
            "chance_loss": CHANCE_LOSS,
            "q_star": q_star,
            "sigma_b2": sigma_b2,
        },
        notes=notes,
        status=status,
    )


def plot(result: Result, figures_dir: Path) -> list[Path]:
    data = result.data
    fig, (ax_loss, ax_acc, ax_grad) = new_figure(1, 3, figsize=(15, 3.9))
    cmap = matplotlib.colormaps["viridis"]
    depths = data["depths"]
    for label, run in data["runs"].items():
        depth = run["depth"] if "depth" in run else int(label)  # results from before baselines existed
        baseline = not label.isdigit()
        i = depths.index(depth)
        color = "C3" if baseline else cmap(i / max(len(depths) - 1, 1))
        if baseline:
            depth = f"{depth} {run['init']}"
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
        if run.get("gradient_layers"):
            for key, style in (("gradient_norms_init", "--"), ("gradient_norms_final", "-")):
                norms = np.asarray(run[key], dtype=float)
                ax_grad.plot(run["gradient_layers"], np.where(norms > 0, norms, np.nan), style, color=color)
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
    ax_grad.set_xscale("log")
    ax_grad.set_yscale("log")
    ax_grad.set_xlabel("layer l of the stack")
    ax_grad.set_ylabel("||dL/dW_l|| (one batch)")
    ax_grad.set_title("gradient norm across depth (dashed: init, solid: end;\nmissing: underflow to 0)")
    main = next((r["init"] for label, r in data["runs"].items() if label.isdigit() and "init" in r), None)
    kernels = f" ({main.replace('_', '-')} kernels unless labelled)" if main else ""
    fig.suptitle(f"Vanilla tanh CNN at criticality{kernels}: training at increasing depth")
    return [save_figure(fig, figures_dir / "xiao_depth_curves.png", tight_layout=True)]


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
