"""Signal-propagation diagnostics of deep networks at initialisation, and what following them buys.

For each configuration :func:`dltheory.diagnose` measures q^l, c^l, the gradient growth chi per layer
and the Jacobian, compares them with the mean-field prediction (Poole et al. 2016; Schoenholz et al. 2017;
Xiao et al. 2018, section 2) and gives a verdict and a critical initialisation. The network is then
trained for a short budget (Adam) as initialised, and again after following ``report.recommendation``:

- a ``mlp_depth``-layer tanh MLP (Gaussian weights, sigma_b2 = 0.05) in the ordered (sigma_w2 = 1),
  critical (1.7610) and chaotic (3) phase;
- a deep :class:`~dltheory.nn.models.VanillaCNN` at its critical point with Gaussian vs delta-orthogonal
  kernels (Xiao et al. 2018: only the latter is dynamically isometric);
- a ReLU MLP at He initialisation (sigma_w2 = 2, sigma_b2 = 0: ReLU's only critical point).

Inputs are MNIST images (standardised); the diagnosis uses the first ``diagnose_batch`` training images.
Re-initialisations that the recommendation makes identical (every tanh MLP gets the same critical point)
are trained once. Each configuration's outcome is stored in the run's checkpoints, so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dltheory.core.figures import new_figure, save_figure
from dltheory.core.io import atomic_write_json, read_json
from dltheory.experiments._xiao_common import ImageData, image_data
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.nn.diagnose import DiagnosisReport, diagnose
from dltheory.nn.models import VanillaCNN
from dltheory.runner.runs import RunDir
from dltheory.runner.train import EpochSampler, accuracy_evaluator, train
from dltheory.signalprop import critical_sigma_w2

NAME = "signalprop-diagnostics"

MLP_SIGMA_B2 = 0.05


@dataclass(frozen=True)
class Config:
    mlp_depth: int = 200
    mlp_width: int = 128
    mlp_sigma_w2: tuple[float, ...] = (1.0, 3.0)  # ordered, chaotic; the critical value is added
    cnn_depth: int = 32
    cnn_channels: int = 16
    relu_depth: int = 50
    relu_width: int = 128
    diagnose_batch: int = 64
    nets: int = 4  # independent tanh MLPs averaged for the q^l, c^l comparison with mean field
    train_size: int = 5000
    test_size: int = 1000
    steps: int = 120
    batch_size: int = 64
    lr_mlp: float = 1e-4
    lr_cnn: float = 1e-3
    critical_tol: float = 0.05
    q_tolerance: float = 0.15
    c_tolerance: float = 0.1
    judge_training: bool = True
    min_gain: float = 0.2
    seed: int = 0


PROFILES = {
    "tiny": Config(
        mlp_depth=12,
        mlp_width=64,
        cnn_depth=6,
        cnn_channels=8,
        relu_depth=8,
        relu_width=64,
        diagnose_batch=16,
        nets=2,
        train_size=256,
        test_size=128,
        steps=4,
        batch_size=32,
        q_tolerance=0.3,
        c_tolerance=0.3,
        critical_tol=0.15,
        judge_training=False,
    ),
    "quick": Config(),
    "paper": Config(
        mlp_width=512,
        cnn_depth=1000,
        cnn_channels=64,
        relu_width=512,
        train_size=60000,
        test_size=10000,
        steps=2000,
        diagnose_batch=128,
    ),
}


# ------------------------------------------------------------------------------------ models


def tanh_mlp(config: Config, sigma_w2: float, generator: torch.Generator) -> nn.Sequential:
    return _mlp(config.mlp_depth, config.mlp_width, sigma_w2, MLP_SIGMA_B2, nn.Tanh, generator)


def relu_he_mlp(config: Config, generator: torch.Generator) -> nn.Sequential:
    """He (Kaiming normal) weights, variance 2 / fan_in, zero biases."""
    return _mlp(config.relu_depth, config.relu_width, 2.0, 0.0, nn.ReLU, generator)


def _mlp(
    depth: int, width: int, sigma_w2: float, sigma_b2: float, act: type[nn.Module], g: torch.Generator
) -> nn.Sequential:
    """784 -> width -> ... -> 10 (``depth`` Linear layers), weights N(0, sigma_w2 / fan_in), biases
    N(0, sigma_b2)."""
    layers: list[nn.Module] = [nn.Flatten()]
    for l in range(depth):
        linear = nn.Linear(784 if l == 0 else width, 10 if l == depth - 1 else width)
        with torch.no_grad():
            linear.weight.normal_(0.0, math.sqrt(sigma_w2 / linear.in_features), generator=g)
            linear.bias.normal_(0.0, math.sqrt(sigma_b2), generator=g)
        layers += [linear, act()]
    return nn.Sequential(*layers[:-1])


def _configurations(config: Config) -> list[dict[str, Any]]:
    critical = float(critical_sigma_w2("tanh", MLP_SIGMA_B2))
    ordered, chaotic = sorted(config.mlp_sigma_w2)
    out: list[dict[str, Any]] = [
        {"name": f"mlp-{phase}", "family": "mlp", "expected": phase, "sigma_w2": sw2}
        for phase, sw2 in (("ordered", ordered), ("critical", critical), ("chaotic", chaotic))
    ]
    out += [
        {"name": f"cnn-{init}", "family": "cnn", "init": init} for init in ("gaussian", "delta_orthogonal")
    ]
    out.append({"name": "relu-he", "family": "relu", "expected": "critical"})
    return out


def _build(spec: dict[str, Any], config: Config, generator: torch.Generator) -> nn.Module:
    if spec["family"] == "mlp":
        return tanh_mlp(config, spec["sigma_w2"], generator)
    if spec["family"] == "relu":
        return relu_he_mlp(config, generator)
    return VanillaCNN(config.cnn_depth, config.cnn_channels, init=spec["init"], generator=generator)


# ------------------------------------------------------------------------------------ one configuration


def _curves(report: DiagnosisReport) -> dict[str, Any]:
    return {
        "q": report.q.tolist(),
        "q_pred": report.predicted.q.tolist(),
        "c": report.c.tolist(),
        "c_pred": report.predicted.c.tolist(),
        "chi": report.chi_1.tolist(),
        "chi_pred": report.predicted.chi_1.tolist(),
        "grad_sq": report.grad_sq.tolist(),
        "grad_sq_pred": report.predicted.grad_sq.tolist(),
        "segments": [list(s) for s in report.segments],
        "summary": report.summary(),
        "notes": report.notes,
        "chi_bulk": report.chi_1_bulk,
        "phase": report.phase,
        "chi_theory": None if report.predicted.theory is None else report.predicted.theory.chi_1,
        "jacobian_mean_sq": None if report.jacobian is None else report.jacobian.mean_sq,
    }


def _train(model: nn.Module, lr: float, data: ImageData, config: Config, run_dir: RunDir, name: str) -> float:
    sampler = EpochSampler(len(data.y_train), config.batch_size, seed=config.seed)

    def get_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(sampler.indices(step))
        return data.x_train[idx], data.y_train[idx]

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    outcome = train(
        model,
        optimizer,
        get_batch,
        F.cross_entropy,
        steps=config.steps,
        run_dir=run_dir,
        name=name,
        evaluate=accuracy_evaluator(data.x_test, data.y_test),
        seed=config.seed,
        log_every=0,
    )
    if outcome.status != "completed":
        return float("nan")
    return float(outcome.final.get("test_accuracy", float("nan")))


def _mean_field_check(
    spec: dict[str, Any], config: Config, probe: torch.Tensor, first: DiagnosisReport
) -> dict[str, list[float]]:
    """q^l and c^l, measured and predicted, averaged over ``config.nets`` independent networks (the first is
    the one trained)."""
    reports = [first]
    for k in range(1, config.nets):
        model = _build(spec, config, torch.Generator().manual_seed(config.seed + 1000 * k))
        reports.append(diagnose(model, probe, jacobian=False, seed=config.seed))
    return {
        key: np.mean(
            [getattr(r, attr) if owner == "m" else getattr(r.predicted, attr) for r in reports], 0
        ).tolist()
        for key, owner, attr in (("q", "m", "q"), ("q_pred", "p", "q"), ("c", "m", "c"), ("c_pred", "p", "c"))
    }


def _run_one(
    spec: dict[str, Any], config: Config, data: ImageData, run_dir: RunDir, trained_after: dict[str, float]
) -> dict[str, Any]:
    cached = run_dir.checkpoints / f"{spec['name']}.json"
    if cached.exists():
        outcome = read_json(cached)
        trained_after.setdefault(outcome["after_key"], outcome["accuracy_after"])
        return outcome
    generator = torch.Generator().manual_seed(config.seed)
    model = _build(spec, config, generator)
    probe = data.x_train[: config.diagnose_batch]
    lr = config.lr_cnn if spec["family"] == "cnn" else config.lr_mlp
    before = diagnose(model, probe, critical_tol=config.critical_tol, seed=config.seed)
    accuracy_before = _train(model, lr, data, config, run_dir, f"{spec['name']}-before")
    recommendation = before.recommendation
    assert recommendation is not None, f"{spec['name']}: the theory should cover this vanilla network"
    fresh = _build(spec, config, torch.Generator().manual_seed(config.seed))
    recommendation.apply(fresh, generator=torch.Generator().manual_seed(config.seed + 1))
    after = diagnose(fresh, probe, critical_tol=config.critical_tol, seed=config.seed)
    after_key = f"{spec['family']}:{recommendation.call}"
    if after_key not in trained_after:
        trained_after[after_key] = _train(fresh, lr, data, config, run_dir, f"{spec['name']}-after")
    outcome = {
        **spec,
        "mean_field_check": _mean_field_check(spec, config, probe, before)
        if spec["family"] == "mlp"
        else None,
        "before": _curves(before),
        "after": _curves(after),
        "recommendation": recommendation.to_dict(),
        "accuracy_before": accuracy_before,
        "accuracy_after": trained_after[after_key],
        "after_key": after_key,
    }
    atomic_write_json(cached, outcome)
    run_dir.log_metrics(
        {
            "config": spec["name"],
            "phase": before.phase,
            "chi": before.chi_1_bulk,
            "phase_after": after.phase,
            "chi_after": after.chi_1_bulk,
            "accuracy_before": accuracy_before,
            "accuracy_after": trained_after[after_key],
        }
    )
    return outcome


# ------------------------------------------------------------------------------------ claims


def _deviation(measured: list[float], predicted: list[float], *, relative: bool, rms: bool) -> float:
    """Root-mean-square or largest deviation over the hidden layers (the 10-unit read-out is left out: its
    q is an average over 10 units only)."""
    m, p = np.asarray(measured[:-1], dtype=float), np.asarray(predicted[:-1], dtype=float)
    ok = np.isfinite(m) & np.isfinite(p)
    dev = np.abs(m[ok] / p[ok] - 1) if relative else np.abs(m[ok] - p[ok])
    if not dev.size:
        return float("nan")
    return float(np.sqrt(np.mean(dev**2))) if rms else float(dev.max())


def _theory_claims(o: dict[str, Any], config: Config) -> list[Claim]:
    b, tol = o["before"], config.critical_tol
    name = o["name"]
    claims = []
    if "expected" in o:
        note = f"measured chi = {b['chi_bulk']:.4g}"
        claims.append(
            Claim(
                f"{name}: phase verdict", o["expected"], b["phase"], None, b["phase"] == o["expected"], note
            )
        )
    if o["family"] == "cnn":
        note = (
            "reported: at finite width Gaussian kernels lose ~1/channels per layer in log-norm, "
            "delta-orthogonal ones preserve norms exactly"
        )
        claims.append(
            Claim(
                f"{name}: measured chi (mean field {b['chi_theory']:.4g})",
                1.0,
                round(b["chi_bulk"], 4),
                None,
                None,
                note,
            )
        )
        return claims
    diff = abs(b["chi_bulk"] - b["chi_theory"])
    note = "geometric mean of |g^l|^2 / |g^(l+1)|^2 over the settled layers"
    claims.append(
        Claim(
            f"{name}: measured chi vs mean-field chi_1",
            round(b["chi_theory"], 4),
            round(b["chi_bulk"], 4),
            tol,
            bool(diff <= tol),
            note,
        )
    )
    if o["family"] == "relu":
        q_dev = _deviation(b["q"], b["q_pred"], relative=True, rms=False)
        note = (
            "reported: a finite ReLU net's log q^l fluctuates around the mean field with variance ~5 depth / "
            "width (Hanin & Nica 2019)"
        )
        claims.append(
            Claim(f"{name}: q^l max relative deviation from mean field", 0.0, q_dev, None, None, note)
        )
        return claims
    check = o["mean_field_check"]
    for key, relative, tolerance in (("q", True, config.q_tolerance), ("c", False, config.c_tolerance)):
        rms = _deviation(check[key], check[f"{key}_pred"], relative=relative, rms=True)
        worst = _deviation(check[key], check[f"{key}_pred"], relative=relative, rms=False)
        what = "relative" if relative else "absolute"
        note = (
            f"mean of {config.nets} nets, hidden layers (max {worst:.3g}); finite-width fluctuation "
            f"~sqrt(2 / width) / sqrt(nets) = {math.sqrt(2 / config.mlp_width / config.nets):.3g} per layer"
        )
        claims.append(
            Claim(
                f"{name}: {key}^l rms {what} deviation from mean field",
                0.0,
                rms,
                tolerance,
                bool(rms <= tolerance),
                note,
            )
        )
    return claims


def _claims(outcomes: list[dict[str, Any]], config: Config) -> list[Claim]:
    claims = []
    for o in outcomes:
        claims += _theory_claims(o, config)
        chi_after = o["after"]["chi_bulk"]
        claims.append(
            Claim(
                f"{o['name']}: after the recommendation, measured chi",
                1.0,
                round(chi_after, 4),
                config.critical_tol,
                bool(abs(chi_after - 1) <= config.critical_tol),
                o["recommendation"]["call"],
            )
        )
        judged = config.judge_training and o.get("expected") in ("ordered", "chaotic")
        gain = o["accuracy_after"] - o["accuracy_before"]
        claims.append(
            Claim(
                f"{o['name']}: test accuracy before -> after following the recommendation",
                f">= +{config.min_gain}" if judged else None,
                f"{o['accuracy_before']:.3f} -> {o['accuracy_after']:.3f}",
                config.min_gain if judged else None,
                bool(gain >= config.min_gain) if judged else None,
                f"{config.steps} Adam steps",
            )
        )
    return claims


def run(config: Config, run_dir: RunDir) -> Result:
    data = image_data("mnist", config.train_size, config.test_size)
    trained_after: dict[str, float] = {}
    outcomes = [_run_one(spec, config, data, run_dir, trained_after) for spec in _configurations(config)]
    notes = [
        "verdicts come from the measured gradient growth; the mean-field chi_1 is that of the fixed point at "
        "the layers' median sigma_w2, sigma_b2 read off the weights",
        "the recommendation re-initialises with orthogonal (delta-orthogonal for CNNs) weights at the "
        "small-q* end of the critical line (sigma_b2 = 2.01e-5 for tanh, 0 for ReLU); tanh MLPs that share "
        "it are trained once after re-initialisation",
        f"training: {config.steps} Adam steps, batch {config.batch_size}, on the first {config.train_size} "
        f"MNIST training images; accuracy on the first {config.test_size} test images",
    ]
    return Result(NAME, _claims(outcomes, config), {"configs": outcomes, "nets": config.nets}, notes)


# ------------------------------------------------------------------------------------ figures


def _panel(ax: Any, curves: dict[str, Any], key: str, color: str, label: str, log: bool = False) -> None:
    measured = np.asarray(curves[key], dtype=float)
    predicted = np.asarray(curves[f"{key}_pred"], dtype=float)
    if key == "chi":  # only links inside a covered run (a pooling link's ratio is not a per-layer growth)
        inside = np.zeros(measured.size, dtype=bool)
        for start, stop in curves["segments"]:
            inside[start:stop] = True
        measured = np.where(inside, measured, np.nan)
    x = np.arange(1, measured.size + 1)
    ax.plot(x, measured, "o", ms=2.5, color=color, alpha=0.8, label=f"{label} measured")
    ax.plot(x, predicted, "-", lw=1.2, color=color, label=f"{label} mean field")
    if log:
        ax.set_yscale("log")


def plot(result: Result, figures_dir: Path) -> list[Path]:
    configs = {o["name"]: o for o in result.data["configs"]}
    colors = {"ordered": "tab:blue", "critical": "tab:green", "chaotic": "tab:red"}
    fig, axes = new_figure(2, 3, figsize=(17, 9))
    for o in configs.values():
        if o["family"] != "mlp":
            continue
        color = colors[o["expected"]]
        label = f"{o['expected']} (sigma_w2 = {o['sigma_w2']:.3g})"
        _panel(axes[0, 0], o["mean_field_check"], "q", color, label, log=True)
        _panel(axes[0, 1], o["mean_field_check"], "c", color, label)
        _panel(axes[0, 2], o["before"], "chi", color, label, log=True)
    axes[0, 0].set_ylabel("q^l: mean squared pre-activation")
    axes[0, 1].set_ylabel("c^l: correlation of two inputs")
    axes[0, 2].set_ylabel("chi^l = |g^l|^2 / |g^(l+1)|^2")
    for ax in axes[0]:
        ax.set_xlabel("layer l (tanh MLP)")
        ax.legend(fontsize=6)
    axes[0, 2].axhline(1.0, ls="--", color="0.4", lw=1)
    nets = result.data.get("nets", 1)
    axes[0, 0].set_title(f"tanh MLP, sigma_b2 = 0.05: length (mean of {nets} nets)")
    axes[0, 1].set_title(f"correlation (mean of {nets} nets)")
    axes[0, 2].set_title("gradient growth per layer")

    for name, color in (
        ("cnn-gaussian", "tab:orange"),
        ("cnn-delta_orthogonal", "tab:purple"),
        ("relu-he", "tab:brown"),
    ):
        o = configs[name]
        _panel(axes[1, 0], o["before"], "q", color, name, log=True)
        _panel(axes[1, 1], o["before"], "chi", color, name, log=True)
    axes[1, 1].axhline(1.0, ls="--", color="0.4", lw=1)
    axes[1, 0].set_ylabel("q^l")
    axes[1, 1].set_ylabel("chi^l per layer")
    for ax in axes[1, :2]:
        ax.set_xlabel("layer l")
        ax.legend(fontsize=6)
    axes[1, 0].set_title("VanillaCNN (Gaussian vs delta-orthogonal) and ReLU He: length")
    axes[1, 1].set_title("gradient growth per layer")

    names = list(configs)
    before = [configs[n]["accuracy_before"] for n in names]
    after = [configs[n]["accuracy_after"] for n in names]
    pos = np.arange(len(names))
    axes[1, 2].bar(pos - 0.2, before, 0.4, label="as initialised", color="0.6")
    axes[1, 2].bar(pos + 0.2, after, 0.4, label="after report.recommendation", color="tab:green")
    axes[1, 2].axhline(0.1, ls=":", color="k", lw=1, label="chance")
    axes[1, 2].set_xticks(pos, names, rotation=30, ha="right", fontsize=7)
    axes[1, 2].set_ylabel("MNIST test accuracy")
    axes[1, 2].set_ylim(0, 1)
    axes[1, 2].set_title("short training budget")
    axes[1, 2].legend(fontsize=7)
    return [save_figure(fig, Path(figures_dir) / "diagnostics.png", tight_layout=True)]


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description=(
        "dltheory.diagnose on deep tanh MLPs (3 phases), vanilla CNNs (Gaussian vs delta-orthogonal) and "
        "a ReLU net: measured vs mean field, and accuracy before/after following the recommendation"
    ),
    paper="xiao",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
