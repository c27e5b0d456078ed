"""What makes deep critical vanilla CNNs learn fast: accuracy after a fixed budget vs the training choices.

A one-factor-at-a-time study around the recipe of :mod:`dltheory.nn.recipe` (Adam, stack learning rate
``lr / depth``, linear warm-up) for a delta-orthogonal tanh CNN at the critical point: width, the fixed
point q* of the critical line (small q* is closer to dynamical isometry but also closer to a linear
network, Pennington et al. 2017), the optimizer and its rates (including the authors' public demo
settings, SGD with momentum 0.9 and lr 1e-3 for every layer), depth-scaled vs uniform stack rate,
warm-up, batch size (fixed number of steps) and the initialisation of the three stem convolutions. The
network stays vanilla in every variant: no normalisation, no skip connections.

Claims (measured, mean over ``repeats`` seeds): the recipe beats (a) a uniform learning rate for all
layers, (b) no warm-up, (c) the demo's SGD settings, after the same number of steps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dltheory.core.figures import new_figure, save_figure
from dltheory.experiments._xiao_common import curves, final_metrics, image_data, train_network
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.nn.models import VanillaCNN
from dltheory.nn.recipe import TrainingRecipe
from dltheory.runner.runs import RunDir

NAME = "xiao-recipe"


@dataclass(frozen=True)
class Setting:
    """One trained network: model and recipe choices."""

    channels: int
    q_star: float
    optimizer: str
    lr: float
    uniform_rate: bool  # True: the stack uses lr too; False: lr / depth
    warmup_steps: int
    batch_size: int
    stem_init: str


@dataclass(frozen=True)
class Config:
    dataset: str = "mnist"
    depth: int = 24
    channels: int = 16
    q_star: float = 0.1
    optimizer: str = "adam"
    lr: float = 1e-2
    warmup_steps: int = 50
    batch_size: int = 64
    stem_init: str = "gaussian"
    widths: tuple[int, ...] = (8, 32)
    q_stars: tuple[float, ...] = (0.005, 0.026, 0.5)
    batch_sizes: tuple[int, ...] = (128,)
    steps: int = 150
    train_size: int = 20000
    test_size: int = 1000
    repeats: int = 2  # seeds seed, seed + 1, ...
    seed: int = 0


PROFILES = {
    "tiny": Config(
        depth=4,
        channels=4,
        widths=(2,),
        q_stars=(0.5,),
        batch_sizes=(8,),
        steps=6,
        batch_size=16,
        warmup_steps=2,
        train_size=256,
        test_size=64,
        repeats=1,
    ),
    "quick": Config(),
    "paper": Config(
        depth=1000,
        channels=64,
        widths=(16, 32, 128),
        steps=2000,
        batch_size=100,
        batch_sizes=(50, 200),
        train_size=60000,
        test_size=10000,
    ),
}


def settings(config: Config) -> dict[str, tuple[str, Setting]]:
    """Label -> (factor, setting): the baseline and its one-factor variations."""
    base = Setting(
        config.channels,
        config.q_star,
        config.optimizer,
        config.lr,
        False,
        config.warmup_steps,
        config.batch_size,
        config.stem_init,
    )
    out: dict[str, tuple[str, Setting]] = {"recipe (baseline)": ("baseline", base)}
    for c in config.widths:
        out[f"width {c}"] = ("width", replace(base, channels=c))
    for q in config.q_stars:
        out[f"q* = {q:g}"] = ("q*", replace(base, q_star=q))
    out["Adam, uniform rate"] = ("stack rate", replace(base, uniform_rate=True))
    out["Adam lr 1e-3, uniform rate"] = ("stack rate", replace(base, lr=1e-3, uniform_rate=True))
    out["SGD 0.9, lr 1e-3, uniform (demo)"] = (
        "optimizer",
        replace(base, optimizer="sgd", lr=1e-3, uniform_rate=True),
    )
    out["SGD 0.9, lr 1e-1, stack lr/depth"] = ("optimizer", replace(base, optimizer="sgd", lr=1e-1))
    out["no warm-up"] = ("warm-up", replace(base, warmup_steps=0))
    for b in config.batch_sizes:
        out[f"batch {b}"] = ("batch size", replace(base, batch_size=b))
    out["delta-orthogonal stem"] = ("stem", replace(base, stem_init="delta_orthogonal"))
    return out


def run(config: Config, run_dir: RunDir) -> Result:
    data = image_data(config.dataset, config.train_size, config.test_size, device=run_dir.device)
    seeds = list(range(config.seed, config.seed + config.repeats))
    runs: dict[str, Any] = {}
    for index, (label, (factor, s)) in enumerate(settings(config).items()):
        per_seed: dict[str, Any] = {}
        for seed in seeds:
            model = VanillaCNN(
                config.depth,
                s.channels,
                in_channels=data.in_channels,
                q_star=s.q_star,
                stem_init=s.stem_init,
                generator=torch.Generator().manual_seed(seed),
            )
            recipe = TrainingRecipe(
                optimizer=s.optimizer,
                lr=s.lr,
                stack_lr=s.lr if s.uniform_rate else None,
                warmup_steps=s.warmup_steps,
            )
            outcome = train_network(
                model,
                recipe,
                data,
                steps=config.steps,
                batch_size=s.batch_size,
                seed=seed,
                run_dir=run_dir,
                name=f"setting-{index}-seed-{seed}",
                evaluations=1,
                train_eval_size=0,
            )
            per_seed[str(seed)] = {**curves(outcome), **final_metrics(outcome)}
        # a diverged run counts as chance (10%) in the mean
        accuracies = [
            0.1 if r["status"] == "diverged" else float(r["final_test_accuracy"]) for r in per_seed.values()
        ]
        runs[label] = {
            "factor": factor,
            "setting": s.__dict__,
            "sigma_w2": model.sigma_w2,
            "sigma_b2": model.sigma_b2,
            "seeds": per_seed,
            "accuracies": accuracies,
            "mean_accuracy": float(np.mean(accuracies)),
            "diverged": sum(r["status"] == "diverged" for r in per_seed.values()),
        }

    base = runs["recipe (baseline)"]["mean_accuracy"]
    claims = []
    for label, what in (
        ("Adam, uniform rate", "a uniform learning rate for all layers"),
        ("no warm-up", "no warm-up"),
        ("SGD 0.9, lr 1e-3, uniform (demo)", "the authors' demo settings (SGD 0.9, lr 1e-3)"),
    ):
        other = runs[label]["mean_accuracy"]
        claims.append(
            Claim(
                f"the recipe beats {what} after {config.steps} steps (mean of {len(seeds)} seeds)",
                "test accuracy gain > 0",
                base - other,
                None,
                bool(base > other),
                f"{base:.3f} vs {other:.3f}; per seed {runs[label]['accuracies']}",
            )
        )
    notes = [
        f"depth {config.depth}, {config.dataset} ({config.train_size} training / {config.test_size} test "
        f"images), {config.steps} steps per setting, seeds {seeds}; baseline: {config.channels} channels, "
        f"q* = {config.q_star:g}, {config.optimizer} lr {config.lr:g} (stack lr / depth), warm-up "
        f"{config.warmup_steps}, batch {config.batch_size}, {config.stem_init} stem.",
        "Seed-to-seed spread at this budget is several points (error bars: min-max over seeds).",
    ]
    return Result(
        NAME,
        claims=claims,
        data={"depth": config.depth, "steps": config.steps, "seeds": seeds, "runs": runs},
        notes=notes,
    )


def plot(result: Result, figures_dir: Path) -> list[Path]:
    data = result.data
    labels = list(data["runs"])
    factors = [data["runs"][label]["factor"] for label in labels]
    order = sorted(range(len(labels)), key=lambda i: (factors[i] != "baseline", factors[i]))
    palette = {f: f"C{i}" for i, f in enumerate(dict.fromkeys(factors[i] for i in order))}
    fig, ax = new_figure(figsize=(9.5, 0.34 * len(labels) + 1.6))
    y = np.arange(len(order))[::-1]
    for yi, i in zip(y, order, strict=True):
        run = data["runs"][labels[i]]
        values = 100 * np.asarray(run["accuracies"], dtype=float)
        mean = float(values.mean())
        ax.barh(
            yi,
            mean,
            color=palette[factors[i]],
            label=factors[i],
            xerr=[[mean - values.min()], [values.max() - mean]],
            error_kw={"lw": 1, "capsize": 2},
        )
        ax.plot(values, np.full(values.shape, yi), "k.", ms=3)
        tag = f"{mean:.1f}%" + (f" ({run['diverged']} diverged)" if run["diverged"] else "")
        ax.text(values.max() + 1.0, yi, tag, va="center", fontsize=8)
    base = 100 * data["runs"]["recipe (baseline)"]["mean_accuracy"]
    ax.axvline(base, color="black", ls="--", lw=1, label="baseline mean accuracy")
    ax.axvline(10, color="grey", ls=":", lw=1, label="chance (10%)")
    ax.set_yticks(y, [labels[i] for i in order], fontsize=8)
    ax.set_xlabel(f"test accuracy after {data['steps']} steps (%), mean over seeds {data['seeds']} (dots)")
    ax.set_xlim(0, 105)
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    ax.legend(
        unique.values(),
        unique.keys(),
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        title="factor varied",
        title_fontsize=7,
    )
    ax.set_title(f"Training recipe study: delta-orthogonal critical tanh CNN, depth {data['depth']}")
    return [save_figure(fig, figures_dir / "xiao_recipe.png", tight=True, tight_layout=True)]


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description=(
        "Accuracy after a fixed budget vs width, q*, optimizer/lr, stack-rate scaling, warm-up, batch size"
    ),
    paper="xiao",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
