"""No regulariser reproduces depth: the end-to-end update field is not a gradient field for N >= 3.

Arora, Cohen & Hazan (2018), section 5: the velocity of the end-to-end vector of a depth-N
single-output linear network is ``-F(w)``, ``F(w) = ||w||^{2-2/N} (g + (N-1) Pr_w g)``. If some
regulariser R gave ``F = grad(L + R)``, the Jacobian of F would be symmetric and every closed-loop
integral of F would vanish. The experiment measures, for N = 1..4:

1. the relative asymmetry ``||J - J^T|| / ||J||`` of F (finite differences) at random points, for a
   linear loss (constant gradient, the setting of the paper's proof) and against the closed form;
2. the loop integral of F around circles that avoid the origin, against Stokes' theorem applied to
   the closed-form curl: 0 for N = 1, 2, non-zero for N >= 3;
3. for a least-squares loss with ``grad L(0) != 0``, the asymmetry along a ray towards the origin:
   for N >= 3 it tends to the non-zero asymmetry of the linearised loss, for N = 2 it vanishes like the
   distance (the N = 2 field of a linear loss is ``grad(||w|| a.w)``; curvature of L alone breaks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np

from dltheory.core.figures import new_figure, save_figure
from dltheory.deeplinear import (
    field_jacobian,
    jacobian_asymmetry,
    linear_loss_asymmetry,
    linear_loss_curl_flux,
    loop_integral,
)
from dltheory.experiments.base import Claim, ExperimentSpec, Result
from dltheory.runner.runs import RunDir

NAME = "arora-no-regularizer"


@dataclass(frozen=True)
class Config:
    depths: tuple[int, ...] = (1, 2, 3, 4)
    dimension: int = 4
    points: int = 20
    loop_radii: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8)
    loop_nodes: int = 256
    ray_distances: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
    samples: int = 40
    symmetric_tolerance: float = 1e-6
    seed: int = 0


PROFILES = {
    "tiny": Config(points=3, loop_radii=(0.1, 0.4), loop_nodes=64, ray_distances=(1e-3, 1e-1, 1.0)),
    "quick": Config(),
    "paper": Config(points=100, loop_nodes=512),
}


def run(config: Config, run_dir: RunDir) -> Result:
    rng = np.random.default_rng(config.seed)
    d = config.dimension
    gradient = rng.standard_normal(d)

    def linear_grad(w: np.ndarray) -> np.ndarray:
        return gradient[None, :].copy()

    # least squares L(w) = ||X w - y||^2 / (2 n) with grad L(0) = -X^T y / n != 0
    x = rng.standard_normal((config.samples, d))
    y = x @ rng.standard_normal(d) + rng.standard_normal(config.samples)

    def quadratic_grad(w: np.ndarray) -> np.ndarray:
        return ((x @ w[0] - y) @ x / config.samples)[None, :]

    points = [rng.standard_normal((1, d)) for _ in range(config.points)]
    ray = rng.standard_normal(d)
    ray /= np.linalg.norm(ray)
    center_direction = rng.standard_normal(d)
    center_direction /= np.linalg.norm(center_direction)
    u, v = rng.standard_normal(d), rng.standard_normal(d)

    data: dict[str, object] = {
        "depths": list(config.depths),
        "loop_radii": list(config.loop_radii),
        "ray_distances": list(config.ray_distances),
    }
    claims: list[Claim] = []
    for depth in config.depths:
        measured, formula_errors, predicted = [], [], []
        for p in points:
            jac = field_jacobian(p, linear_grad, depth)
            exact = linear_loss_asymmetry(p.ravel(), gradient, depth)
            norm = max(float(np.linalg.norm(jac)), 1e-300)  # N = 1: F = a is constant and J = 0
            measured.append(float(np.linalg.norm(jac - jac.T)) / norm)
            predicted.append(float(np.linalg.norm(exact)) / norm)
            formula_errors.append(float(np.linalg.norm(jac - jac.T - exact)) / norm)
        loops, fluxes = [], []
        for radius in config.loop_radii:
            center = 2.0 * radius * center_direction  # the disk stays at distance >= radius from the origin
            loops.append(
                loop_integral(
                    linear_grad,
                    depth,
                    center[None, :],
                    u[None, :],
                    v[None, :],
                    radius,
                    points=config.loop_nodes,
                )
            )
            fluxes.append(linear_loss_curl_flux(gradient, depth, center, u, v, radius))
        ray_asymmetry = [
            jacobian_asymmetry(r * ray[None, :], quadratic_grad, depth) for r in config.ray_distances
        ]
        linearised = jacobian_asymmetry(ray[None, :], lambda w: quadratic_grad(np.zeros_like(w)), depth)
        data[f"N{depth}"] = {
            "asymmetry_measured": measured,
            "asymmetry_closed_form": predicted,
            "loop_measured": loops,
            "loop_stokes": fluxes,
            "ray_asymmetry": ray_asymmetry,
            "linearised_asymmetry": linearised,
        }
        run_dir.log_metrics({"depth": depth, "max_asymmetry": max(measured), "loops": loops})
        symmetric = depth <= 2
        claims.append(
            Claim(
                f"N={depth}: update-field Jacobian {'' if symmetric else 'a'}symmetric (linear loss)",
                0.0 if symmetric else [min(predicted), max(predicted)],
                max(measured) if symmetric else [min(measured), max(measured)],
                config.symmetric_tolerance if symmetric else "relative error of J - J^T <= 1e-5",
                (max(measured) <= config.symmetric_tolerance)
                if symmetric
                else (min(measured) > 10 * config.symmetric_tolerance and max(formula_errors) <= 1e-5),
                f"relative asymmetry ||J - J^T||/||J|| at {len(points)} random points (max, or [min, max]); "
                "finite differences vs the closed form -((N-1)(N-2)/N)||w||^(1-2/N)(a w^T - w a^T): "
                f"max error {max(formula_errors):.2g}",
            )
        )
        loop_error = max(abs(a - b) for a, b in zip(loops, fluxes, strict=True))
        scale = max(abs(f) for f in fluxes)
        claims.append(
            Claim(
                f"N={depth}: closed-loop integral of the update field {'= 0' if symmetric else '!= 0'}",
                fluxes,
                loops,
                "|loop - Stokes flux| <= 1e-6 * max(|flux|, 1e-6)",
                loop_error <= 1e-6 * max(scale, 1e-6) and (symmetric == (scale < 1e-12)),
                "trapezoidal line integral around circles (radius r, centre 2r from the origin) vs the area "
                "integral of the closed-form curl",
            )
        )
        if depth >= 2:
            smallest = ray_asymmetry[0]
            if depth == 2:
                ok, predicted_text = smallest <= 10 * config.ray_distances[0], "-> 0 linearly in the distance"
            else:
                ok = abs(smallest - linearised) <= 0.02 * linearised + 1e-6
                predicted_text = f"-> {linearised:.4g} (asymmetry of the linearised loss)"
            claims.append(
                Claim(
                    f"N={depth}: least-squares loss, asymmetry near the origin",
                    predicted_text,
                    smallest,
                    "2% of the limit (N >= 3); <= 10 x distance (N = 2)",
                    ok,
                    f"relative asymmetry at distance {config.ray_distances[0]} from the origin (random ray)",
                )
            )
    return Result(
        NAME,
        claims=claims,
        data=data,
        notes=[
            "Linear loss L(w) = a.w (the setting of the paper's section-5 proof) and a least-squares loss on "
            f"synthetic data (n = {config.samples}, d = {config.dimension}, seed {config.seed}).",
            "For N = 2 the field of a linear loss is the gradient of ||w|| (a.w); with a curved loss it is "
            "not a gradient field either, but its asymmetry vanishes at the origin, whereas for N >= 3 it "
            "does not: the paper's theorem (N > 2, grad L(0) != 0) is about this limit.",
        ],
    )


def plot(result: Result, figures_dir: Path) -> list[Path]:
    data = result.data
    depths = data["depths"]
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, (ax_a, ax_l, ax_r) = new_figure(1, 3, figsize=(14, 4.2))
    floor = 1e-17
    for i, depth in enumerate(depths):
        entry = data[f"N{depth}"]
        c = colors[i % len(colors)]
        measured = np.maximum(entry["asymmetry_measured"], floor)
        ax_a.scatter(
            np.full(len(measured), depth),
            measured,
            color=c,
            marker="o",
            alpha=0.6,
            label=f"N={depth} finite differences",
        )
        ax_a.scatter(
            [depth + 0.15],
            [max(max(entry["asymmetry_closed_form"]), floor)],
            color=c,
            marker="_",
            s=300,
            label=f"N={depth} closed form (max)",
        )
        ax_l.plot(
            data["loop_radii"],
            np.maximum(np.abs(entry["loop_measured"]), floor),
            "o",
            color=c,
            label=f"N={depth} line integral",
        )
        ax_l.plot(
            data["loop_radii"],
            np.maximum(np.abs(entry["loop_stokes"]), floor),
            "-",
            color=c,
            label=f"N={depth} Stokes (closed-form curl)",
        )
        ax_r.plot(
            data["ray_distances"],
            np.maximum(entry["ray_asymmetry"], floor),
            "o-",
            color=c,
            label=f"N={depth}",
        )
        if depth >= 3:
            ax_r.axhline(
                entry["linearised_asymmetry"], color=c, ls=":", label=f"N={depth} linearised-loss limit"
            )
    ax_a.set_yscale("log")
    ax_a.set_xlabel("depth N")
    ax_a.set_ylabel("||J - J^T|| / ||J||  (dimensionless)")
    ax_a.set_title("Jacobian asymmetry, linear loss")
    ax_a.set_xticks(depths)
    ax_a.legend(fontsize=6)
    ax_l.set_xscale("log")
    ax_l.set_yscale("log")
    ax_l.set_xlabel("loop radius (weight units)")
    ax_l.set_ylabel("|closed-loop integral of F|  (loss units)")
    ax_l.set_title("Loop integrals (0 would mean a potential exists)")
    ax_l.legend(fontsize=6)
    ax_r.set_xscale("log")
    ax_r.set_yscale("log")
    ax_r.set_xlabel("distance from the origin ||w||")
    ax_r.set_ylabel("||J - J^T|| / ||J||")
    ax_r.set_title("Least-squares loss along a ray")
    ax_r.legend(fontsize=6)
    ax_l.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.suptitle(
        "Arora et al. 2018: the end-to-end update of depth N >= 3 is not the gradient of any function "
        "(values at 1e-17 are numerical zeros)",
        fontsize=9,
    )
    return [save_figure(fig, figures_dir / "no_regularizer.png", tight_layout=True)]


EXPERIMENT = ExperimentSpec(
    name=NAME,
    description=(
        "The depth-N end-to-end update is not a gradient field for N >= 3 (Jacobian asymmetry,"
        " loop integrals)"
    ),
    paper="arora",
    profiles=PROFILES,
    run=run,
    plot=plot,
)
