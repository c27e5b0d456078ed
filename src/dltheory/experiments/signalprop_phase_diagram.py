"""Order-to-chaos phase diagram of deep fully-connected networks (Poole et al. 2016; Schoenholz et al. 2017;
the mean-field background of Xiao et al. 2018, section 2).

Computes, with :func:`dltheory.signalprop.phase_diagram`, the correlation depth scale xi_c over a
(sigma_w2, sigma_b2) grid for tanh with the critical line chi_1 = 1, and the critical lines of several
activations. Checks: the tanh anchor (sigma_b2 = 0.05 critical at sigma_w2 = 1.7610, q* = 0.5700), the
small-q* end of the tanh line (sigma_w2 - 1 ~ 2 q*), and finite-width Monte Carlo networks (width
``width``) whose q^l and c^l trajectories must follow the mean-field maps at three points (ordered,
critical, chaotic).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltheory.core.figures import new_figure, save_figure
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.runner.runs import RunDir
from dltheory.signalprop import covariance_map, critical_line, critical_sigma_w2, phase_diagram

NAME = "signalprop-phase-diagram"


@dataclass(frozen=True)
class Config:
    grid: int = 200
    sigma_w2_max: float = 4.0
    sigma_b2_max: float = 0.3
    activations: tuple[str, ...] = ("tanh", "erf", "hard_tanh", "gelu", "silu")
    line_points: int = 60
    width: int = 2000
    depth: int = 15
    nets: int = 8
    q_tolerance: float = 0.05
    c_tolerance: float = 0.05
    seed: int = 0


PROFILES = {
    "tiny": Config(
        grid=30,
        activations=("tanh", "erf"),
        line_points=10,
        width=300,
        depth=5,
        nets=2,
        q_tolerance=0.25,
        c_tolerance=0.2,
    ),
    "quick": Config(),
    "paper": Config(grid=400, line_points=120, width=2000, depth=30, nets=5),
}


def _simulate(sw2: float, sb2: float, config: Config, rng: np.random.Generator) -> dict[str, list[float]]:
    """Mean over nets of q^l (input a) and c^l of two inputs through random tanh nets, and the theory."""
    width, depth = config.width, config.depth
    x = rng.standard_normal((2, width))
    x[1] = 0.2 * x[0] + np.sqrt(1 - 0.04) * x[1]
    q_sim = np.zeros((config.nets, depth + 1))
    c_sim = np.zeros((config.nets, depth + 1))
    for n in range(config.nets):
        h = x.copy()
        for layer in range(depth + 1):
            qa, qb = np.mean(h * h, axis=1)
            q_sim[n, layer], c_sim[n, layer] = qa, np.mean(h[0] * h[1]) / np.sqrt(qa * qb)
            w = rng.standard_normal((width, width)) * np.sqrt(sw2 / width)
            h = np.tanh(h) @ w.T + rng.standard_normal(width) * np.sqrt(sb2)
    qa, qb = np.mean(x * x, axis=1)
    qab = float(np.mean(x[0] * x[1]))
    q_th, c_th = [float(qa)], [qab / float(np.sqrt(qa * qb))]
    for _ in range(depth):
        new_a, new_ab, new_b = covariance_map("tanh", qa, qab, qb, sw2, sb2)
        qa, qab, qb = float(new_a), float(new_ab), float(new_b)
        q_th.append(qa)
        c_th.append(qab / float(np.sqrt(qa * qb)))
    return {
        "q_sim": q_sim.mean(0).tolist(),
        "c_sim": c_sim.mean(0).tolist(),
        "q_theory": q_th,
        "c_theory": c_th,
    }


def run(config: Config, run_dir: RunDir) -> Result:
    rng = np.random.default_rng(config.seed)
    w = np.linspace(0.5, config.sigma_w2_max, config.grid)
    b = np.linspace(0.0, config.sigma_b2_max, config.grid)
    diagram = phase_diagram("tanh", w, b)
    run_dir.log_metrics({"stage": "phase_diagram", "points": int(w.size * b.size)})
    b_line = np.linspace(0.0, config.sigma_b2_max, config.line_points)
    lines = {}
    for name in config.activations:
        line = critical_line(name, b_line)
        lines[name] = {
            "sigma_w2": line.sigma_w2.tolist(),
            "sigma_b2": b_line.tolist(),
            "q_star": line.q_star.tolist(),
        }
    anchor = critical_line("tanh", 0.05)
    small = critical_line("tanh", np.array([1e-7]))
    claims = [
        Claim(
            "tanh critical sigma_w2 at sigma_b2 = 0.05",
            1.7610,
            round(float(anchor.sigma_w2), 6),
            5e-5,
            bool(abs(float(anchor.sigma_w2) - 1.7610) < 5e-5),
            "docs/xiao/theory.md anchor, 4 decimals",
        ),
        Claim(
            "tanh q* on the critical line at sigma_b2 = 0.05",
            0.5700,
            round(float(anchor.q_star), 6),
            5e-5,
            bool(abs(float(anchor.q_star) - 0.5700) < 5e-5),
            "docs/xiao/theory.md anchor, 4 decimals",
        ),
        Claim(
            "small-q* end of the tanh line: (sigma_w2 - 1) / q*",
            2.0,
            float((small.sigma_w2[0] - 1) / small.q_star[0]),
            0.05,
            bool(abs((small.sigma_w2[0] - 1) / small.q_star[0] - 2) < 0.05),
            "sigma_b2 = 1e-7",
        ),
        Claim(
            "xi_c finite off the critical line, inf on it, never NaN",
            "no NaN",
            int(np.isnan(diagram.xi_c).sum()),
            0,
            bool(not np.isnan(diagram.xi_c).any()),
        ),
    ]
    sb2 = 0.05
    sw2c = float(critical_sigma_w2("tanh", sb2))
    simulations = {}
    for label, sw2 in (("ordered", 0.6 * sw2c), ("critical", sw2c), ("chaotic", 1.8 * sw2c)):
        sim = _simulate(sw2, sb2, config, rng)
        simulations[label] = {"sigma_w2": sw2, "sigma_b2": sb2, **sim}
        q_dev = float(np.max(np.abs(np.array(sim["q_sim"]) / np.array(sim["q_theory"]) - 1)))
        c_dev = float(np.max(np.abs(np.array(sim["c_sim"]) - np.array(sim["c_theory"]))))
        claims.append(
            Claim(
                f"Monte Carlo q^l ({label}, width {config.width}): max relative deviation",
                0.0,
                q_dev,
                config.q_tolerance,
                q_dev <= config.q_tolerance,
                f"mean of {config.nets} random nets, {config.depth} layers",
            )
        )
        claims.append(
            Claim(
                f"Monte Carlo c^l ({label}, width {config.width}): max absolute deviation",
                0.0,
                c_dev,
                config.c_tolerance,
                c_dev <= config.c_tolerance,
            )
        )
        run_dir.log_metrics({"stage": "monte_carlo", "phase": label, "q_dev": q_dev, "c_dev": c_dev})
    xi = np.where(np.isfinite(diagram.xi_c), diagram.xi_c, np.nan)
    data = {
        "sigma_w2": w.tolist(),
        "sigma_b2": b.tolist(),
        "xi_c": xi.tolist(),
        "chi_1": diagram.chi_1.tolist(),
        "q_star": diagram.q_star.tolist(),
        "lines": lines,
        "simulations": simulations,
    }
    notes = [
        "xi_c is +inf exactly on the critical line; the heat-map data store it as NaN for plotting",
        "Monte Carlo: fully connected tanh nets, weights N(0, sigma_w2 / width), biases N(0, sigma_b2)",
    ]
    return Result(NAME, claims, data, notes)


def plot(result: Result, figures_dir: Path) -> list[Path]:
    data = result.data
    w, b = np.array(data["sigma_w2"]), np.array(data["sigma_b2"])
    xi = np.array(data["xi_c"], dtype=float)
    fig, (ax_h, ax_l, ax_m) = new_figure(1, 3, figsize=(16, 4.6))
    mesh = ax_h.pcolormesh(w, b, np.log10(np.clip(xi.T, 1e-1, 1e4)), shading="auto", cmap="viridis")
    fig.colorbar(mesh, ax=ax_h, label="log10 xi_c (layers)")
    tanh = data["lines"]["tanh"]
    ax_h.plot(tanh["sigma_w2"], tanh["sigma_b2"], "w--", lw=1.5, label="critical line chi_1 = 1 (theory)")
    ax_h.set_xlim(w.min(), w.max())
    ax_h.set_xlabel("sigma_w^2 (weight variance x fan-in)")
    ax_h.set_ylabel("sigma_b^2 (bias variance)")
    ax_h.set_title("tanh: correlation depth scale xi_c")
    ax_h.legend(fontsize=7, loc="upper left")
    for name, line in data["lines"].items():
        ax_l.plot(line["sigma_w2"], line["sigma_b2"], label=name)
    ax_l.plot([2.0], [0.0], "k*", ms=10, label="relu (single critical point)")
    ax_l.set_xlim(w.min(), w.max())
    ax_l.set_xlabel("sigma_w^2")
    ax_l.set_ylabel("sigma_b^2")
    ax_l.set_title("critical lines (ordered to the left, chaotic to the right)")
    ax_l.legend(fontsize=7)
    colors = {"ordered": "tab:blue", "critical": "tab:green", "chaotic": "tab:red"}
    for label, sim in data["simulations"].items():
        layers = np.arange(len(sim["c_theory"]))
        ax_m.plot(
            layers,
            sim["c_theory"],
            "-",
            color=colors[label],
            label=f"{label} theory (sigma_w2={sim['sigma_w2']:.2f})",
        )
        ax_m.plot(layers, sim["c_sim"], "o", color=colors[label], ms=4, label=f"{label} Monte Carlo")
    ax_m.set_xlabel("layer l")
    ax_m.set_ylabel("correlation c^l of two inputs")
    ax_m.set_title("tanh, sigma_b2 = 0.05: mean field vs finite width")
    ax_m.legend(fontsize=6)
    return [save_figure(fig, Path(figures_dir) / "phase_diagram.png", dpi=120, tight_layout=True)]


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description=(
        "Mean-field phase diagram: critical line and xi_c heat map (tanh), critical lines of"
        " several activations"
    ),
    paper="xiao",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
