"""Trainability of residual networks: is peak accuracy set by sigma_w sqrt(L)? And does following
:func:`dltheory.diagnose`'s branch-scale recommendation help a ResNet and a pre-LN MLP stack?

Part 1 (Yang & Schoenholz 2017): tanh residual MLPs with reduced blocks ``h + W tanh(h) + b`` on MNIST,
over a grid of weight variances sigma_w2 and depths L, each trained for a short budget of SGD with momentum
(no adaptive step sizes: they would hide the gradient growth the theory is about). One learning rate for
every cell cannot work: the loss curvature at initialisation grows with depth and sigma_w2 (a sum over
blocks), and a rate that suits 4 blocks diverges at 32. So by default each network is trained at
``min(lr_max, lr_fraction * 2 (1 + momentum) / lambda_max)``: a fixed fraction of its own stability limit,
with ``lambda_max`` the top Hessian eigenvalue of the loss at initialisation
(:func:`dltheory.nn.curvature.top_hessian_eigenvalue`), and never above ``lr_max``. The fraction leaves
room for the curvature to grow during training (at a quarter of the limit, small-weight networks still
blew up within 150 steps); the cap keeps well-conditioned networks at the rate that trains them. A network
whose gradients explode gets a tiny stable step and trains slowly, which is how ill-conditioning shows.
``lr`` fixes one rate for all instead. The paper reports that
the best test accuracy is reached along sigma_w sqrt(L) = const; the mean field says why: the
end-to-end growth of the squared gradient is ``G ~ exp(gamma sqrt(L))`` with ``gamma`` proportional to
sigma_w (for sigma_b2 small), so log G is a function of sigma_w sqrt(L). The figure overlays the
contours of the predicted log G (:func:`dltheory.signalprop.residual_propagation`) and of sigma_w
sqrt(L) on the accuracy heat map; the result states the slope of log sigma_w2* (the best sigma_w2 at
each depth) against log L, and the slope of the trainability edge (the sigma_w2 at which the accuracy falls
through ``EDGE_FRACTION`` of the grid's best), which does not depend on where a flat peak's maximum
happens to fall; the law predicts -1 for both.

Part 2: a small convolutional ResNet (:class:`~dltheory.nn.resnets.ResNet`) and a pre-LN MLP stack
(:class:`~dltheory.nn.resnets.ResidualMLP`, GELU) are diagnosed as initialised, re-scaled with
``report.recommendation.apply`` and diagnosed again; both versions are trained for the same short budget,
each with the same step-size rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F

from dltheory.core.figures import new_figure, save_figure
from dltheory.core.io import atomic_write_json, read_json
from dltheory.core.validation import check_in_range, check_int, check_positive
from dltheory.experiments._xiao_common import ImageData, image_data
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.nn.curvature import stable_learning_rate, top_hessian_eigenvalue
from dltheory.nn.diagnose import diagnose
from dltheory.nn.resnets import ResidualMLP, ResNet
from dltheory.runner.runs import RunDir
from dltheory.runner.train import EpochSampler, accuracy_evaluator, train
from dltheory.signalprop import residual_propagation

NAME = "signalprop-residual-trainability"
SIGMA_B2 = 0.05
#: the trainability edge at a depth: where the accuracy falls through this fraction of the grid's best
EDGE_FRACTION = 0.9


@dataclass(frozen=True)
class Config:
    sigma_w2: tuple[float, ...] = (0.05, 0.2, 0.8, 3.2)
    depths: tuple[int, ...] = (4, 16, 64)
    width: int = 128
    steps: int = 150
    lr: float | None = None
    lr_fraction: float = 0.2
    lr_max: float = 0.02
    momentum: float = 0.9
    curvature_batch: int = 128
    curvature_iterations: int = 30
    batch_size: int = 64
    train_size: int = 5000
    test_size: int = 1000
    resnet_channels: int = 16
    resnet_depth: int = 16
    preln_depth: int = 32
    preln_width: int = 128
    diagnose_batch: int = 32
    judge_law: bool = False
    law_tolerance: float = 0.5
    seed: int = 0


PROFILES = {
    "tiny": Config(
        sigma_w2=(0.2, 3.2),
        depths=(2, 4),
        width=32,
        steps=3,
        train_size=256,
        test_size=128,
        resnet_channels=4,
        resnet_depth=3,
        preln_depth=4,
        preln_width=32,
        diagnose_batch=16,
    ),
    "quick": Config(),
    "paper": Config(
        sigma_w2=(0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2),
        depths=(4, 8, 16, 32, 64, 128),
        width=256,
        steps=1000,
        train_size=60000,
        test_size=10000,
        resnet_channels=16,
        resnet_depth=32,
        preln_depth=64,
        preln_width=256,
        judge_law=True,
    ),
}


def _learning_rate(model: torch.nn.Module, data: ImageData, config: Config) -> tuple[float, float | None]:
    """The step size for ``model`` and the top Hessian eigenvalue it came from (None for a fixed ``lr``)."""
    if config.lr is not None:
        return config.lr, None
    n = config.curvature_batch
    estimate = top_hessian_eigenvalue(
        model,
        F.cross_entropy,
        data.x_train[:n],
        data.y_train[:n],
        iterations=config.curvature_iterations,
        seed=config.seed,
    )
    limit = stable_learning_rate(estimate.lambda_max, config.momentum)
    return min(config.lr_max, config.lr_fraction * limit), estimate.lambda_max


def _train(
    model: torch.nn.Module, data: ImageData, config: Config, run_dir: RunDir, name: str
) -> dict[str, Any]:
    """Train ``model`` for ``config.steps``; returns the test accuracy (0.1, chance, for a diverged run),
    the step size and the curvature it came from."""
    step_file = run_dir.checkpoints / f"{name}-step-size.json"  # a resumed run reuses it, not recomputes
    if step_file.exists():
        stored = read_json(step_file)
        lr, lam = stored["lr"], stored["lambda_max"]
    else:
        lr, lam = _learning_rate(model, data, config)
        atomic_write_json(step_file, {"lr": lr, "lambda_max": lam})
    sampler = EpochSampler(len(data.y_train), config.batch_size, seed=config.seed)

    def get_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(sampler.indices(step))
        return data.x_train[idx], data.y_train[idx]

    outcome = train(
        model,
        torch.optim.SGD(model.parameters(), lr=lr, momentum=config.momentum),
        get_batch,
        F.cross_entropy,
        steps=config.steps,
        run_dir=run_dir,
        name=name,
        evaluate=accuracy_evaluator(data.x_test, data.y_test),
        seed=config.seed,
        log_every=0,
    )
    diverged = outcome.status != "completed"
    accuracy = 0.1 if diverged else float(outcome.final.get("test_accuracy", float("nan")))
    return {"accuracy": accuracy, "lr": lr, "lambda_max": lam, "diverged": diverged}


def _lr_rule(config: Config) -> str:
    if config.lr is not None:
        return f"lr {config.lr:g} for every network, momentum {config.momentum:g}"
    return (
        f"momentum {config.momentum:g}, each network at {config.lr_fraction:g} of its stability limit "
        f"2 (1 + {config.momentum:g}) / lambda_max (top Hessian eigenvalue of the loss at initialisation, "
        f"{config.curvature_batch} training images), at most {config.lr_max:g}"
    )


def _cached(run_dir: RunDir, name: str, compute: Any) -> dict[str, Any]:
    path = run_dir.checkpoints / f"{name}.json"
    if path.exists():
        return read_json(path)
    value = compute()
    atomic_write_json(path, value)
    run_dir.log_metrics({"case": name, **{k: v for k, v in value.items() if isinstance(v, int | float)}})
    return value


def _grid(config: Config, data: ImageData, run_dir: RunDir) -> list[dict[str, Any]]:
    cells = []
    for depth in config.depths:
        for sw2 in config.sigma_w2:
            name = f"grid-L{depth}-sw2-{sw2:g}"

            def compute(depth: int = depth, sw2: float = sw2, name: str = name) -> dict[str, Any]:
                g = torch.Generator().manual_seed(config.seed)
                model = ResidualMLP(784, config.width, depth, sigma_w2=sw2, sigma_b2=SIGMA_B2, generator=g)
                return {"depth": depth, "sigma_w2": sw2, **_train(model, data, config, run_dir, name)}

            cells.append(_cached(run_dir, name, compute))
    return cells


def _theory_grid(config: Config, input_q: float) -> dict[str, Any]:
    """Predicted log G on a fine (sigma_w2, L) grid: one vectorised recursion over the sigma_w2 values
    (the embedding layer gives the stream q0 = sigma_w2 input_q + sigma_b2)."""
    sw2 = np.geomspace(min(config.sigma_w2) / 2, max(config.sigma_w2) * 2, 60)
    max_depth = max(config.depths) * 2
    prop = residual_propagation(
        "tanh", sw2, SIGMA_B2, max_depth, sw2 * input_q + SIGMA_B2, correlations=False
    )
    depths = np.unique(np.geomspace(1, max_depth, 40).astype(int))
    return {
        "sigma_w2": sw2.tolist(),
        "depths": depths.tolist(),
        "log_growth": np.log(prop.growth[depths]).tolist(),
    }


def _before_after(config: Config, data: ImageData, run_dir: RunDir, family: str) -> dict[str, Any]:
    def build() -> torch.nn.Module:
        g = torch.Generator().manual_seed(config.seed + 7)
        if family == "resnet":
            return ResNet(1, config.resnet_channels, config.resnet_depth, activation="relu", generator=g)
        return ResidualMLP(
            784,
            config.preln_width,
            config.preln_depth,
            activation="gelu",
            block="mlp",
            norm="layer",
            sigma_w2=2.0,
            generator=g,
        )

    def compute() -> dict[str, Any]:
        probe = data.x_train[: config.diagnose_batch]
        probe = probe if family == "resnet" else probe.flatten(1)
        model = build()
        before = diagnose(model, probe, jacobian=False, seed=config.seed)
        rec = before.recommendation
        fresh = build()
        if rec is not None:
            rec.apply(fresh)
        after = diagnose(fresh, probe, jacobian=False, seed=config.seed)
        assert before.residual is not None and after.residual is not None
        out = {
            "family": family,
            "verdict_before": before.residual.verdict,
            "growth_before": before.residual.growth,
            "growth_before_pred": before.residual.growth_pred,
            "verdict_after": after.residual.verdict,
            "growth_after": after.residual.growth,
            "growth_after_pred": after.residual.growth_pred,
            "multiplier": None if rec is None else rec.branch_multiplier,
            "recommendation": None if rec is None else rec.note,
            "growth_target": before.residual.growth_target,
        }
        for stage, net in (("before", model), ("after", fresh)):
            trained = _train(net, data, config, run_dir, f"{family}-{stage}")
            out.update({f"{key}_{stage}": value for key, value in trained.items()})
        return out

    return _cached(run_dir, f"diagnose-{family}", compute)


def _resolution(sigma_w2: tuple[float, ...]) -> str:
    values = sorted(sigma_w2)
    if len(values) < 2:
        return "one sigma_w2 value: no slope"
    widest_step = float(np.exp(np.diff(np.log(values)).max()))
    return f"the grid's resolution is a factor {widest_step:.3g} in sigma_w2"


def _trainability_edges(cells: list[dict[str, Any]], fraction: float = EDGE_FRACTION) -> dict[int, float]:
    """Depth -> the sigma_w2 at which the accuracy first falls through ``fraction`` of the grid's best
    accuracy, interpolated linearly in (log sigma_w2, accuracy) between the two grid points around the
    crossing. Depths whose accuracy stays above the level over the whole grid, or starts below it, have
    no edge inside the grid and are left out."""
    level = fraction * max(c["accuracy"] for c in cells)
    edges: dict[int, float] = {}
    for depth in sorted({c["depth"] for c in cells}):
        row = sorted((c for c in cells if c["depth"] == depth), key=lambda c: c["sigma_w2"])
        if row[0]["accuracy"] < level:
            continue
        for low, high in zip(row, row[1:], strict=False):
            if high["accuracy"] < level <= low["accuracy"]:
                t = (low["accuracy"] - level) / (low["accuracy"] - high["accuracy"])
                log_edge = (1 - t) * np.log(low["sigma_w2"]) + t * np.log(high["sigma_w2"])
                edges[depth] = float(np.exp(log_edge))
                break
    return edges


def _edge_slope(edges: dict[int, float]) -> float:
    """Slope of log(edge sigma_w2) against log L (NaN with fewer than two edges)."""
    if len(edges) < 2:
        return float("nan")
    depths = sorted(edges)
    return float(np.polyfit(np.log(depths), np.log([edges[d] for d in depths]), 1)[0])


def _law_slope(cells: list[dict[str, Any]]) -> float:
    """Slope of log sigma_w2* (the best sigma_w2 at each depth) against log L."""
    depths = sorted({c["depth"] for c in cells})
    best = [
        max((c for c in cells if c["depth"] == d), key=lambda c: c["accuracy"])["sigma_w2"] for d in depths
    ]
    if len(depths) < 2:
        return float("nan")
    return float(np.polyfit(np.log(depths), np.log(best), 1)[0])


def _check(config: Config) -> None:
    if config.lr is not None:
        check_positive("lr", config.lr)
    check_positive("lr_max", config.lr_max)
    check_positive("lr_fraction", config.lr_fraction)
    check_in_range("lr_fraction", config.lr_fraction, 0.0, 1.0)
    if not 0.0 <= config.momentum < 1.0:
        raise ValueError(f"momentum must lie in [0, 1), got {config.momentum!r}")
    check_int("curvature_batch", config.curvature_batch, minimum=1)
    check_int("curvature_iterations", config.curvature_iterations, minimum=1)


def run(config: Config, run_dir: RunDir) -> Result:
    _check(config)
    data = image_data("mnist", config.train_size, config.test_size)
    flat = ImageData(data.x_train.flatten(1), data.y_train, data.x_test.flatten(1), data.y_test)
    cells = _grid(config, flat, run_dir)
    input_q = float(flat.x_train[:1024].square().mean())  # the stream enters at sigma_w2 input_q + sigma_b2
    theory = _theory_grid(config, input_q)
    pairs = [_before_after(config, data, run_dir, "resnet"), _before_after(config, flat, run_dir, "preln")]
    slope = _law_slope(cells)
    edges = _trainability_edges(cells)
    edge_slope = _edge_slope(edges)
    claims = [
        Claim(
            "slope of log sigma_w2* (best sigma_w2 per depth) vs log L",
            -1.0,
            round(slope, 3),
            config.law_tolerance if config.judge_law else None,
            bool(abs(slope + 1.0) <= config.law_tolerance) if config.judge_law else None,
            f"sigma_w sqrt(L) = const predicts -1; {_resolution(config.sigma_w2)}",
        ),
        Claim(
            "slope of log sigma_w2 at the trainability edge vs log L",
            -1.0,
            None if np.isnan(edge_slope) else round(edge_slope, 3),
            config.law_tolerance if config.judge_law and len(edges) >= 3 else None,
            bool(abs(edge_slope + 1.0) <= config.law_tolerance)
            if config.judge_law and len(edges) >= 3
            else None,
            f"edge: where the accuracy falls through {EDGE_FRACTION:g} x the grid's best, interpolated "
            f"in log sigma_w2 (judged with >= 3 edges inside the grid): "
            + (", ".join(f"L={d}: {e:.3g}" for d, e in sorted(edges.items())) or "none"),
        ),
    ]
    for p in pairs:
        claims.append(
            Claim(
                f"{p['family']}: verdict before -> after following the recommendation",
                "exploding -> stable",
                f"{p['verdict_before']} -> {p['verdict_after']}",
                None,
                bool(p["verdict_after"] == "stable" and p["growth_after"] <= p["growth_target"]),
                f"measured growth {p['growth_before']:.4g} -> {p['growth_after']:.4g} (mean field "
                f"{p['growth_before_pred']:.4g} -> {p['growth_after_pred']:.4g}); multiplier "
                f"{p['multiplier']}",
            )
        )
        claims.append(
            Claim(
                f"{p['family']}: test accuracy before -> after the recommendation",
                None,
                f"{p['accuracy_before']:.3f} -> {p['accuracy_after']:.3f}",
                None,
                None,
                f"{config.steps} SGD steps, {_lr_rule(config)}, batch {config.batch_size}; step size "
                f"{p['lr_before']:.3g} -> {p['lr_after']:.3g}",
            )
        )
    notes = [
        f"grid: reduced tanh residual MLPs of width {config.width}, sigma_b2 = {SIGMA_B2}, {config.steps} "
        f"SGD steps, {_lr_rule(config)}, on the first {config.train_size} MNIST training images",
        "a diverged run counts as chance accuracy (0.1)",
    ]
    return Result(NAME, claims, {"cells": cells, "theory": theory, "pairs": pairs, "input_q": input_q}, notes)


def plot(result: Result, figures_dir: Path) -> list[Path]:
    cells, theory = result.data["cells"], result.data["theory"]
    sw2 = sorted({c["sigma_w2"] for c in cells})
    depths = sorted({c["depth"] for c in cells})
    acc = np.full((len(depths), len(sw2)), np.nan)
    for c in cells:
        acc[depths.index(c["depth"]), sw2.index(c["sigma_w2"])] = c["accuracy"]
    fig, (ax, ax_lr, ax_bar) = new_figure(1, 3, figsize=(20, 5.5), gridspec_kw={"width_ratios": [1.4, 1, 1]})
    mesh = ax.pcolormesh(_edges(sw2), _edges(depths), acc, cmap="viridis", vmin=0.0, vmax=1.0, shading="flat")
    fig.colorbar(mesh, ax=ax, label="MNIST test accuracy")
    for (i, j), value in np.ndenumerate(acc):
        color = "k" if value > 0.6 else "w"  # readable on viridis' light (high) and dark (low) ends
        ax.text(sw2[j], depths[i], f"{value:.2f}", ha="center", va="center", fontsize=8, color=color)
    grid_sw2, grid_depth = np.array(theory["sigma_w2"]), np.array(theory["depths"])
    log_g = np.array(theory["log_growth"])
    contours = ax.contour(grid_sw2, grid_depth, log_g, levels=[1, 3, 10, 30], colors="white", linewidths=1.0)
    ax.clabel(contours, fmt=lambda v: f"log G = {v:g}", fontsize=7)
    for k, const in enumerate(np.geomspace(0.5, 8, 4)):
        ax.plot(
            grid_sw2,
            const**2 / grid_sw2,
            "--",
            color="tab:red",
            lw=0.8,
            label="sigma_w sqrt(L) = const" if k == 0 else None,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(min(sw2) / 1.5, max(sw2) * 1.5)
    ax.set_ylim(min(depths) / 1.3, max(depths) * 1.3)
    ax.set_xlabel("sigma_w^2 (weight variance x fan-in)")
    ax.set_ylabel("depth L (residual blocks)")
    ax.set_title("tanh residual MLPs: accuracy; white: mean-field log G contours")
    ax.legend(fontsize=7, loc="lower left")
    _plot_step_sizes(ax_lr, cells, sw2, depths)
    pairs = result.data["pairs"]
    pos = np.arange(len(pairs))
    ax_bar.bar(pos - 0.2, [p["accuracy_before"] for p in pairs], 0.4, color="0.6", label="as initialised")
    ax_bar.bar(
        pos + 0.2,
        [p["accuracy_after"] for p in pairs],
        0.4,
        color="tab:green",
        label="after report.recommendation.apply",
    )
    for k, p in enumerate(pairs):
        for dx, stage in ((-0.2, "before"), (0.2, "after")):
            label = f"G={p[f'growth_{stage}']:.3g}, lr={p[f'lr_{stage}']:.2g}"
            ax_bar.text(k + dx, 0.02, label, ha="center", fontsize=7, rotation=90)
    ax_bar.set_xticks(pos, ["conv ResNet (ReLU)", "pre-LN MLP stack (GELU)"])
    ax_bar.set_ylim(0, 1)
    ax_bar.set_ylabel("MNIST test accuracy after the short budget")
    ax_bar.set_title(
        "diagnose before / after its recommendation\n(G: measured |g|^2 growth; lr: SGD step size)"
    )
    ax_bar.legend(fontsize=7)
    fig.tight_layout()
    return [save_figure(fig, Path(figures_dir) / "residual_trainability.png")]


def _plot_step_sizes(ax: Any, cells: list[dict[str, Any]], sw2: list[float], depths: list[int]) -> None:
    """The SGD step size each grid network was trained with, against depth; x marks a diverged run."""
    cmap = matplotlib.colormaps["plasma"]
    for k, s in enumerate(sw2):
        color = cmap(k / max(len(sw2) - 1, 1) * 0.9)
        row = sorted((c for c in cells if c["sigma_w2"] == s), key=lambda c: c["depth"])
        ax.plot(
            [c["depth"] for c in row],
            [c["lr"] for c in row],
            "o-",
            color=color,
            ms=3,
            label=f"sigma_w2 = {s:g}",
        )
        bad = [c for c in row if c["diverged"]]
        ax.plot([c["depth"] for c in bad], [c["lr"] for c in bad], "x", color="k", ms=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(min(depths) / 1.3, max(depths) * 1.3)
    ax.set_xlabel("depth L (residual blocks)")
    ax.set_ylabel("SGD step size (dimensionless)")
    ax.set_title("step size of each grid network (x: diverged)")
    ax.legend(fontsize=7)


def _edges(values: list[float]) -> np.ndarray:
    """Cell edges halfway (geometrically) between log-spaced centres."""
    v = np.log(np.asarray(values, dtype=float))
    if v.size == 1:
        return np.exp(np.array([v[0] - 0.5, v[0] + 0.5]))
    mids = (v[1:] + v[:-1]) / 2
    return np.exp(np.concatenate([[2 * v[0] - mids[0]], mids, [2 * v[-1] - mids[-1]]]))


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description=(
        "tanh residual MLPs on MNIST over (sigma_w2, depth) with the mean-field growth contours; diagnose on "
        "a ResNet and a pre-LN MLP stack, before/after its recommendation"
    ),
    paper="yang",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
