"""Sanity check of the tooling on real data: softmax regression on MNIST through the generic training loop.

A linear classifier on raw MNIST pixels reaches about 92% test accuracy (LeCun et al. 1998 report 12%
error for a one-layer linear classifier; well-tuned softmax regression reaches 7-8%). The experiment
exercises the whole path: data loader, training loop with checkpoints, metrics, result, figure, report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dltheory.core.figures import new_figure, save_figure
from dltheory.data import load
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.runner.runs import RunDir
from dltheory.runner.train import EpochSampler, accuracy_evaluator, train

NAME = "foundation-mnist-linear"


@dataclass(frozen=True)
class Config:
    train_size: int = 60000
    test_size: int = 10000
    steps: int = 600
    batch_size: int = 100
    lr: float = 0.5
    min_accuracy: float = 0.88
    seed: int = 0


PROFILES = {
    "tiny": Config(train_size=2000, test_size=1000, steps=60, batch_size=50, min_accuracy=0.75),
    "quick": Config(),
    "paper": Config(steps=6000),
}


def _prepare(split: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load("mnist", split)
    x_t = torch.from_numpy(x[:size].reshape(-1, 784)).float() / 255.0
    return x_t, torch.from_numpy(y[:size])


def run(config: Config, run_dir: RunDir) -> Result:
    x_train, y_train = _prepare("train", config.train_size)
    x_test, y_test = _prepare("test", config.test_size)
    generator = torch.Generator().manual_seed(config.seed)
    model = torch.nn.Linear(784, 10)
    with torch.no_grad():
        model.weight.normal_(0.0, 0.01, generator=generator)
        model.bias.zero_()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    sampler = EpochSampler(len(y_train), config.batch_size, config.seed)

    def get_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(sampler.indices(step))
        return x_train[idx], y_train[idx]

    loss_fn = torch.nn.functional.cross_entropy
    outcome = train(
        model,
        optimizer,
        get_batch,
        loss_fn,
        steps=config.steps,
        run_dir=run_dir,
        evaluate=accuracy_evaluator(x_test, y_test, loss_fn=loss_fn),
        eval_every=max(config.steps // 10, 1),
        checkpoint_every=max(config.steps // 5, 1),
        log_every=max(config.steps // 50, 1),
        seed=config.seed,
    )
    accuracy = outcome.final.get("test_accuracy", float("nan"))
    history = [h for h in outcome.history if "test_accuracy" in h]
    return Result(
        NAME,
        claims=[
            Claim(
                "test accuracy of softmax regression on MNIST",
                f">= {config.min_accuracy}",
                accuracy,
                None,
                accuracy >= config.min_accuracy,
                f"{config.train_size} training / {config.test_size} test images, {config.steps} SGD steps",
            )
        ],
        data={
            "step": [h["step"] for h in outcome.history],
            "loss": [h["loss"] for h in outcome.history],
            "eval_step": [h["step"] for h in history],
            "test_accuracy": [h["test_accuracy"] for h in history],
        },
        status="completed" if outcome.status == "completed" else outcome.status,
    )


def plot(result: Result, figures_dir: Path) -> list[Path]:
    data = result.data
    fig, (ax_loss, ax_acc) = new_figure(1, 2, figsize=(9, 3.5))
    ax_loss.plot(data["step"], data["loss"], label="training loss (mini-batch)")
    ax_loss.set_xlabel("SGD step")
    ax_loss.set_ylabel("cross-entropy (nats)")
    ax_loss.legend()
    ax_acc.plot(
        data["eval_step"], [100 * a for a in data["test_accuracy"]], marker="o", label="test accuracy"
    )
    ax_acc.set_xlabel("SGD step")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.legend()
    fig.suptitle("Softmax regression on MNIST")
    return [save_figure(fig, figures_dir / "mnist_linear.png", tight_layout=True)]


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description="Softmax regression on MNIST through the training loop (tooling sanity check on real data)",
    paper="foundation",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
