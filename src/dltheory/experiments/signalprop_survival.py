"""Why q* must shrink with depth: how much of the difference between two images survives a deep critical
vanilla CNN at initialisation, mean-field prediction vs measurement, for delta-orthogonal and Gaussian
kernels (Xiao et al. 2018, sections 3-4: the correlation map and its depth scales).

For each fixed point q* on the tanh critical line, the stem of :class:`~dltheory.nn.models.VanillaCNN`
maps real MNIST images to the stack's input; pairs of (image, position) points from different images
start with pre-activation covariances ``(q_a, q_ab, q_b)``. A delta-orthogonal stack applies the same
matrix at every position, so in the mean-field limit every such pair follows the two-input covariance map
(:func:`dltheory.signalprop.correlation_survival`): the prediction of the survival
``S_L = mean(1 - c_L) / mean(1 - c_0)`` over the pairs. The measurement runs the network's own stack
(``depth`` layers, ``channels`` wide) and reads the same correlations off its activations; it also
reports the fraction of the globally pooled features' variance that depends on the image (what the
read-out can use).

Claims: the measured survival of delta-orthogonal stacks follows the mean-field map within a stated
tolerance (finite width makes the measured decay somewhat faster); larger q* loses more (the ordering
the theory predicts); the q* that :func:`dltheory.signalprop.q_star_for_depth` picks for the deepest
depth keeps most of the signal in the real network. Gaussian kernels are reported beside them: their
measured survival is not this map's (spatial mixing and the finite-width spread of their Jacobian).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dltheory.core.figures import new_figure, save_figure
from dltheory.experiments._xiao_common import image_data
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.nn.convstack import conv_stack
from dltheory.nn.models import VanillaCNN
from dltheory.runner.runs import RunDir
from dltheory.signalprop import correlation_survival, q_star_for_depth

NAME = "signalprop-survival"
INITS = ("delta_orthogonal", "gaussian")


@dataclass(frozen=True)
class Config:
    dataset: str = "mnist"
    images: int = 16
    pairs: int = 400  # (image, position) pairs from different images followed by theory and network
    channels: tuple[int, ...] = (16, 64)
    q_stars: tuple[float, ...] = (0.0003, 0.001, 0.003, 0.01, 0.03)
    depths: tuple[int, ...] = (10, 30, 100, 300, 1000)
    target: float = 0.99  # survival the chosen q* must keep at the deepest depth (theory)
    tolerance: float = 0.2  # |measured - predicted| survival, delta-orthogonal (finite width)
    kept: float = 0.9  # measured survival at the chosen q* must reach this
    seed: int = 0


PROFILES = {
    "tiny": Config(images=4, pairs=60, channels=(8,), q_stars=(0.001, 0.03), depths=(3, 10), tolerance=0.3),
    "quick": Config(channels=(16,)),
    "paper": Config(channels=(16, 64), depths=(10, 30, 100, 300, 1000, 3000, 10000)),
}


def _pre_activation_covariance(
    points: np.ndarray, i: np.ndarray, j: np.ndarray, sigma_w2: float, sigma_b2: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(q_a, q_ab, q_b)`` of the next layer's pre-activations of point pairs (i, j): the channel average
    of the activations times sigma_w2, plus sigma_b2 (exact in expectation over a layer's weights)."""
    qa = sigma_w2 * np.mean(points[i] * points[i], axis=1) + sigma_b2
    qab = sigma_w2 * np.mean(points[i] * points[j], axis=1) + sigma_b2
    qb = sigma_w2 * np.mean(points[j] * points[j], axis=1) + sigma_b2
    return qa, qab, qb


def _decorrelation(qa: np.ndarray, qab: np.ndarray, qb: np.ndarray) -> float:
    return float(np.mean(1.0 - qab / np.sqrt(qa * qb)))


def _pooled_input_fraction(features: torch.Tensor) -> float:
    """Share of the pooled features' power that varies across images: sum_j Var_a P_j / sum_j E_a P_j^2."""
    pooled = features.mean(dim=(2, 3)).double()
    return float(pooled.var(0, unbiased=False).sum() / (pooled**2).mean(0).sum())


def _points(features: torch.Tensor) -> np.ndarray:
    """Activations as rows of (image, position) points: ``[images * positions, channels]``."""
    return features.permute(0, 2, 3, 1).reshape(-1, features.shape[1]).double().cpu().numpy()


def _measure(
    config: Config, x: torch.Tensor, channels: int, q_star: float, init: str, pairs: tuple[np.ndarray, ...]
) -> dict[str, Any]:
    model = VanillaCNN(
        max(config.depths),
        channels,
        in_channels=x.shape[1],
        init=init,
        q_star=q_star,
        stem_init="gaussian",
        generator=torch.Generator().manual_seed(config.seed),
    )
    sw2, sb2 = model.sigma_w2, model.sigma_b2
    with torch.no_grad():
        h = x
        for conv in model.stem_convs:
            h = torch.tanh(conv(h))
        i, j = pairs
        start = _pre_activation_covariance(_points(h), i, j, sw2, sb2)
        # pairs of identical points (e.g. blank background in two images) stay identical and carry no
        # difference: they add nothing to either side of the survival ratio
        distinct = start[1] / np.sqrt(start[0] * start[2]) < 1.0 - 1e-9
        i, j = i[distinct], j[distinct]
        start = tuple(part[distinct] for part in start)
        before = _decorrelation(*start)
        measured, fractions, done = [], [], 0
        for depth in config.depths:
            h = conv_stack(h, model.stack_weight[done:depth], model.stack_bias[done:depth])
            done = depth
            measured.append(_decorrelation(*_pre_activation_covariance(_points(h), i, j, sw2, sb2)) / before)
            fractions.append(_pooled_input_fraction(h))
    predicted = None
    if init == "delta_orthogonal":  # the per-position covariance map is the mean field of this stack only
        qa, qab, qb = start
        survival = correlation_survival("tanh", list(config.depths), sw2, sb2, qa, qb, qab)  # [depth, pair]
        decorrelation = 1.0 - start[1] / np.sqrt(start[0] * start[2])
        predicted = [float(np.mean(s * decorrelation)) / before for s in survival]
    return {
        "measured": measured,
        "predicted": predicted,
        "pooled_fraction": fractions,
        "start_decorrelation": before,
        "pairs": int(distinct.sum()),
    }


def run(config: Config, run_dir: RunDir) -> Result:
    data = image_data(config.dataset, config.images, 1)
    x = data.x_train
    rng = np.random.default_rng(config.seed)
    positions = 7 * 7 if x.shape[-1] == 28 else (x.shape[-1] // 4) ** 2
    points = config.images * positions
    i = rng.integers(0, points, config.pairs)
    j = rng.integers(0, points, config.pairs)
    keep = i // positions != j // positions  # points of different images
    pairs = (i[keep], j[keep])
    deepest = max(config.depths)
    chosen = q_star_for_depth("tanh", deepest, target=config.target)
    nearest = min(config.q_stars, key=lambda q: abs(np.log(q / chosen)))
    cells: dict[str, Any] = {}
    for channels in config.channels:
        for init in INITS:
            for q_star in config.q_stars:
                key = f"{init}/{channels}/{q_star:g}"
                cells[key] = _measure(config, x, channels, q_star, init, pairs)
                run_dir.log_metrics({"cell": key, **cells[key]})
    claims = []
    for channels in config.channels:
        delta = [cells[f"delta_orthogonal/{channels}/{q:g}"] for q in config.q_stars]
        gaps = [
            abs(m - p) for cell in delta for m, p in zip(cell["measured"], cell["predicted"], strict=True)
        ]
        claims.append(
            Claim(
                f"delta-orthogonal, {channels} channels: measured survival follows the mean-field map",
                "mean-field correlation map, per pair",
                max(gaps),
                config.tolerance,
                bool(max(gaps) <= config.tolerance),
                f"largest |measured - predicted| over q* in {list(config.q_stars)} and depths "
                f"{list(config.depths)}",
            )
        )
        last = [cell["measured"][-1] for cell in delta]
        claims.append(
            Claim(
                f"delta-orthogonal, {channels} channels: larger q* keeps less at depth {deepest}",
                "survival decreasing in q*",
                last,
                None,
                bool(np.all(np.diff(last) < 0)),
                "measured survival at the deepest depth, by increasing q*",
            )
        )
        kept = cells[f"delta_orthogonal/{channels}/{nearest:g}"]["measured"][-1]
        claims.append(
            Claim(
                f"the q* chosen by theory for depth {deepest} keeps the signal ({channels} channels)",
                f"q_star_for_depth = {chosen:.3g} (target {config.target}); grid point {nearest:g}: "
                f"survival >= {config.kept}",
                kept,
                config.kept,
                bool(kept >= config.kept),
                "measured in the real network at initialisation",
            )
        )
        pooled = {
            init: [cells[f"{init}/{channels}/{q:g}"]["pooled_fraction"][-1] for q in config.q_stars]
            for init in INITS
        }
        claims.append(
            Claim(
                f"{channels} channels: image-dependent share of the pooled features at depth {deepest}",
                "reported: Gaussian kernels mix positions, so the per-position map does not apply to them",
                pooled,
                None,
                None,
                "by increasing q*; delta-orthogonal vs Gaussian kernels at the same critical point",
            )
        )
    return Result(
        NAME,
        claims=claims,
        data={
            "depths": list(config.depths),
            "q_stars": list(config.q_stars),
            "channels": list(config.channels),
            "chosen_q_star": chosen,
            "cells": cells,
        },
        notes=[
            f"{config.dataset}: first {config.images} training images; {len(pairs[0])} pairs of (image, "
            f"position) points from different images; stem Gaussian at the same critical point; one seed.",
            "Survival S_L = mean(1 - c_L) / mean(1 - c_0) of the next layer's pre-activation correlations; "
            "the prediction iterates the two-input covariance map from each pair's measured start.",
        ],
    )


def plot(result: Result, figures_dir: Path) -> list[Path]:
    data = result.data
    depths, q_stars, widths = data["depths"], data["q_stars"], data["channels"]
    cells = data["cells"]
    colors = [f"C{k}" for k in range(len(q_stars))]
    fig, axes = new_figure(2, 2, figsize=(11.5, 8.5))
    for ax, channels in zip(axes[0], widths[:2], strict=False):
        for q_star, color in zip(q_stars, colors, strict=True):
            delta = cells[f"delta_orthogonal/{channels}/{q_star:g}"]
            ax.plot(depths, delta["predicted"], "-", color=color, lw=1.5, label=f"q* = {q_star:g}")
            ax.plot(depths, delta["measured"], "o", color=color, ms=5)
        ax.plot([], [], "k-", label="mean-field map (lines)")
        ax.plot([], [], "ko", label="network, measured (dots)")
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.1)
        ax.set_xlabel("depth L (layers of the stack)")
        ax.set_ylabel("survival S_L = mean(1 - c_L) / mean(1 - c_0)")
        ax.set_title(f"delta-orthogonal, {channels} channels")
        ax.legend(fontsize=7, ncol=2, loc="lower left")
    ax = axes[1][0]
    channels = widths[0]
    for q_star, color in zip(q_stars, colors, strict=True):
        for init, style in (("delta_orthogonal", "o-"), ("gaussian", "x--")):
            ax.plot(
                depths,
                [100 * f for f in cells[f"{init}/{channels}/{q_star:g}"]["pooled_fraction"]],
                style,
                color=color,
                ms=4,
                lw=1,
                label=f"q* = {q_star:g}, {init.replace('_', '-')}",
            )
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel("depth L (layers of the stack)")
    ax.set_ylabel("image-dependent share of the pooled features (%)")
    ax.set_title(f"what the read-out sees ({channels} channels, measured; x: Gaussian)")
    ax.legend(fontsize=6, ncol=2)
    ax = axes[1][1]
    deepest = depths[-1]
    for channels, marker in zip(widths, "os^", strict=False):
        ax.plot(
            q_stars,
            [cells[f"delta_orthogonal/{channels}/{q:g}"]["measured"][-1] for q in q_stars],
            marker,
            label=f"delta-orthogonal, {channels} channels (measured)",
        )
    ax.plot(
        q_stars,
        [cells[f"delta_orthogonal/{widths[0]}/{q:g}"]["predicted"][-1] for q in q_stars],
        "k-",
        label="mean-field map",
    )
    ax.axvline(data["chosen_q_star"], color="grey", ls=":", label=f"q* chosen for depth {deepest} (theory)")
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.1)
    ax.set_xlabel("fixed point q* on the tanh critical line")
    ax.set_ylabel(f"survival after {deepest} layers")
    ax.set_title("smaller q* keeps the images apart")
    ax.legend(fontsize=7)
    fig.suptitle(
        "Signal survival in vanilla tanh CNNs at initialisation (MNIST, critical point): "
        "pairs of points of different images"
    )
    return [save_figure(fig, figures_dir / "signal_survival.png", tight_layout=True)]


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description="How much of two images' difference survives depth L at q*: mean-field map vs networks",
    paper="xiao",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
