"""Residual mean field vs Monte Carlo: deep residual MLPs and CNNs at initialisation against the
recursions of :func:`dltheory.signalprop.residual_propagation` (Yang & Schoenholz 2017).

For tanh and ReLU, reduced (``h + W phi(h)``) and two-layer (``h + V phi(W phi(h))``) blocks, without a
normaliser and with pre-LayerNorm, ``nets`` random :class:`~dltheory.nn.resnets.ResidualMLP` s of width
``width`` and ``depth`` blocks are measured by :func:`dltheory.diagnose` (the stream second moment q, the
correlation c of input pairs, the squared gradient along the stream under a random read-out) and compared
with the recursion started from the measured q and c entering the first block (with the width's
normaliser projection factor). Conv ResNets (:class:`~dltheory.nn.resnets.ResNet`, circular padding) are
compared the same way. The depth laws are drawn on the axes that make them straight lines: q on
log-log axes; ``log G(L)`` against sqrt(L) for tanh (stretched exponential), against L for ReLU
(exponential) and against log L with pre-LayerNorm (power law).

Claims are judged over the first ``min(depth, width / 8)`` blocks, where finite-width corrections (of
relative size ~depth / width) stay small; the deviations at full depth are reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dltheory.core.figures import new_figure, save_figure
from dltheory.core.io import atomic_write_json, read_json
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.nn.diagnose import diagnose
from dltheory.nn.resnets import ResidualMLP, ResNet
from dltheory.runner.runs import RunDir
from dltheory.signalprop import residual_asymptotics, residual_propagation

NAME = "signalprop-residual"
SIGMA_W2 = {"tanh": 1.0, "relu": 2.0}
SIGMA_B2 = 0.05
#: claims are judged over the first width / 8 blocks, where finite-width corrections (relative size
#: ~ depth / width) stay below the tolerances; deviations at full depth are reported
JUDGE_DEPTH_FRACTION = 8


@dataclass(frozen=True)
class Config:
    width: int = 512
    depth: int = 128
    nets: int = 4
    batch: int = 32
    activations: tuple[str, ...] = ("tanh", "relu")
    blocks: tuple[str, ...] = ("reduced", "two_layer")
    norms: tuple[str, ...] = ("none", "layer")
    alpha_tanh: float = 1.0
    alpha_relu: float = 0.2
    cnn_channels: int = 64
    cnn_depth: int = 32
    cnn_size: int = 8
    q_tolerance: float = 0.05
    c_tolerance: float = 0.03
    growth_tolerance: float = 0.10
    seed: int = 0


PROFILES = {
    "tiny": Config(
        width=64,
        depth=8,
        nets=2,
        batch=8,
        blocks=("reduced",),
        cnn_channels=16,
        cnn_depth=4,
        q_tolerance=0.3,
        c_tolerance=0.2,
        growth_tolerance=0.5,
    ),
    "quick": Config(),
    "paper": Config(width=512, depth=512, nets=4, cnn_channels=128, cnn_depth=128),
}


def _alpha(config: Config, activation: str) -> float:
    return config.alpha_tanh if activation == "tanh" else config.alpha_relu


def _cases(config: Config) -> list[dict[str, Any]]:
    cases = [
        {"family": "mlp", "activation": a, "block": b, "norm": n}
        for a in config.activations
        for b in config.blocks
        for n in config.norms
    ]
    cases += [
        {"family": "cnn", "activation": a, "block": "two_layer", "norm": "none"} for a in config.activations
    ]
    for case in cases:
        case["name"] = f"{case['family']}-{case['activation']}-{case['block']}-{case['norm']}"
    return cases


def _model(case: dict[str, Any], config: Config, seed: int) -> tuple[torch.nn.Module, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    activation, alpha = case["activation"], _alpha(config, case["activation"])
    if case["family"] == "cnn":
        model: torch.nn.Module = ResNet(
            3,
            config.cnn_channels,
            config.cnn_depth,
            activation=activation,
            alpha=alpha,
            sigma_w2=SIGMA_W2[activation],
            sigma_b2=SIGMA_B2,
            generator=g,
        )
        return model, torch.randn(config.batch, 3, config.cnn_size, config.cnn_size, generator=g)
    model = ResidualMLP(
        config.width,
        config.width,
        config.depth,
        activation=activation,
        block=case["block"],
        norm=None if case["norm"] == "none" else case["norm"],
        alpha=alpha,
        sigma_w2=SIGMA_W2[activation],
        sigma_b2=SIGMA_B2,
        generator=g,
    )
    return model, torch.randn(config.batch, config.width, generator=g)


def _measure(case: dict[str, Any], config: Config) -> dict[str, Any]:
    q, c, g = [], [], []
    for k in range(config.nets):
        model, x = _model(case, config, config.seed + 1000 * k)
        with torch.no_grad():
            report = diagnose(model, x, jacobian=False, seed=config.seed + k)
        res = report.residual
        assert res is not None, f"{case['name']}: diagnose found no residual stack"
        q.append(res.q)
        c.append(res.c)
        g.append(res.grad_sq[0] / res.grad_sq)  # growth of the first L blocks
    q_arr, c_arr, g_arr = np.array(q), np.array(c), np.array(g)
    depth = q_arr.shape[1] - 1
    width = config.cnn_channels if case["family"] == "cnn" else config.width
    theory = residual_propagation(
        case["activation"],
        SIGMA_W2[case["activation"]],
        SIGMA_B2,
        depth,
        float(q_arr[:, 0].mean()),
        float(np.clip(c_arr[:, 0].mean(), -1, 1)),
        alpha=_alpha(config, case["activation"]),
        block=case["block"],
        norm=None if case["norm"] == "none" else case["norm"],
        width=width,
    )
    law = None
    try:
        asym = residual_asymptotics(
            case["activation"],
            SIGMA_W2[case["activation"]],
            SIGMA_B2,
            alpha=_alpha(config, case["activation"]),
            block=case["block"],
            norm=None if case["norm"] == "none" else case["norm"],
            q0=float(q_arr[:, 0].mean()),
        )
        law = {
            "grad_law": asym.grad_law,
            "grad_rate": asym.grad_rate,
            "q_law": asym.q_law,
            "q_rate": asym.q_rate,
        }
    except ValueError:
        pass

    def stats(values: np.ndarray) -> tuple[list[float], list[float]]:
        se = (
            values.std(0, ddof=1) / math.sqrt(values.shape[0])
            if values.shape[0] > 1
            else np.zeros(values.shape[1])
        )
        return values.mean(0).tolist(), se.tolist()

    (qm, qse), (cm, cse), (gm, gse) = stats(q_arr), stats(c_arr), stats(g_arr)
    return {
        **case,
        "width": width,
        "depth": depth,
        "q": qm,
        "q_se": qse,
        "c": cm,
        "c_se": cse,
        "growth": gm,
        "growth_se": gse,
        "q_theory": theory.q.tolist(),
        "c_theory": theory.c.tolist(),
        "growth_theory": theory.growth.tolist(),
        "law": law,
    }


def _claims(o: dict[str, Any], config: Config) -> list[Claim]:
    judge = min(o["depth"], max(1, o["width"] // JUDGE_DEPTH_FRACTION))
    claims = []
    for key, tol, relative in (
        ("q", config.q_tolerance, True),
        ("c", config.c_tolerance, False),
        ("growth", config.growth_tolerance, True),
    ):
        m, se, th = np.array(o[key]), np.array(o[f"{key}_se"]), np.array(o[f"{key}_theory"])
        err = np.abs(m / th - 1) if relative else np.abs(m - th)
        se = se / np.abs(th) if relative else se
        worst = int(np.argmax(err[: judge + 1]))
        what = "relative" if relative else "absolute"
        note = (
            f"worst over blocks <= {judge} at block {worst} (standard error {se[worst]:.3g} over "
            f"{config.nets} nets); at full depth {o['depth']}: {err[-1]:.3g}"
        )
        claims.append(
            Claim(
                f"{o['name']}: {key} max {what} deviation from the recursion",
                0.0,
                float(err[worst]),
                tol,
                bool(err[worst] <= tol),
                note,
            )
        )
    law = o.get("law")
    if law is not None and o["depth"] >= 16:
        claims.append(
            Claim(
                f"{o['name']}: depth law of the gradient growth",
                f"{law['grad_law']} (rate {law['grad_rate']:.4g})",
                f"log G({o['depth']}) = {math.log(max(o['growth'][-1], 1e-300)):.4g}",
                None,
                None,
                "leading-order law of residual_asymptotics; the figure draws it on straightening axes",
            )
        )
    return claims


def run(config: Config, run_dir: RunDir) -> Result:
    outcomes = []
    for case in _cases(config):
        cached = run_dir.checkpoints / f"{case['name']}.json"
        if cached.exists():
            outcomes.append(read_json(cached))
            continue
        outcome = _measure(case, config)
        atomic_write_json(cached, outcome)
        run_dir.log_metrics(
            {"case": case["name"], "q_end": outcome["q"][-1], "growth_end": outcome["growth"][-1]}
        )
        outcomes.append(outcome)
    claims = [claim for o in outcomes for claim in _claims(o, config)]
    notes = [
        f"ResidualMLP width {config.width}, depth {config.depth}; ResNet {config.cnn_channels} channels, "
        f"depth {config.cnn_depth}, {config.cnn_size}x{config.cnn_size} inputs, circular padding; "
        f"{config.nets} nets each",
        f"sigma_w2 = 1 (tanh), 2 (ReLU), sigma_b2 = {SIGMA_B2}; alpha = {config.alpha_tanh} (tanh), "
        f"{config.alpha_relu} (ReLU, keeps q finite in float32)",
        "the recursion starts from the measured q and c entering the first block; growth G(L) = "
        "|g_0|^2 / |g_L|^2",
    ]
    return Result(NAME, claims, {"cases": outcomes}, notes)


# ------------------------------------------------------------------------------------ figures


def _x_for_law(o: dict[str, Any], L: np.ndarray) -> tuple[np.ndarray, str, str]:
    if o["norm"] != "none":
        return np.log(L), "log L", "power law: straight in log G vs log L"
    if o["activation"] == "tanh":
        return np.sqrt(L), "sqrt(L)", "stretched exponential: straight in log G vs sqrt(L)"
    return L, "L", "exponential: straight in log G vs L"


def plot(result: Result, figures_dir: Path) -> list[Path]:
    cases = result.data["cases"]
    groups = [("mlp", "none"), ("mlp", "layer"), ("cnn", "none")]
    groups = [gr for gr in groups if any(o["family"] == gr[0] and o["norm"] == gr[1] for o in cases)]
    fig, axes = new_figure(len(groups), 4, figsize=(21, 4.6 * len(groups)), squeeze=False)
    colors = {
        ("tanh", "reduced"): "tab:blue",
        ("tanh", "two_layer"): "tab:cyan",
        ("relu", "reduced"): "tab:red",
        ("relu", "two_layer"): "tab:orange",
    }
    for row, (family, norm) in enumerate(groups):
        ax_q, ax_c = axes[row][0], axes[row][1]
        kind = "ResNet (conv)" if family == "cnn" else "residual MLP"
        title = f"{kind}, {'pre-LayerNorm' if norm == 'layer' else 'no norm'}"
        for o in [o for o in cases if o["family"] == family and o["norm"] == norm]:
            color = colors[(o["activation"], o["block"])]
            label = f"{o['activation']} {o['block']}"
            L = np.arange(len(o["q"]))
            ax_q.errorbar(
                L[1:],
                np.array(o["q"])[1:],
                np.array(o["q_se"])[1:],
                fmt="o",
                ms=2.5,
                color=color,
                alpha=0.7,
                label=f"{label}: Monte Carlo",
            )
            ax_q.plot(
                L[1:], np.array(o["q_theory"])[1:], "-", color=color, lw=1.2, label=f"{label}: recursion"
            )
            ax_c.errorbar(L, o["c"], o["c_se"], fmt="o", ms=2.5, color=color, alpha=0.7)
            ax_c.plot(L, o["c_theory"], "-", color=color, lw=1.2)
            ax_g = axes[row][2 if o["activation"] == "tanh" else 3]
            x, xlabel, law = _x_for_law(o, L[1:])
            measured = np.log(np.maximum(np.array(o["growth"])[1:], 1e-300))
            ax_g.plot(x, measured, "o", ms=2.5, color=color, alpha=0.7, label=f"{label}: Monte Carlo")
            ax_g.plot(
                x,
                np.log(np.array(o["growth_theory"])[1:]),
                "-",
                color=color,
                lw=1.2,
                label=f"{label}: recursion",
            )
            ax_g.set_xlabel(f"{xlabel} (L = number of blocks)")
            ax_g.set_title(f"{title}, {o['activation']}: {law.split(':')[0]}", fontsize=10)
        ax_q.set_xscale("log")
        ax_q.set_yscale("log")
        ax_q.set_xlabel("block l")
        ax_q.set_ylabel("q_l: mean squared stream activation")
        ax_q.set_title(f"{title}: length (log-log)", fontsize=10)
        ax_q.legend(fontsize=6)
        ax_c.set_xscale("log")
        ax_c.set_xlabel("block l")
        ax_c.set_ylabel("c_l: correlation of two inputs")
        ax_c.set_title(f"{title}: correlation", fontsize=10)
        for ax_g in axes[row][2:]:
            ax_g.set_ylabel("log G(L), G = |g_0|^2 / |g_L|^2")
            ax_g.legend(fontsize=6)
    fig.tight_layout()
    return [save_figure(fig, Path(figures_dir) / "residual_meanfield.png")]


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description=(
        "residual MLPs and CNNs (tanh, ReLU; reduced and two-layer blocks; with and without LayerNorm) vs "
        "the residual mean-field recursions: q, c and gradient growth with depth"
    ),
    paper="yang",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
