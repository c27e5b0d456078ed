"""Landscape certificates for deep linear networks: what is this point of ``L(W) = f(W_L ... W_1)``?

Laurent & von Brecht (ICML 2018), Theorem 1: with f convex and differentiable and every hidden width at
least ``min(d_0, d_L)``, every local minimum of L is global. :func:`analyze` takes weights, a loss and
data and returns a :class:`LandscapeReport` whose ``verdict`` is one of

- ``"global_minimum"``: critical and ``L(W)`` equals the global optimum of the end-to-end problem
  ``min { f(A) : rank A <= min_k d_k }`` (closed form, LP or convex solve, see
  :mod:`dltheory.deeplinear.optimum`);
- ``"saddle"``: critical but not a local minimum, shown by a verified descent (Hessian eigenvector of
  negative curvature, higher-order product chain, perturbed descent) or, when no descent is found, by
  the theorem (critical + optimality gap > 0 + its conditions) or, for squared loss, by Yun, Sra &
  Jadbabaie (2018);
- ``"local_minimum"``: critical, not certified global, no descent found by second-order, product-chain,
  perturbed-descent and random-perturbation tests (possible only outside the theorem: non-differentiable
  f, a bottleneck with a non-squared loss, or f not convex);
- ``"not_critical"``: the (sub)gradient does not vanish; a verified descent step is reported.

``reason`` states the theorem or test behind the verdict. For non-differentiable f, criticality is
Clarke stationarity estimated by gradient sampling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dltheory.core.validation import check_choice, check_int, check_positive
from dltheory.deeplinear.escape import (
    Escape,
    PerturbationTest,
    perturbed_descent_escape,
    product_chain_escape,
    random_perturbation_test,
    sampled_stationarity,
    scan_direction,
)
from dltheory.deeplinear.hessian import hessian_extremes
from dltheory.deeplinear.losses import Loss
from dltheory.deeplinear.objective import EndToEndObjective, SquaredObjective, make_objective
from dltheory.deeplinear.optimum import Optimum, global_optimum
from dltheory.deeplinear.product_map import (
    ProductHessian,
    as_weights,
    end_to_end,
    layer_gradients,
    unflatten,
    widths,
)

VERDICTS = ("global_minimum", "local_minimum", "saddle", "not_critical")


@dataclass
class LandscapeReport:
    """The certificate of one point. Arrays are numpy; :meth:`to_dict` gives JSON-able data."""

    verdict: str
    reason: str
    justification: str
    loss: str
    loss_value: float
    widths: tuple[int, ...]
    width_condition: bool
    bottleneck_width: int
    differentiable: bool
    convex: bool
    critical: bool
    gradient_norm: float
    gradient_norms: list[float]
    stationarity: float | None
    end_to_end: np.ndarray
    end_to_end_gradient_norm: float
    end_to_end_rank: int
    ranks: list[list[int | None]]
    global_optimum: float
    global_optimum_method: str
    global_optimum_exact: bool
    global_lower_bound: float | None
    optimal_matrix: np.ndarray
    optimality_gap: float
    hessian_min: float | None = None
    hessian_max: float | None = None
    hessian_method: str | None = None
    hessian_converged: bool | None = None
    escape: Escape | None = None
    perturbation: PerturbationTest | None = None
    conditions: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def escape_direction(self) -> list[np.ndarray] | None:
        return None if self.escape is None else self.escape.direction

    def to_dict(self, include_arrays: bool = True) -> dict[str, Any]:
        """JSON-able dict; ``include_arrays=False`` leaves out the matrices and the escape direction."""
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "reason": self.reason,
            "justification": self.justification,
            "loss": self.loss,
            "loss_value": self.loss_value,
            "widths": list(self.widths),
            "width_condition": self.width_condition,
            "bottleneck_width": self.bottleneck_width,
            "differentiable": self.differentiable,
            "convex": self.convex,
            "critical": self.critical,
            "gradient_norm": self.gradient_norm,
            "gradient_norms": list(self.gradient_norms),
            "stationarity": self.stationarity,
            "end_to_end_gradient_norm": self.end_to_end_gradient_norm,
            "end_to_end_rank": self.end_to_end_rank,
            "ranks": self.ranks,
            "global_optimum": self.global_optimum,
            "global_optimum_method": self.global_optimum_method,
            "global_optimum_exact": self.global_optimum_exact,
            "global_lower_bound": self.global_lower_bound,
            "optimality_gap": self.optimality_gap,
            "hessian_min": self.hessian_min,
            "hessian_max": self.hessian_max,
            "hessian_method": self.hessian_method,
            "hessian_converged": self.hessian_converged,
            "escape": None,
            "perturbation": None,
            "conditions": self.conditions,
            "notes": list(self.notes),
        }
        if self.escape is not None:
            out["escape"] = {
                "method": self.escape.method,
                "steps": self.escape.steps,
                "decreases": self.escape.decreases,
                "best_step": self.escape.best_step,
                "best_decrease": self.escape.best_decrease,
            }
            if include_arrays:
                out["escape"]["direction"] = [d.tolist() for d in self.escape.direction]
        if self.perturbation is not None:
            out["perturbation"] = {
                "radii": self.perturbation.radii,
                "min_change": self.perturbation.min_change,
                "samples": self.perturbation.samples,
                "passed": self.perturbation.passed,
            }
        if include_arrays:
            out["end_to_end"] = self.end_to_end.tolist()
            out["optimal_matrix"] = self.optimal_matrix.tolist()
        return out

    def summary(self) -> str:
        lines = [
            f"verdict: {self.verdict}",
            f"reason: {self.reason}",
            f"loss: {self.loss}, value {self.loss_value:.10g}, global optimum {self.global_optimum:.10g} "
            f"({self.global_optimum_method}), gap {self.optimality_gap:.3g}",
            f"widths {list(self.widths)}, width condition {'holds' if self.width_condition else 'fails'}, "
            f"rank of product {self.end_to_end_rank}",
            f"gradient norm {self.gradient_norm:.3g} (per layer: "
            + ", ".join(f"{g:.2g}" for g in self.gradient_norms)
            + ")",
        ]
        if self.hessian_min is not None:
            lines.append(
                f"Hessian eigenvalues in [{self.hessian_min:.4g}, {self.hessian_max:.4g}] "
                f"({self.hessian_method})"
            )
        if self.escape is not None:
            lines.append(
                f"escape: {self.escape.method}; loss decreases by {self.escape.best_decrease:.3g} at step "
                f"{self.escape.best_step:.3g} (verified down to step {self.escape.smallest_step:.3g})"
            )
        return "\n".join(lines)


def _rank(matrix: np.ndarray, rtol: float) -> int:
    s = np.linalg.svd(matrix, compute_uv=False)
    if s.size == 0 or s[0] == 0.0:
        return 0
    return int(np.sum(s > rtol * s[0]))


def partial_product_ranks(weights: list[np.ndarray], rtol: float = 1e-9) -> list[list[int | None]]:
    """``ranks[i][j] = rank(W_{j+1} ... W_{i+1})`` for ``i <= j`` (0-based indices; None below the
    diagonal); the numerical rank counts singular values above ``rtol`` times the largest."""
    L = len(weights)
    table: list[list[int | None]] = [[None] * L for _ in range(L)]
    for i in range(L):
        product = weights[i]
        table[i][i] = _rank(product, rtol)
        for j in range(i + 1, L):
            product = weights[j] @ product
            table[i][j] = _rank(product, rtol)
    return table


def _squared_conditions(objective: SquaredObjective, A: np.ndarray, p: int, rtol: float) -> dict[str, Any]:
    """Yun, Sra & Jadbabaie (2018), Thms 2.1-2.2 for squared loss: a critical point is a global minimum
    iff rank A = p (no bottleneck), resp. rank A = p and col(A) equals the top-p left singular space
    of ``A* C^{1/2}`` (bottleneck); otherwise it is a saddle."""
    dL, d0 = objective.shape
    whitened = objective.A_star @ objective.C_sqrt
    U, s, _ = np.linalg.svd(whitened, full_matrices=False)
    cov_full_rank = bool(np.all(objective.C_eigval > 0))
    cross_rank = _rank(objective.T.T @ objective.X, rtol)
    bottleneck = p < min(dL, d0)
    distinct = bool(np.all(np.diff(s[: min(p + 1, s.size)]) < -rtol * max(s[0], 1e-300))) if s.size else True
    out: dict[str, Any] = {
        "theorem": "Yun, Sra & Jadbabaie (ICLR 2018), Theorem 2.1 (no bottleneck) / 2.2 (bottleneck)",
        "p_min_width": p,
        "rank_end_to_end": _rank(A, rtol),
        "rank_condition": _rank(A, rtol) == min(p, _rank(whitened, rtol)),
        "assumptions_hold": cov_full_rank and cross_rank == min(dL, d0) and (distinct or not bottleneck),
        "input_covariance_full_rank": cov_full_rank,
        "cross_covariance_rank": cross_rank,
    }
    if bottleneck:
        col = np.linalg.svd(A, full_matrices=False)[0][:, :p]
        top = U[:, :p]
        cosines = np.linalg.svd(top.T @ col, compute_uv=False)
        out["subspace_sin_max_angle"] = float(np.sqrt(max(0.0, 1.0 - float(cosines.min()) ** 2)))
        out["top_singular_values"] = s[: p + 1].tolist()
    return out


def analyze(
    weights: Any,
    loss: str | Loss | EndToEndObjective | Any = "squared",
    X: Any = None,
    Y: Any = None,
    *,
    l2: float = 0.0,
    loss_params: Mapping[str, Any] | None = None,
    differentiable: bool | None = None,
    convex: bool | None = None,
    grad_tol: float = 1e-6,
    gap_tol: float = 1e-6,
    curvature_tol: float = 1e-7,
    hessian: str = "auto",
    lanczos_tol: float = 1e-4,
    escape_radius: float | None = None,
    perturbation_samples: int = 200,
    rank_rtol: float = 1e-9,
    restarts: int = 4,
    optimum: Optimum | None = None,
    seed: int = 0,
) -> LandscapeReport:
    """Certify the point ``weights`` (first layer first; numpy arrays, nested lists or torch tensors, each
    ``(d_k, d_{k-1})``) of ``L(W) = f(W_L ... W_1)``.

    Verdicts: ``global_minimum`` (critical, value equal to the global optimum), ``saddle`` (critical, with a
    verified descent direction or by the theorem), ``local_minimum`` (critical, not certified global, no
    descent found: possible only outside the theorem) and ``not_critical``. ``report.reason`` names the
    theorem or test, ``report.justification`` is a short key.

    ``loss``: a name (``"squared"``, ``"lp"``, ``"cross_entropy"``, ``"logistic"``, ``"huber"``,
    ``"hinge"``, ``"l1"``; parameters through ``loss_params``, e.g. ``{"p": 4}``) or a
    :class:`~dltheory.deeplinear.losses.Loss` with data ``X`` (n, d_0) and targets ``Y``, and an optional
    ``l2`` term ``(l2/2)||A||^2`` on the product; or, with ``X = Y = None``, an
    :class:`~dltheory.deeplinear.objective.EndToEndObjective` or a callable ``f(A) -> (value,
    subgradient)`` (declare ``differentiable`` / ``convex``; both default to False for a bare callable).

    Tolerances: critical when the gradient norm (Clarke-stationarity estimate for non-smooth f) is at
    most ``grad_tol * max(1, |L|)``; global when the gap is at most ``gap_tol * max(1, |f*|)``; negative
    curvature below ``-curvature_tol * |lambda_max|``. ``hessian``: "auto" (dense up to 1,200 parameters,
    else Lanczos), "dense", "lanczos", "arpack" or "none"; ``lanczos_tol``: residual of the extreme Ritz
    pairs relative to the spectral radius (see :func:`~dltheory.deeplinear.hessian.hessian_extremes`).
    ``escape_radius`` (default ``1e-2 max(1, ||W||)``)
    bounds the descent searches; ``perturbation_samples`` random directions per radius test local
    minimality. ``optimum``: a precomputed :func:`~dltheory.deeplinear.optimum.global_optimum` of the same
    problem (saves the solve when many points of one problem are certified); otherwise it is computed,
    for a bottleneck with a non-squared loss by ``restarts`` factorised L-BFGS runs seeded with this point.

    Args:
        weights: the layers, first layer first, each ``(d_k, d_{k-1})``.
        loss: loss name, :class:`~dltheory.deeplinear.losses.Loss`, objective or callable (see above).
        X: data ``(n, d_0)``, or ``None`` with an objective or callable.
        Y: targets, or ``None``.
        l2: weight of the ``(l2/2)||A||^2`` term on the product.
        loss_params: parameters of a named loss.
        differentiable: what is known about a callable f.
        convex: what is known about a callable f.
        grad_tol: criticality tolerance.
        gap_tol: optimality-gap tolerance.
        curvature_tol: negative-curvature tolerance.
        hessian: how the Hessian extremes are computed.
        lanczos_tol: Lanczos residual tolerance.
        escape_radius: radius of the descent searches.
        perturbation_samples: random directions per radius.
        rank_rtol: relative tolerance of the rank computations.
        restarts: factorised L-BFGS runs for a bottleneck with a non-squared loss.
        optimum: a precomputed global optimum of the same problem.
        seed: seed of the random searches.

    Returns:
        A :class:`LandscapeReport` (``verdict``, ``reason``, the evidence; ``to_dict()`` is JSON-able).

    Raises:
        ValueError: for mismatched shapes (naming both), unknown losses or bad tolerances.

    References:
        Laurent & von Brecht (2018), Theorem 1; Yun, Sra & Jadbabaie (2018); Kawaguchi (2016). See
        docs/laurent/theory.md.

    Examples:
        >>> import numpy as np
        >>> from dltheory.deeplinear import analyze
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(50, 3))
        >>> Y = X @ rng.normal(size=(3, 2))
        >>> A = np.linalg.lstsq(X, Y, rcond=None)[0].T       # the least-squares end-to-end matrix
        >>> analyze([A, np.eye(2)], "squared", X, Y).verdict
        'global_minimum'
        >>> zero = [np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((2, 2))]
        >>> analyze(zero, "squared", X, Y).verdict          # W = 0 at depth 3: zero Hessian, still a saddle
        'saddle'
    """
    W = as_weights(weights)
    dims = widths(W)
    shape = (dims[-1], dims[0])
    objective = make_objective(
        loss, X, Y, shape, l2=l2, differentiable=differentiable, convex=convex, **dict(loss_params or {})
    )
    check_choice("hessian", hessian, ("auto", "dense", "lanczos", "arpack", "none"))
    for name, value in (("grad_tol", grad_tol), ("gap_tol", gap_tol), ("curvature_tol", curvature_tol)):
        check_positive(name, value)
    check_int("perturbation_samples", perturbation_samples, minimum=1)
    rng = np.random.default_rng(seed)

    A = end_to_end(W)
    value = float(objective.value(A))
    G = objective.gradient(A)
    grads = layer_gradients(W, G)
    grad_norms = [float(np.linalg.norm(g)) for g in grads]
    grad_norm = float(np.sqrt(sum(g**2 for g in grad_norms)))
    weight_norm = float(np.sqrt(sum(np.sum(w * w) for w in W)))
    radius = float(escape_radius) if escape_radius is not None else 1e-2 * max(1.0, weight_norm)
    hidden = dims[1:-1]
    p = min(dims)
    width_condition = not hidden or min(hidden) >= min(dims[0], dims[-1])
    theorem_applies = width_condition and objective.convex and objective.differentiable

    if optimum is None:
        optimum = global_optimum(objective, rank=p, restarts=restarts, seed=seed, start=A)
    elif optimum.matrix.shape != shape:
        raise ValueError(
            f"optimum is for a {optimum.matrix.shape} end-to-end matrix, the network's is {shape}"
        )
    gap = value - optimum.value
    tol_gap = gap_tol * max(1.0, abs(optimum.value))
    certified_global = (optimum.exact and gap <= tol_gap) or (
        optimum.lower_bound is not None and value - optimum.lower_bound <= tol_gap
    )
    certified_suboptimal = gap > tol_gap

    report = LandscapeReport(
        verdict="",
        reason="",
        justification="",
        loss=objective.describe(),
        loss_value=value,
        widths=dims,
        width_condition=width_condition,
        bottleneck_width=p,
        differentiable=objective.differentiable,
        convex=objective.convex,
        critical=False,
        gradient_norm=grad_norm,
        gradient_norms=grad_norms,
        stationarity=None,
        end_to_end=A,
        end_to_end_gradient_norm=float(np.linalg.norm(G)),
        end_to_end_rank=_rank(A, rank_rtol),
        ranks=partial_product_ranks(W, rank_rtol),
        global_optimum=optimum.value,
        global_optimum_method=optimum.method,
        global_optimum_exact=optimum.exact,
        global_lower_bound=optimum.lower_bound,
        optimal_matrix=optimum.matrix,
        optimality_gap=gap,
    )
    if isinstance(objective, SquaredObjective):
        report.conditions = _squared_conditions(objective, A, p, rank_rtol)
    if not width_condition:
        report.notes.append(
            f"bottleneck: hidden width {min(hidden)} < min(d_0, d_L) = {min(dims[0], dims[-1])}; the "
            "end-to-end problem is rank-constrained and Laurent & von Brecht's theorem does not apply"
        )
    if not objective.differentiable:
        report.notes.append(
            "f is not differentiable: the theorem does not apply (sub-optimal local minima can exist)"
        )
    if not objective.convex:
        report.notes.append(
            "f is not declared convex: the theorem does not apply and the optimum is not certified"
        )

    crit_tol = grad_tol * max(1.0, abs(value))
    descent = [-g for g in grads]
    if objective.differentiable:
        report.critical = grad_norm <= crit_tol
    else:
        samples = min(max(2 * sum(w.size for w in W) + 2, 20), 200)
        stationarity, descent = sampled_stationarity(
            objective, W, radius=1e-3 * radius, samples=samples, rng=rng
        )
        report.stationarity = stationarity
        report.critical = stationarity <= crit_tol

    extremes = None
    if objective.differentiable and hessian != "none":
        operator = ProductHessian(W, G, lambda dA: objective.hessian_vector(A, dA))
        try:
            extremes = hessian_extremes(operator, method=hessian, tol=lanczos_tol, seed=seed)
        except ValueError as exc:
            report.notes.append(f"no Hessian: {exc}")
    if extremes is not None:
        report.hessian_min = extremes.min_eigenvalue
        report.hessian_max = extremes.max_eigenvalue
        report.hessian_method = extremes.method
        report.hessian_converged = extremes.converged
        if not objective.twice_differentiable:
            report.notes.append("f is only once differentiable: the Hessian is the almost-everywhere one")

    search = _Search(objective, W, G, value, radius, 1e-11 * max(1.0, abs(value)), rng)
    if not report.critical:
        escape = search.scan(descent, "negative (sub)gradient", both_signs=False)
        if escape is not None or objective.differentiable:
            report.escape = escape
            if objective.differentiable:
                measure = f"the gradient has norm {grad_norm:.3g}"
            else:
                measure = f"the Clarke-stationarity estimate (gradient sampling) is {report.stationarity:.3g}"
            return _finish(report, "not_critical", "gradient", f"{measure} > tolerance {crit_tol:.3g}")
        report.critical = True
        report.notes.append(
            "the stationarity estimate exceeds the tolerance but no descent along it was verified: "
            "treated as critical"
        )

    if certified_global:
        over = f" over rank <= {p}" if p < min(shape) else ""
        return _finish(
            report,
            "global_minimum",
            "optimality-gap",
            f"critical point and its value equals the global optimum of the end-to-end problem{over} "
            f"({optimum.method}; gap {gap:.3g} <= {tol_gap:.3g})",
        )

    negative = extremes is not None and extremes.min_eigenvalue < -curvature_tol * max(
        abs(extremes.max_eigenvalue), 1e-300
    )
    if extremes is not None and negative:
        direction = unflatten(extremes.min_vector, [w.shape for w in W])
        escape = search.scan(direction, "Hessian eigenvector of negative curvature")
        if escape is not None:
            report.escape = escape
            return _finish(
                report,
                "saddle",
                "negative-curvature",
                f"strict saddle: the Hessian has eigenvalue {extremes.min_eigenvalue:.4g} < 0 and the loss "
                "decreases along its eigenvector",
            )

    escape = search.higher_order()
    degenerate = extremes is not None and not negative
    if escape is not None:
        report.escape = escape
        kind = "degenerate saddle (no negative Hessian eigenvalue)" if degenerate else "saddle"
        return _finish(
            report,
            "saddle",
            "descent-found",
            f"{kind}: critical, but the loss decreases along a verified direction ({escape.method})",
        )

    if theorem_applies and certified_suboptimal:
        return _finish(
            report,
            "saddle",
            "laurent-von-brecht-thm1",
            f"critical with optimality gap {gap:.3g} > 0 while f is convex and differentiable and every "
            "hidden width is >= min(d_0, d_L): by Laurent & von Brecht (2018, Thm 1) every local minimum is "
            "global, so this is a saddle"
            + (" with no negative curvature (degenerate, cf. Kawaguchi 2016)" if degenerate else ""),
        )
    if (
        isinstance(objective, SquaredObjective)
        and certified_suboptimal
        and report.conditions["assumptions_hold"]
    ):
        return _finish(
            report,
            "saddle",
            "yun-sra-jadbabaie",
            f"squared loss, critical with optimality gap {gap:.3g} > 0: by Yun, Sra & Jadbabaie (2018, "
            "Thm 2.2) every critical point that is not a global minimum is a saddle",
        )

    radii = [radius * 0.1**k for k in range(4)]
    test = random_perturbation_test(
        objective, W, value, radii=radii, samples=perturbation_samples, noise=search.noise, rng=rng
    )
    report.perturbation = test
    if test.descent is not None:
        report.escape = test.descent
        return _finish(
            report,
            "saddle",
            "descent-found",
            "critical, but a random perturbation lowers the loss (verified along its direction)",
        )
    return _finish(
        report,
        "local_minimum",
        "perturbation-test",
        _local_minimum_reason(
            report, optimum_status(optimum, gap, certified_suboptimal), radii, extremes is not None
        ),
    )


def optimum_status(optimum: Any, gap: float, suboptimal: bool) -> str:
    if suboptimal:
        return f"sub-optimal by {gap:.3g} (global optimum {optimum.value:.6g}, {optimum.method})"
    return (
        f"global optimality not certified (best value found {optimum.value:.6g}, "
        f"lower bound {optimum.lower_bound})"
    )


def _local_minimum_reason(report: LandscapeReport, status: str, radii: list[float], curvature: bool) -> str:
    outside = []
    if not report.width_condition:
        outside.append("a bottleneck narrower than both ends")
    if not report.differentiable:
        outside.append("a non-differentiable f")
    if not report.convex:
        outside.append("an f not declared convex")
    where = " and ".join(outside) if outside else "no failed condition (numerical tolerance?)"
    samples = report.perturbation.samples if report.perturbation is not None else 0
    checks = "no negative curvature, " if curvature else ""
    return (
        f"critical, {checks}no descent along product chains, by perturbed descent or in {samples} random "
        f"perturbations at each of radii {', '.join(f'{r:.1e}' for r in radii)}; {status}; the theorem "
        f"does not apply here: {where}"
    )


@dataclass
class _Search:
    """Descent searches around one point (see :mod:`dltheory.deeplinear.escape`)."""

    objective: EndToEndObjective
    weights: list[np.ndarray]
    G: np.ndarray
    value: float
    radius: float
    noise: float
    rng: np.random.Generator

    def scan(self, direction: list[np.ndarray], method: str, *, both_signs: bool = True) -> Escape | None:
        return scan_direction(
            self.objective,
            self.weights,
            direction,
            self.value,
            radius=self.radius,
            noise=self.noise,
            method=method,
            both_signs=both_signs,
        )

    def higher_order(self) -> Escape | None:
        escape = product_chain_escape(
            self.objective,
            self.weights,
            self.G,
            self.value,
            radius=self.radius,
            noise=self.noise,
            rng=self.rng,
        )
        if escape is None:
            escape = perturbed_descent_escape(
                self.objective, self.weights, self.value, radius=self.radius, noise=self.noise, rng=self.rng
            )
        return escape


def _finish(report: LandscapeReport, verdict: str, justification: str, reason: str) -> LandscapeReport:
    report.verdict = verdict
    report.justification = justification
    report.reason = reason
    return report
