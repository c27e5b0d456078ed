"""MNIST convnet with overparameterized dense layers (Arora, Cohen & Hazan 2018, experiments).

The classic TensorFlow MNIST tutorial network (tensorflow/models ``tutorials/image/mnist/
convolutional.py``): two 5x5 convolutions (32 and 64 channels, SAME padding, ReLU, 2x2 max-pool), dense
3136 -> 512 (ReLU, dropout 0.5), dense 512 -> 10; truncated-normal weights (std 0.1), pixels scaled to
[-0.5, 0.5], cross-entropy plus 5e-4 x the l2 penalty (sum of squares / 2) of the dense parameters,
momentum 0.9, learning rate 0.01 decayed by 0.95 per epoch, batch 64, 10 epochs over 55,000 images.

The paper replaces each dense matrix by a product of two (about +15% parameters) and reports much faster
training. Here :func:`dltheory.nn.overparameterize` does the replacement (hidden widths 512 and 10, factors
exactly balanced and multiplying to the original matrices, so both networks start as the same function);
both are trained from the same initial function on the same batches and dropout masks. The penalty acts
on the model's parameters, i.e. on each factor in the overparameterized network (the paper's choice is
not stated in the material we have: unverified).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dltheory.core.figures import new_figure, save_figure
from dltheory.data import load
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.nn import DeepLinear, overparameterize
from dltheory.runner.runs import RunDir
from dltheory.runner.train import EpochSampler, train

NAME = "arora-mnist"


@dataclass(frozen=True)
class Config:
    train_size: int = 55000
    eval_size: int = 2000
    steps: int = 8594  # 10 epochs of 55,000 images at batch 64
    batch_size: int = 64
    lr: float = 0.01
    lr_decay: float = 0.95
    momentum: float = 0.9
    l2: float = 5e-4
    dropout: float = 0.5
    depth: int = 2
    eval_every: int = 250
    # extra runs of the original net with the dense layers' lr x m: the product's dense layers move faster at
    # the same lr (the end-to-end preconditioner scales steps by the singular values); a fairer baseline
    baseline_lr_multipliers: tuple[float, ...] = (3.0, 10.0)
    seed: int = 0


PROFILES = {
    "tiny": Config(
        train_size=256, eval_size=64, steps=6, batch_size=16, eval_every=3, baseline_lr_multipliers=(10.0,)
    ),
    "quick": Config(train_size=9600, eval_size=1000, steps=150, eval_every=25),
    "paper": Config(),
}


class TutorialConvNet(nn.Module):
    """The TensorFlow tutorial convnet (``convolutional.py``), torch layout."""

    def __init__(self, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.fc1 = nn.Linear(7 * 7 * 64, 512)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(512, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(torch.relu(self.fc1(self.features(x)))))

    @torch.no_grad()
    def tutorial_init_(self, generator: torch.Generator) -> TutorialConvNet:
        """Truncated normal (std 0.1, cut at 2 std) weights; biases 0 (conv1) and 0.1 (the others)."""
        conv1, conv2 = self.features[0], self.features[3]
        assert isinstance(conv1, nn.Conv2d) and isinstance(conv2, nn.Conv2d)
        layers: list[tuple[nn.Conv2d | nn.Linear, float]] = [
            (conv1, 0.0),
            (conv2, 0.1),
            (self.fc1, 0.1),
            (self.fc2, 0.1),
        ]
        for layer, bias in layers:
            torch.nn.init.trunc_normal_(layer.weight, std=0.1, a=-0.2, b=0.2, generator=generator)
            if layer.bias is not None:
                layer.bias.fill_(bias)
        return self


def _dense_parameters(model: nn.Module) -> list[torch.Tensor]:
    layers = [m for m in model.modules() if isinstance(m, nn.Linear | DeepLinear)]
    return [p for layer in layers for p in layer.parameters()]


def _images(split: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load("mnist", split)
    images = (torch.from_numpy(x[:size]).float() - 127.5) / 255.0
    return images[:, None], torch.from_numpy(y[:size])


def run(config: Config, run_dir: RunDir) -> Result:
    x_train, y_train = _images("train", config.train_size)
    x_train, y_train = x_train.to(run_dir.device), y_train.to(run_dir.device)  # the device trained on
    x_eval, y_eval = x_train[: config.eval_size], y_train[: config.eval_size]
    base = TutorialConvNet(config.dropout).tutorial_init_(torch.Generator().manual_seed(config.seed))
    deep = overparameterize(
        copy.deepcopy(base), config.depth, generator=torch.Generator().manual_seed(config.seed)
    )
    sampler = EpochSampler(config.train_size, config.batch_size, config.seed)
    steps_per_epoch = config.train_size / config.batch_size

    def get_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.from_numpy(sampler.indices(step))
        return x_train[index], y_train[index]

    runs: list[tuple[str, nn.Module, float]] = [
        ("original", base, 1.0),
        (f"dense x{config.depth}", deep, 1.0),
    ]
    runs += [(f"original, dense lr x{m:g}", copy.deepcopy(base), m) for m in config.baseline_lr_multipliers]
    outcomes, counts = {}, {}
    for label, model, multiplier in runs:
        dense = _dense_parameters(model)

        def loss_fn(
            logits: torch.Tensor, target: torch.Tensor, dense: list[torch.Tensor] = dense
        ) -> torch.Tensor:
            penalty = sum(p.square().sum() for p in dense) / 2
            return nn.functional.cross_entropy(logits, target) + config.l2 * penalty

        def evaluate(net: nn.Module, dense: list[torch.Tensor] = dense) -> dict[str, float]:
            logits = torch.cat([net(x_eval[i : i + 500]) for i in range(0, len(x_eval), 500)])
            data_loss = float(nn.functional.cross_entropy(logits, y_eval))
            penalty = float(sum(p.square().sum() for p in dense) / 2)
            return {
                "eval_loss": data_loss + config.l2 * penalty,
                "eval_cross_entropy": data_loss,
                "eval_accuracy": float((logits.argmax(1) == y_eval).float().mean()),
            }

        dense_ids = {id(p) for p in dense}
        groups = [
            {"params": [p for p in model.parameters() if id(p) not in dense_ids], "lr": config.lr},
            {"params": dense, "lr": config.lr * multiplier},
        ]
        optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: config.lr_decay ** math.floor(step / steps_per_epoch)
        )
        outcomes[label] = train(
            model,
            optimizer,
            get_batch,
            loss_fn,
            steps=config.steps,
            run_dir=run_dir,
            evaluate=evaluate,
            eval_every=config.eval_every,
            checkpoint_every=config.eval_every,
            log_every=1,
            scheduler=scheduler,
            seed=config.seed,
            name=label.replace(", ", "-").replace(" ", "-"),
        )
        counts[label] = sum(p.numel() for p in model.parameters())

    labels = list(outcomes)
    curves = {}
    for label in labels:
        history = outcomes[label].history
        evals = [h for h in history if "eval_loss" in h]
        curves[label] = {
            "step": [h["step"] for h in history if "loss" in h],
            "loss": [h["loss"] for h in history if "loss" in h],
            "eval_step": [h["step"] for h in evals],
            "eval_loss": [h["eval_loss"] for h in evals],
            "eval_cross_entropy": [h["eval_cross_entropy"] for h in evals],
            "eval_accuracy": [h["eval_accuracy"] for h in evals],
        }
    original = curves[labels[0]]
    extra = counts[labels[1]] / counts[labels[0]] - 1
    area = {
        label: float(np.mean(c["eval_cross_entropy"])) if c["eval_cross_entropy"] else float("nan")
        for label, c in curves.items()
    }
    final = {
        label: c["eval_cross_entropy"][-1] if c["eval_cross_entropy"] else float("nan")
        for label, c in curves.items()
    }
    claims = [
        Claim(
            "extra parameters of the product-of-two dense layers",
            "about +15% (paper)",
            extra,
            0.02,
            abs(extra - 0.15) <= 0.02,
            f"{counts[labels[0]]:,} -> {counts[labels[1]]:,} parameters",
        ),
        Claim(
            "overparameterized net trains faster (same lr): mean held-in cross-entropy over the evaluations",
            f"< {area[labels[0]]:.4f} (original net)",
            area[labels[1]],
            None,
            area[labels[1]] < area[labels[0]],
            f"average over {len(original['eval_step'])} evaluations on {config.eval_size} training images "
            f"(dropout off) during {config.steps} steps; final: original {final[labels[0]]:.4f}, "
            f"overparameterized {final[labels[1]]:.4f}",
        ),
    ]
    tuned = [label for label in labels[2:] if outcomes[label].status == "completed"]
    if config.baseline_lr_multipliers:
        best = min(tuned, key=lambda label: area[label], default=None)
        claims.append(
            Claim(
                "overparameterized net vs the original with larger dense-layer lr (not in the paper)",
                area[best] if best is not None else "all larger-lr runs diverged",
                area[labels[1]],
                None,
                None,
                "mean held-in cross-entropy; runs of the original with larger dense-layer lr: "
                + ", ".join(f"{label}: {area[label]:.4f} ({outcomes[label].status})" for label in labels[2:]),
            )
        )
    status = "completed" if all(o.status == "completed" for o in outcomes.values()) else "diverged"
    return Result(
        NAME,
        claims=claims,
        status=status,
        data={
            "labels": labels,
            "curves": curves,
            "parameters": counts,
            "steps": config.steps,
            "train_size": config.train_size,
        },
        notes=[
            f"{config.steps} steps of batch {config.batch_size} on the first {config.train_size} MNIST "
            "training images (tutorial: 8,594 steps on 55,000); both nets start as the same function and see "
            "the same batches and dropout masks.",
            "The l2 penalty applies to every dense parameter, i.e. to each factor of the product (unverified "
            "whether the paper penalised factors or products); for balanced factors the sum of their squared "
            "norms is 2 x the nuclear norm of the product, so the objectives differ and the comparison uses "
            "the cross-entropy alone.",
            "At the same lr the product's dense layers move faster: for N = 2 the end-to-end preconditioner "
            "multiplies steps by s_r + s_r' (or s_r outside the row space), s the singular values of the "
            "layer (about 3 to 7 for fc1 at initialisation), hence the extra runs of the original net with "
            "a larger lr on its dense layers.",
        ],
    )


def plot(result: Result, figures_dir: Path) -> list[Path]:
    data = result.data
    fig, (ax_loss, ax_eval) = new_figure(1, 2, figsize=(11, 4))
    for label in data["labels"]:
        curve = data["curves"][label]
        loss = np.asarray(curve["loss"])
        window = max(1, min(25, len(loss) // 5))
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax_loss.plot(curve["step"][window - 1 :], smooth, label=f"{label} (mini-batch, {window}-step mean)")
        ax_eval.plot(curve["eval_step"], curve["eval_cross_entropy"], "o-", ms=3, label=label)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("SGD step")
    ax_loss.set_ylabel("objective: cross-entropy + own l2 penalty (nats)")
    ax_loss.set_title("mini-batch objective (the l2 penalties differ: factors vs matrix)", fontsize=8)
    ax_loss.legend(fontsize=7)
    ax_eval.set_yscale("log")
    ax_eval.set_xlabel("SGD step")
    ax_eval.set_ylabel("cross-entropy on held-in training images (nats)")
    ax_eval.legend(fontsize=7)
    fig.suptitle(
        f"Arora et al. 2018: TF-tutorial convnet on MNIST ({data['train_size']} training images), "
        "original vs dense layers as products of two",
        fontsize=9,
    )
    return [save_figure(fig, figures_dir / "mnist_overparameterized.png", tight_layout=True)]


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description=(
        "TF-tutorial MNIST convnet vs the same net with each dense matrix a product of two (training loss)"
    ),
    paper="arora",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
