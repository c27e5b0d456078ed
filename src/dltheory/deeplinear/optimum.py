"""The global optimum of the end-to-end problem ``min { f(A) : rank A <= r }``.

Every matrix of rank at most ``r = min(d_0, ..., d_L)`` is the product of some weights of the network, so
this is the global minimum of ``L(W) = f(W_L ... W_1)`` over all weights; the optimality gap of a point W
is ``L(W) - min``. Methods:

- squared loss, no bottleneck: the least-squares solution ``A* = (Y^T X/n) C^+`` (closed form);
- squared loss with a bottleneck (``r < min(d_0, d_L)``): reduced-rank regression, Eckart-Young on the
  whitened problem: ``f(A) = f(A*) + 1/2 ||(A - A*) C^{1/2}||_F^2``, so the optimum is
  ``A_r = trunc_r(A* C^{1/2}) C^{+1/2}`` with value ``f(A*) + 1/2 sum_{i>r} sigma_i(A* C^{1/2})^2``
  (Baldi & Hornik 1989; the singular space of Yun, Sra & Jadbabaie 2018, Thm 2.2);
- l1 and hinge losses without l2 term: a linear program (HiGHS), exact;
- other convex losses: L-BFGS on the convex problem; with an l2 term ``l2 > 0`` the strong-convexity
  bound ``f* >= f(A) - ||grad f(A)||^2 / (2 l2)`` certifies the result;
- non-squared losses with a bottleneck (a non-convex problem, outside the theorem): the best of several
  L-BFGS runs on the factorisation ``A = U V`` (an upper bound) with the unconstrained convex optimum as
  a lower bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.sparse as sp

from dltheory.deeplinear.escape import sampled_stationarity
from dltheory.deeplinear.losses import HingeLoss, L1Loss
from dltheory.deeplinear.objective import DataObjective, EndToEndObjective, SquaredObjective

_POWELL_MAX_SIZE = 60


@dataclass
class Optimum:
    """``value``: best known value of ``min_{rank A <= rank} f(A)`` attained at ``matrix``; ``exact``:
    the value is the global optimum up to solver tolerance (closed form, LP or converged convex solve);
    ``lower_bound``: a value no larger than the optimum when one is known (equal to ``value`` for closed
    forms); ``rank``: the rank constraint (None when it does not bind)."""

    value: float
    matrix: np.ndarray
    exact: bool
    method: str
    lower_bound: float | None
    rank: int | None


def global_optimum(
    objective: EndToEndObjective,
    rank: int | None = None,
    *,
    restarts: int = 4,
    seed: int = 0,
    start: np.ndarray | None = None,
) -> Optimum:
    """The global optimum of ``f`` over matrices of rank at most ``rank`` (None: no constraint).

    ``start`` (a candidate matrix, e.g. the network's product) joins the starting points of the
    non-convex factorised search; ``restarts`` random starts are added there.
    """
    dL, d0 = objective.shape
    if rank is not None and rank >= min(dL, d0):
        rank = None
    if isinstance(objective, SquaredObjective):
        return _squared(objective, rank)
    unconstrained = _convex_optimum(objective, seed)
    if rank is None:
        return unconstrained
    if np.linalg.matrix_rank(unconstrained.matrix) <= rank and unconstrained.exact:
        return Optimum(**{**unconstrained.__dict__, "rank": rank})
    return _factorised(objective, rank, unconstrained, restarts=restarts, seed=seed, start=start)


def _squared(objective: SquaredObjective, rank: int | None) -> Optimum:
    if rank is None:
        return Optimum(
            objective.f_star,
            objective.A_star.copy(),
            True,
            "closed form: least squares",
            objective.f_star,
            None,
        )
    whitened = objective.A_star @ objective.C_sqrt
    U, s, Vt = np.linalg.svd(whitened, full_matrices=False)
    truncated = (U[:, :rank] * s[:rank]) @ Vt[:rank]
    matrix = truncated @ objective.C_inv_sqrt
    value = objective.f_star + 0.5 * float(np.sum(s[rank:] ** 2))
    method = f"closed form: reduced-rank regression (Eckart-Young on the whitened problem, rank {rank})"
    return Optimum(value, matrix, True, method, value, rank)


def _lbfgs(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    *,
    maxiter: int = 20000,
    gtol: float = 1e-11,
) -> tuple[np.ndarray, bool]:
    result = scipy.optimize.minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": maxiter, "maxcor": 30, "ftol": 1e-15, "gtol": gtol},
    )
    return result.x, bool(result.success)


def _matrix_fun(objective: EndToEndObjective) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    shape = objective.shape

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        A = x.reshape(shape)
        return float(objective.value(A)), objective.gradient(A).ravel()

    return fun


def _polish(objective: EndToEndObjective, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Derivative-free refinement (Powell) for non-smooth f of small dimension."""
    if x.size > _POWELL_MAX_SIZE:
        return x
    result = scipy.optimize.minimize(
        lambda z: float(objective.value(z.reshape(shape))),
        x,
        method="Powell",
        options={"xtol": 1e-12, "ftol": 1e-15, "maxfev": 20000},
    )
    return result.x if result.fun <= objective.value(x.reshape(shape)) else x


def _convex_optimum(objective: EndToEndObjective, seed: int) -> Optimum:
    shape = objective.shape
    if isinstance(objective, DataObjective) and objective.l2 == 0.0:
        if isinstance(objective.loss, L1Loss):
            return _lp_l1(objective)
        if isinstance(objective.loss, HingeLoss):
            return _lp_hinge(objective)
    fun = _matrix_fun(objective)
    if objective.convex:
        starts = [np.zeros(int(np.prod(shape)))]
    else:
        rng = np.random.default_rng(seed)
        starts = [np.zeros(int(np.prod(shape)))] + [rng.normal(size=int(np.prod(shape))) for _ in range(4)]
    best_x, best_value, converged = starts[0], np.inf, False
    for x0 in starts:
        x, ok = _lbfgs(fun, x0)
        if not objective.differentiable:
            x = _polish(objective, x, shape)
        value = float(objective.value(x.reshape(shape)))
        if value < best_value:
            best_x, best_value, converged = x, value, ok
    matrix = best_x.reshape(shape)
    lower = None
    l2 = getattr(objective, "l2", 0.0)
    if objective.convex and objective.differentiable and l2 > 0:
        lower = best_value - float(np.sum(objective.gradient(matrix) ** 2)) / (2.0 * l2)
    exact = objective.convex and objective.differentiable and converged
    if objective.convex and objective.differentiable:
        method = "L-BFGS on the convex end-to-end problem"
    elif objective.convex and matrix.size <= _POWELL_MAX_SIZE:
        exact = _subgradient_certificate(objective, matrix, seed)
        method = "L-BFGS + Powell on the convex non-smooth end-to-end problem, " + (
            "0 in the sampled subdifferential (gradient sampling): global for convex f"
            if exact
            else "no optimality certificate"
        )
    elif objective.convex:
        method = "L-BFGS on the convex non-smooth end-to-end problem (no optimality certificate)"
    else:
        method = "multi-start L-BFGS (f not declared convex: best value found, not certified)"
    return Optimum(best_value, matrix, exact, method, lower, None)


def _subgradient_certificate(objective: EndToEndObjective, matrix: np.ndarray, seed: int) -> bool:
    """For convex f, 0 in the Clarke subdifferential at A means A is a global minimiser; estimated by
    gradient sampling in a ball of radius ``1e-5 max(1, ||A||)`` (Burke, Lewis & Overton 2005)."""
    radius = 1e-5 * max(1.0, float(np.linalg.norm(matrix)))
    samples = min(4 * matrix.size + 20, 200)
    rng = np.random.default_rng(seed)
    measure, _ = sampled_stationarity(objective, [matrix], radius=radius, samples=samples, rng=rng)
    scale = max(1.0, float(np.linalg.norm(objective.gradient(matrix))))
    return measure <= 1e-7 * scale


def _linprog(
    c: np.ndarray, A_ub: sp.spmatrix, b_ub: np.ndarray, bounds: list[tuple[float | None, float | None]]
):  # type: ignore[no-untyped-def]
    result = scipy.optimize.linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if result.status != 0:
        raise RuntimeError(f"linear program for the end-to-end optimum failed: {result.message}")
    return result


def _lp_l1(objective: DataObjective) -> Optimum:
    """min (1/n) sum_ij s_ij  s.t.  -s <= X A^T - Y <= s (exact l1 regression)."""
    X, T = objective.X, objective.T
    n = X.shape[0]
    dL, d0 = objective.shape
    K = sp.kron(sp.identity(dL), sp.csr_matrix(X), format="csr")
    I = sp.identity(n * dL, format="csr")
    A_ub = sp.vstack([sp.hstack([K, -I]), sp.hstack([-K, -I])], format="csr")
    y = T.T.ravel()
    b_ub = np.concatenate([y, -y])
    c = np.concatenate([np.zeros(dL * d0), np.full(n * dL, 1.0 / n)])
    bounds: list[tuple[float | None, float | None]] = [(None, None)] * (dL * d0) + [(0.0, None)] * (n * dL)
    result = _linprog(c, A_ub, b_ub, bounds)
    matrix = result.x[: dL * d0].reshape(dL, d0)
    value = float(objective.value(matrix))
    return Optimum(value, matrix, True, "linear program (HiGHS): l1 regression", float(result.fun), None)


def _lp_hinge(objective: DataObjective) -> Optimum:
    """Binary: min (1/n) sum xi, xi_i >= 1 - t_i x_i^T a; multi-class (Crammer-Singer):
    xi_i >= 1 + x_i^T (a_j - a_{y_i}) for j != y_i; xi >= 0."""
    X, T = objective.X, objective.T
    n, d0 = X.shape
    K = objective.shape[0]
    if K == 1:
        A_ub = sp.hstack([sp.csr_matrix(-T[:, :1] * X), -sp.identity(n)], format="csr")
        b_ub = -np.ones(n)
    else:
        labels = T.argmax(axis=1)
        sample, rival = np.nonzero(T == 0)
        m = sample.size
        span = np.arange(d0)
        cols = np.concatenate(
            [rival[:, None] * d0 + span, labels[sample][:, None] * d0 + span, (K * d0 + sample)[:, None]],
            axis=1,
        )
        vals = np.concatenate([X[sample], -X[sample], -np.ones((m, 1))], axis=1)
        rows = np.repeat(np.arange(m), 2 * d0 + 1)
        A_ub = sp.csr_matrix((vals.ravel(), (rows, cols.ravel())), shape=(m, K * d0 + n))
        row = m
        b_ub = -np.ones(row)
    c = np.concatenate([np.zeros(K * d0), np.full(n, 1.0 / n)])
    bounds: list[tuple[float | None, float | None]] = [(None, None)] * (K * d0) + [(0.0, None)] * n
    result = _linprog(c, A_ub, b_ub, bounds)
    matrix = result.x[: K * d0].reshape(K, d0)
    value = float(objective.value(matrix))
    return Optimum(value, matrix, True, "linear program (HiGHS): hinge loss", float(result.fun), None)


def _factorised(
    objective: EndToEndObjective,
    rank: int,
    unconstrained: Optimum,
    *,
    restarts: int,
    seed: int,
    start: np.ndarray | None,
) -> Optimum:
    dL, d0 = objective.shape
    rng = np.random.default_rng(seed)

    def split(M: np.ndarray) -> np.ndarray:
        U, s, Vt = np.linalg.svd(M, full_matrices=False)
        root = np.sqrt(s[:rank])
        return np.concatenate([(U[:, :rank] * root).ravel(), (root[:, None] * Vt[:rank]).ravel()])

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        U = x[: dL * rank].reshape(dL, rank)
        V = x[dL * rank :].reshape(rank, d0)
        A = U @ V
        G = objective.gradient(A)
        return float(objective.value(A)), np.concatenate([(G @ V.T).ravel(), (U.T @ G).ravel()])

    scale = max(float(np.linalg.norm(unconstrained.matrix)), 1e-3) / np.sqrt(max(dL, d0))
    starts = [split(unconstrained.matrix)]
    if start is not None:
        starts.append(split(np.asarray(start, dtype=np.float64)))
    starts += [rng.normal(scale=np.sqrt(scale), size=rank * (dL + d0)) for _ in range(restarts)]
    best_value, best_x = np.inf, starts[0]
    for x0 in starts:
        x, _ = _lbfgs(fun, x0, maxiter=3000, gtol=1e-9)
        value = fun(x)[0]
        if value < best_value:
            best_value, best_x = value, x
    matrix = best_x[: dL * rank].reshape(dL, rank) @ best_x[dL * rank :].reshape(rank, d0)
    lower = unconstrained.lower_bound
    if unconstrained.exact:
        lower = unconstrained.value if lower is None else min(lower, unconstrained.value)
    method = (
        f"best of {len(starts)} L-BFGS runs on the rank-{rank} factorisation A = U V (upper bound; the "
        "rank-constrained problem is not convex)"
    )
    return Optimum(best_value, matrix, False, method, lower, rank)
