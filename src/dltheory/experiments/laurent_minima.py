"""Laurent & von Brecht (ICML 2018), Theorem 1 on real data: every local minimum is global.

Random restarts of gradient descent (then L-BFGS polishing to a gradient norm of about 1e-7) train deep
linear networks on the sklearn digits (PCA-whitened to 16 inputs, 10 outputs) for four convex losses
(squared, l4, softmax cross-entropy with an l2 term on the product, Huber) and two architectures: *wide*
(every hidden width >= min(d_0, d_L) = 10, the theorem applies) and a *bottleneck* narrower than both
ends (hidden width 4, outside the theorem). Every converged point is certified with
:func:`dltheory.deeplinear.analyze` against the global optimum of the end-to-end problem (least squares,
reduced-rank regression, or a convex L-BFGS solve; for a bottleneck with a non-squared loss the best of
factorised L-BFGS runs and all restarts, which is only an upper bound).

Expected: wide networks always end at the global optimum; with a bottleneck the squared loss still has
no spurious local minima (Yun, Sra & Jadbabaie 2018) while the other losses are not covered by any
theorem: we report what gradient descent finds there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from dltheory.core.figures import new_figure, save_figure
from dltheory.core.io import atomic_write_json, read_json
from dltheory.data import load
from dltheory.deeplinear import Optimum, analyze, global_optimum, train
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.runner.runs import RunDir

NAME = "laurent-minima"

LOSSES = {
    "squared": ("squared", {}),
    "l4": ("lp", {"p": 4.0}),
    "cross_entropy": ("cross_entropy", {}),
    "huber": ("huber", {"delta": 0.5}),
}
_SAME_VALUE = 1e-6


@dataclass(frozen=True)
class Config:
    samples: int = 500
    inputs: int = 16
    losses: tuple[str, ...] = ("squared", "l4", "cross_entropy", "huber")
    wide_hidden: tuple[int, ...] = (16, 16)
    bottleneck_hidden: tuple[int, ...] = (16, 4)
    restarts: int = 16
    steps: int = 3000
    lr: float = 0.1
    l2_cross_entropy: float = 1e-3
    grad_tol: float = 1e-7
    factorised_restarts: int = 8
    seed: int = 0


PROFILES = {
    "tiny": Config(samples=150, losses=("squared", "huber"), restarts=3, steps=400, factorised_restarts=2),
    "quick": Config(),
    "paper": Config(samples=1438, restarts=100, steps=10000, factorised_restarts=32),
}


def _data(config: Config) -> tuple[np.ndarray, np.ndarray]:
    x, y = load("digits")
    features = x.reshape(len(x), -1)[: config.samples]
    whitened = PCA(config.inputs, whiten=True, random_state=config.seed).fit_transform(features)
    return whitened, y[: config.samples]


def _cell(config: Config, X: np.ndarray, labels: np.ndarray, loss_key: str, arch: str) -> dict[str, Any]:
    loss, params = LOSSES[loss_key]
    targets = labels if loss == "cross_entropy" else np.eye(10)[labels]
    l2 = config.l2_cross_entropy if loss == "cross_entropy" else 0.0
    hidden = config.wide_hidden if arch == "wide" else config.bottleneck_hidden
    widths = (X.shape[1], *hidden, 10)
    result = train(
        widths,
        loss,
        X,
        targets,
        restarts=config.restarts,
        steps=config.steps,
        lr=config.lr,
        grad_tol=config.grad_tol,
        polish=True,
        seed=config.seed,
        l2=l2,
        loss_params=params,
    )
    rank = min(widths)
    optimum = global_optimum(
        result.objective, rank=rank, restarts=config.factorised_restarts, seed=config.seed
    )
    best = int(np.argmin(result.losses))
    if not optimum.exact and result.losses[best] < optimum.value:
        product = result.weights[best][0]
        for w in result.weights[best][1:]:
            product = w @ product
        optimum = Optimum(
            float(result.losses[best]),
            product,
            False,
            optimum.method + "; improved by the best restart",
            optimum.lower_bound,
            optimum.rank,
        )
    reports = [
        analyze(w, loss, X, targets, l2=l2, loss_params=params, optimum=optimum, seed=config.seed)
        for w in result.weights
    ]
    return {
        "loss": loss_key,
        "arch": arch,
        "widths": list(widths),
        "optimum": optimum.value,
        "optimum_exact": optimum.exact,
        "optimum_method": optimum.method,
        "lower_bound": optimum.lower_bound,
        "values": result.losses.tolist(),
        "gradient_norms": result.gradient_norms.tolist(),
        "status": result.status,
        "verdicts": [r.verdict for r in reports],
        "gaps": [r.optimality_gap for r in reports],
        "hessian_min": [r.hessian_min for r in reports],
        "hessian_max": [r.hessian_max for r in reports],
        "history": (result.history - optimum.value).tolist(),
    }


def run(config: Config, run_dir: RunDir) -> Result:
    unknown = set(config.losses) - set(LOSSES)
    if unknown:
        raise ValueError(f"losses must be among {sorted(LOSSES)}, got {sorted(unknown)}")
    X, labels = _data(config)
    cells = []
    for loss_key in config.losses:
        for arch in ("wide", "bottleneck"):
            path = run_dir.checkpoints / f"{loss_key}_{arch}.json"
            if path.exists():
                cell = read_json(path)
            else:
                cell = _cell(config, X, labels, loss_key, arch)
                atomic_write_json(path, cell)
                run_dir.log_metrics({"cell": f"{loss_key}/{arch}", "verdicts": cell["verdicts"]})
            cells.append(cell)
    claims = [_claim(cell) for cell in cells]
    converged = [
        v for cell in cells for v, s in zip(cell["verdicts"], cell["status"], strict=True) if s == "converged"
    ]
    uncertified = sum(v == "not_critical" for v in converged)
    claims.append(
        Claim(
            "every converged restart receives a certificate (critical point classified)",
            0,
            uncertified,
            0,
            uncertified == 0,
            f"{len(converged)} converged restarts; verdicts: "
            + ", ".join(f"{v} {converged.count(v)}" for v in sorted(set(converged))),
        )
    )
    notes = [
        f"Data: the first {config.samples} sklearn digits, PCA-whitened to {config.inputs} inputs; one-hot "
        f"targets for squared, l4 and Huber, labels for cross-entropy (l2 = {config.l2_cross_entropy} on the "
        "end-to-end matrix so a minimiser exists).",
        "Bottleneck with a non-squared loss: the rank-constrained optimum is not computable exactly; gaps "
        "are measured against the best value found (factorised L-BFGS runs and all restarts), so a gap of 0 "
        "there means 'as good as anything found', not a certified global minimum.",
    ]
    data = {
        "cells": [
            {
                k: cell[k]
                for k in ("loss", "arch", "widths", "gaps", "verdicts", "status", "optimum", "optimum_exact")
            }
            for cell in cells
        ],
        "histories": {f"{cell['loss']}/{cell['arch']}": cell["history"] for cell in cells},
        "record_every": 50,
        "gap_tol": 1e-6,
    }
    return Result(NAME, claims=claims, data=data, notes=notes)


def _distinct(values: list[float]) -> int:
    ordered = np.sort(np.asarray(values))
    return int(1 + np.sum(np.diff(ordered) > _SAME_VALUE * max(1.0, abs(float(ordered[0])))))


def _claim(cell: dict[str, Any]) -> Claim:
    pairs = [
        (v, g)
        for v, g, s in zip(cell["verdicts"], cell["gaps"], cell["status"], strict=True)
        if s == "converged"
    ]
    verdicts = [v for v, _ in pairs]
    gaps = [g for _, g in pairs]
    label = f"{cell['loss']}, {cell['arch']} {cell['widths']}"
    worst = max(gaps, default=float("nan"))
    summary = f"{len(pairs)} of {len(cell['status'])} restarts converged; max gap {worst:.2g}; " + ", ".join(
        f"{v} {verdicts.count(v)}" for v in sorted(set(verdicts))
    )
    if cell["arch"] == "wide" or cell["loss"] == "squared":
        share = float(np.mean([v == "global_minimum" for v in verdicts])) if verdicts else float("nan")
        theory = "Laurent & von Brecht Thm 1" if cell["arch"] == "wide" else "Yun, Sra & Jadbabaie 2018"
        return Claim(
            f"{label}: share of converged restarts certified global minima ({theory})",
            1.0,
            share,
            0.0,
            share == 1.0,
            summary + f"; optimum {cell['optimum']:.6g} ({cell['optimum_method']})",
        )
    at_best = (
        float(np.mean([g <= _SAME_VALUE * max(1.0, abs(cell["optimum"])) for g in gaps])) if gaps else 0.0
    )
    final = [cell["optimum"] + g for g in gaps]
    return Claim(
        f"{label} (outside the theorem): share of converged restarts at the best value found",
        "no prediction",
        at_best,
        None,
        None,
        summary + f"; {_distinct(final) if final else 0} distinct final values; convex lower bound "
        f"{cell['lower_bound']}",
    )


def plot(result: Result, figures_dir: Path) -> list[Path]:
    data = result.data
    cells = data["cells"]
    floor = 1e-16
    markers = {"global_minimum": "o", "local_minimum": "s", "saddle": "^", "not_critical": "x"}
    colors = {
        "global_minimum": "tab:green",
        "local_minimum": "tab:red",
        "saddle": "tab:orange",
        "not_critical": "k",
    }
    fig, (ax_gap, ax_curve) = new_figure(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [1.3, 1]})
    rng = np.random.default_rng(0)
    seen = set()
    for i, cell in enumerate(cells):
        gaps = np.maximum(np.asarray(cell["gaps"], dtype=float), floor)
        jitter = i + 0.15 * rng.uniform(-1, 1, size=gaps.size)
        for verdict in markers:
            mask = np.array([v == verdict for v in cell["verdicts"]])
            if mask.any():
                names = {"local_minimum": "local minimum (global not certified)"}
                label = names.get(verdict, verdict.replace("_", " ")) if verdict not in seen else None
                seen.add(verdict)
                ax_gap.scatter(
                    jitter[mask],
                    gaps[mask],
                    marker=markers[verdict],
                    color=colors[verdict],
                    label=label,
                    s=22,
                )
    ax_gap.axhline(
        data["gap_tol"], color="gray", linestyle="--", label="gap tolerance (theory: 0 for wide nets)"
    )
    ax_gap.axvspan(-0.5, -0.5, color="none")
    for i, cell in enumerate(cells):
        if cell["arch"] == "bottleneck":
            ax_gap.axvspan(i - 0.5, i + 0.5, color="0.92", zorder=0)
    ax_gap.set_xticks(range(len(cells)))
    ax_gap.set_xticklabels([f"{c['loss']}\n{c['arch']}" for c in cells], fontsize=8)
    ax_gap.set_yscale("log")
    ax_gap.set_ylabel(f"optimality gap L(W) - min (loss units; < {floor:g} drawn at {floor:g})")
    ax_gap.set_title("certified restarts (shaded: bottleneck, outside the theorem)")
    ax_gap.legend(fontsize=8, loc="upper left")
    step = data["record_every"]
    groups = (
        ("cross_entropy/wide", "-", "tab:blue"),
        ("cross_entropy/bottleneck", "--", "tab:red"),
        ("squared/bottleneck", ":", "tab:purple"),
    )
    for key, style, color in groups:
        if key not in data["histories"]:
            continue
        for j, history in enumerate(data["histories"][key]):
            values = np.maximum(np.asarray(history, dtype=float), floor)
            steps = np.arange(values.size) * step
            ax_curve.plot(steps, values, style, color=color, alpha=0.6, label=key if j == 0 else None)
    ax_curve.set_yscale("log")
    ax_curve.set_xlabel("gradient-descent step (before L-BFGS polishing)")
    ax_curve.set_ylabel("loss - best value (loss units)")
    ax_curve.set_title("training curves of the restarts")
    ax_curve.legend(fontsize=8)
    return [save_figure(fig, figures_dir / "minima_gaps.png", tight_layout=True)]


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description="Random restarts on wide vs bottleneck deep linear nets, every converged point certified",
    paper="laurent",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
