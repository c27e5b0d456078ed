"""Shared plumbing of the vanilla-CNN experiments (xiao-depth, xiao-init, xiao-trainability, xiao-recipe):
image data as normalised tensors, and training one :class:`~dltheory.nn.models.VanillaCNN` through the
generic resumable loop with the recipe's optimizer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dltheory.data import load
from dltheory.nn.models import VanillaCNN
from dltheory.nn.recipe import TrainingRecipe, build_optimizer
from dltheory.runner.runs import RunDir
from dltheory.runner.train import EpochSampler, TrainOutcome, accuracy_evaluator, train

DATASETS = ("mnist", "fashion-mnist", "cifar10")
CHANCE_LOSS = math.log(10.0)  # cross-entropy of a uniform guess over 10 classes (nats)


@dataclass
class ImageData:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])


def image_data(dataset: str, train_size: int, test_size: int, device: str = "cpu") -> ImageData:
    """The first ``train_size`` / ``test_size`` images of ``dataset`` as float32 ``[N, C, H, W]``,
    standardised per channel with the statistics of the training images used, on ``device`` (MNIST-sized
    data goes to the device once; the training loop then only indexes it)."""
    x_train, y_train = load(dataset, "train")
    x_test, y_test = load(dataset, "test")

    def to_tensor(x: Any, size: int) -> torch.Tensor:
        t = torch.from_numpy(x[:size]).float() / 255.0
        return t.unsqueeze(1) if t.dim() == 3 else t

    xtr, xte = to_tensor(x_train, train_size), to_tensor(x_test, test_size)
    mean = xtr.mean(dim=(0, 2, 3), keepdim=True)
    std = xtr.std(dim=(0, 2, 3), keepdim=True)
    return ImageData(
        ((xtr - mean) / std).to(device),
        torch.from_numpy(y_train[:train_size]).to(device),
        ((xte - mean) / std).to(device),
        torch.from_numpy(y_test[:test_size]).to(device),
    )


def evaluator(  # type: ignore[no-untyped-def]
    data: ImageData, train_eval_size: int = 1000, test_size: int | None = None
):
    """Test accuracy and loss (on the first ``test_size`` test images, default all), and
    (``train_eval_size > 0``) training accuracy and loss on the first ``train_eval_size`` training
    images."""
    test = accuracy_evaluator(
        data.x_test[:test_size],
        data.y_test[:test_size],
        prefix="test",
        loss_fn=F.cross_entropy,
        batch_size=500,
    )
    n = min(train_eval_size, len(data.y_train))
    if n == 0:
        return test
    train_set = accuracy_evaluator(
        data.x_train[:n], data.y_train[:n], prefix="train", loss_fn=F.cross_entropy, batch_size=500
    )

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        return {**test(model), **train_set(model)}

    return evaluate


def train_network(
    model: VanillaCNN,
    recipe: TrainingRecipe,
    data: ImageData,
    *,
    steps: int,
    batch_size: int,
    seed: int,
    run_dir: RunDir | None,
    name: str,
    evaluations: int = 5,
    train_eval_size: int = 1000,
    monitor_size: int | None = None,
    budget_s: float | None = None,
    checkpoints: bool = True,
) -> TrainOutcome:
    """Train ``model`` for ``steps`` steps of ``recipe`` (cross-entropy, shuffled epochs); evaluate
    ``evaluations`` times (on the first ``monitor_size`` test images, default all); checkpoint to
    ``run_dir`` (resumable) under ``name``. A non-finite loss ends the run with status "diverged";
    ``budget_s`` stops it early by wall clock, ``checkpoints=False`` writes none (see
    :func:`dltheory.runner.train.train`).

    On a CUDA device (``run_dir.device``) the model moves there first and Adam is built for CUDA-graph
    capture, so that :func:`~dltheory.runner.train.train` replays every step from one graph."""
    device = torch.device(run_dir.device) if run_dir is not None else next(model.parameters()).device
    model.to(device)
    capturable = device.type == "cuda" and recipe.optimizer == "adam"
    optimizer, scheduler = build_optimizer(model, recipe, capturable=capturable)
    sampler = EpochSampler(len(data.y_train), batch_size, seed)

    def get_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(sampler.indices(step))
        return data.x_train[idx], data.y_train[idx]

    every = max(steps // max(evaluations, 1), 1)
    return train(
        model,
        optimizer,
        get_batch,
        F.cross_entropy,
        steps=steps,
        run_dir=run_dir,
        evaluate=evaluator(data, train_eval_size, monitor_size),
        eval_every=every,
        checkpoint_every=every if run_dir is not None else 0,
        log_every=max(steps // 50, 1),
        scheduler=scheduler,
        seed=seed,
        name=name,
        budget_s=budget_s,
        checkpoints=checkpoints,
    )


def stack_gradient_norms(model: VanillaCNN, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """``||dL/dW_l||`` for every layer l of the deep stack on one batch (cross-entropy), without touching
    the model's stored gradients: the spread of these norms across depth is the empirical face of
    dynamical isometry (flat at the critical point with orthogonal kernels, vanishing with Gaussian ones).
    """
    model.train()
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, model.stack_weight)
    return grad.flatten(1).norm(dim=1).double().cpu().numpy()


def gradient_spread(norms: np.ndarray) -> dict[str, float]:
    """Summary of per-layer gradient norms: first / last layer ratio and max / min ratio (inf where a
    layer's gradient underflowed to 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        first_last = float(norms[0] / norms[-1]) if norms[-1] > 0 else math.inf
        max_min = float(norms.max() / norms.min()) if norms.min() > 0 else math.inf
    return {"first_over_last": first_last, "max_over_min": max_min, "zero_layers": int(np.sum(norms == 0))}


def curves(outcome: TrainOutcome) -> dict[str, list[float]]:
    """Loss and evaluation curves of a training run, as lists for :class:`Result.data` (training-subset
    metrics are NaN when they were not evaluated)."""
    logged = [h for h in outcome.history if "loss" in h]
    evals = [h for h in outcome.history if "test_accuracy" in h]
    nan = float("nan")
    return {
        "step": [h["step"] for h in logged],
        "loss": [h["loss"] for h in logged],
        "eval_step": [h["step"] for h in evals],
        **{
            key: [h.get(key, nan) for h in evals]
            for key in ("test_accuracy", "test_loss", "train_accuracy", "train_loss")
        },
    }


def final_metrics(outcome: TrainOutcome) -> dict[str, Any]:
    """Status and last evaluation of a run as ``final_*`` keys (NaN metrics when it diverged)."""
    evals = [h for h in outcome.history if "test_accuracy" in h]
    last = evals[-1] if evals and outcome.status == "completed" else {}
    nan = float("nan")
    return {
        "status": outcome.status,
        "steps_done": outcome.step,
        **{
            f"final_{key}": last.get(key, nan)
            for key in ("test_accuracy", "test_loss", "train_accuracy", "train_loss")
        },
    }
