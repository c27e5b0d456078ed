"""analyze() against known cases: constructed global minima, strict and degenerate saddles, the
non-differentiable counterexample, non-critical points. Optimality gaps and losses are recomputed here
from independent formulas (direct residuals, numpy lstsq, reduced-rank regression from the fitted values,
scipy / sklearn solvers)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.optimize
from scipy.special import logsumexp

from dltheory.core.io import to_json
from dltheory.deeplinear import analyze, counterexample_function
from dltheory.deeplinear.counterexample import GLOBAL_MINIMUM, LOCAL_MINIMUM


def _data(n=40, d0=4, dL=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d0))
    Y = X @ rng.normal(size=(d0, dL)) + 0.5 * rng.normal(size=(n, dL))
    return X, Y


def _product(weights):
    A = weights[0]
    for w in weights[1:]:
        A = w @ A
    return A


def _squared(weights, X, Y):
    """Direct 1/(2n) ||X A^T - Y||^2."""
    return 0.5 * np.mean(np.sum((X @ _product(weights).T - Y) ** 2, axis=1))


def _balanced(A, hidden):
    """Weights of widths (d0, *hidden, dL) with product A (rank A <= min(hidden))."""
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    r = min(len(s), *hidden)
    dims = [A.shape[1], *hidden, A.shape[0]]
    L = len(dims) - 1
    root = s[:r] ** (1.0 / L)
    weights = []
    for k in range(L):
        w = np.zeros((dims[k + 1], dims[k]))
        if k == 0:
            w[:r] = root[:, None] * Vt[:r]
        elif k == L - 1:
            w[:, :r] = U[:, :r] * root
        else:
            w[:r, :r] = np.diag(root)
        weights.append(w)
    return weights


def _reduced_rank(X, Y, r):
    """Reduced-rank regression: project the least-squares fit on its top-r output directions."""
    A_ls = np.linalg.lstsq(X, Y, rcond=None)[0].T
    _, _, Vt = np.linalg.svd(X @ A_ls.T, full_matrices=False)
    V = Vt[:r].T
    return V @ V.T @ A_ls


def test_constructed_global_minimum_wide():
    X, Y = _data()
    A_ls = np.linalg.lstsq(X, Y, rcond=None)[0].T
    weights = _balanced(A_ls, [5, 6])
    report = analyze(weights, "squared", X, Y)
    assert report.verdict == "global_minimum"
    assert report.width_condition
    independent_gap = _squared(weights, X, Y) - _squared([A_ls], X, Y)
    assert report.optimality_gap == pytest.approx(independent_gap, abs=1e-12)
    assert report.global_optimum == pytest.approx(_squared([A_ls], X, Y), rel=1e-12)
    assert report.hessian_min >= -1e-8 * report.hessian_max
    assert report.end_to_end_rank == 3 and report.ranks[0][2] == 3


def test_constructed_global_minimum_bottleneck_matches_reduced_rank_regression():
    X, Y = _data(d0=5, dL=4)
    A_r = _reduced_rank(X, Y, 2)
    weights = _balanced(A_r, [2, 3])
    report = analyze(weights, "squared", X, Y)
    assert not report.width_condition and report.bottleneck_width == 2
    assert report.global_optimum == pytest.approx(_squared([A_r], X, Y), rel=1e-10)
    assert report.verdict == "global_minimum"
    assert report.conditions["subspace_sin_max_angle"] < 1e-6
    # the unconstrained least-squares value is strictly lower: the bottleneck binds
    A_ls = np.linalg.lstsq(X, Y, rcond=None)[0].T
    assert report.global_optimum > _squared([A_ls], X, Y) + 1e-3


def _baldi_hornik_critical(X, Y, subset):
    """Depth-2 critical point W2 W1 = U_J U_J^T Syx Sxx^-1 (U_J: eigenvectors of Syx Sxx^-1 Sxy)."""
    n = len(X)
    Sxx, Syx = X.T @ X / n, Y.T @ X / n
    A_ls = Syx @ np.linalg.inv(Sxx)
    _, U = np.linalg.eigh(A_ls @ Syx.T)
    U = U[:, ::-1][:, subset]
    return [U.T @ A_ls, U]


def _numeric_hessian_min(weights, X, Y):
    """Smallest eigenvalue of the Hessian by central differences of the depth-2 gradient formula."""
    shapes = [w.shape for w in weights]
    sizes = [int(np.prod(s)) for s in shapes]

    def grad(x):
        W1 = x[: sizes[0]].reshape(shapes[0])
        W2 = x[sizes[0] :].reshape(shapes[1])
        G = (X @ (W2 @ W1).T - Y).T @ X / len(X)
        return np.concatenate([(W2.T @ G).ravel(), (G @ W1.T).ravel()])

    x = np.concatenate([w.ravel() for w in weights])
    h = 1e-5
    H = np.array([(grad(x + h * e) - grad(x - h * e)) / (2 * h) for e in np.eye(x.size)])
    return np.linalg.eigvalsh(0.5 * (H + H.T))[0]


def test_strict_saddle_with_verified_escape():
    X, Y = _data(d0=4, dL=3)
    weights = _baldi_hornik_critical(X, Y, [1, 2])
    report = analyze(weights, "squared", X, Y)
    assert report.critical and report.gradient_norm < 1e-10
    assert report.verdict == "saddle" and report.justification == "negative-curvature"
    assert report.hessian_min == pytest.approx(_numeric_hessian_min(weights, X, Y), abs=1e-5)
    assert report.hessian_min < 0
    base = _squared(weights, X, Y)
    for t in (report.escape.best_step, report.escape.smallest_step):
        moved = [w + t * d for w, d in zip(weights, report.escape.direction, strict=True)]
        assert _squared(moved, X, Y) < base
    assert report.optimality_gap > 0.01


def test_zero_weights_depth_three_is_a_degenerate_saddle():
    X, Y = _data()
    weights = [np.zeros((5, 4)), np.zeros((5, 5)), np.zeros((3, 5))]
    report = analyze(weights, "squared", X, Y)
    assert report.critical and report.gradient_norm == 0.0
    # the Hessian vanishes at W = 0 for depth 3: no negative curvature (Kawaguchi 2016)
    assert abs(report.hessian_min) < 1e-12 and abs(report.hessian_max) < 1e-12
    assert report.verdict == "saddle"
    assert "degenerate" in report.reason
    base = _squared(weights, X, Y)
    moved = [t * d for d in report.escape.direction for t in [report.escape.smallest_step]]
    assert _squared(moved, X, Y) < base
    assert report.escape.smallest_step <= 1e-2 * 2**-4


def test_zero_weights_depth_two_is_a_strict_saddle():
    X, Y = _data()
    report = analyze([np.zeros((5, 4)), np.zeros((3, 5))], "squared", X, Y)
    assert report.verdict == "saddle" and report.justification == "negative-curvature"
    # at W = 0 the Hessian's off-diagonal block is grad f(0) = -Syx: eigenvalues +- singular values
    Syx = Y.T @ X / len(X)
    assert report.hessian_min == pytest.approx(-np.linalg.norm(Syx, 2), rel=1e-8)


def test_bottleneck_saddle_fails_the_subspace_condition():
    X, Y = _data(d0=5, dL=4)
    weights = _baldi_hornik_critical(X, Y, [0, 2])
    report = analyze(weights, "squared", X, Y)
    assert report.critical
    assert report.verdict == "saddle"
    assert report.conditions["subspace_sin_max_angle"] > 0.5
    assert report.optimality_gap == pytest.approx(
        _squared(weights, X, Y) - _squared([_reduced_rank(X, Y, 2)], X, Y), abs=1e-10
    )


def test_non_critical_point_reports_a_descent_step():
    X, Y = _data()
    rng = np.random.default_rng(5)
    weights = [rng.normal(size=(5, 4)), rng.normal(size=(3, 5))]
    report = analyze(weights, "squared", X, Y)
    assert report.verdict == "not_critical" and not report.critical
    moved = [w + report.escape.best_step * d for w, d in zip(weights, report.escape.direction, strict=True)]
    assert _squared(moved, X, Y) < _squared(weights, X, Y)
    assert len(report.gradient_norms) == 2 and all(g > 0 for g in report.gradient_norms)


def test_counterexample_local_minimum():
    f = counterexample_function()
    report = analyze(list(LOCAL_MINIMUM), f)
    assert report.loss_value == 0.0
    assert report.verdict == "local_minimum"
    assert report.width_condition and not report.differentiable
    # independent: 2|a| + |b - 1| - 1 >= -1 with equality at (a, b) = (0, 1)
    assert report.global_optimum == pytest.approx(-1.0, abs=1e-8)
    assert report.optimality_gap == pytest.approx(1.0, abs=1e-8)
    assert report.perturbation is not None and report.perturbation.passed
    assert min(report.perturbation.min_change) >= 0.0


def test_counterexample_global_minimum_and_smoothed_saddle():
    report = analyze(list(GLOBAL_MINIMUM), counterexample_function())
    assert report.verdict == "global_minimum" and report.loss_value == -1.0
    smooth = analyze(list(LOCAL_MINIMUM), counterexample_function(smoothing=0.1))
    assert smooth.critical and smooth.differentiable
    assert smooth.verdict == "saddle"
    # Hessian block [[2/delta, -1], [-1, 0]] in (x, z), 0 in y:
    # smallest eigenvalue 1/delta - sqrt(1/delta^2 + 1)
    assert smooth.hessian_min == pytest.approx(10.0 - np.sqrt(101.0), rel=1e-6)


def test_callable_loss_needs_no_data_and_refuses_data():
    with pytest.raises(ValueError, match="X and Y must be None"):
        analyze(list(LOCAL_MINIMUM), counterexample_function(), np.zeros((2, 1)), np.zeros((2, 2)))

    def f(A):
        return float(np.sum((A - 1.0) ** 2)), 2 * (A - 1.0)

    report = analyze([np.ones((1, 1)), np.ones((2, 1))], f, differentiable=True, convex=True)
    assert report.verdict == "global_minimum"


def _softmax_objective(X, labels, l2):
    def fun(a):
        A = a.reshape(3, X.shape[1])
        P = X @ A.T
        value = np.mean(logsumexp(P, axis=1) - P[np.arange(len(X)), labels]) + 0.5 * l2 * np.sum(A * A)
        S = np.exp(P - logsumexp(P, axis=1, keepdims=True))
        S[np.arange(len(X)), labels] -= 1.0
        return value, (S.T @ X / len(X) + l2 * A).ravel()

    return fun


def test_cross_entropy_global_minimum_against_independent_solve():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(60, 4))
    labels = rng.integers(0, 3, 60)
    fun = _softmax_objective(X, labels, 1e-2)
    solve = scipy.optimize.minimize(fun, np.zeros(12), jac=True, method="BFGS", options={"gtol": 1e-12})
    A = solve.x.reshape(3, 4)
    weights = _balanced(A, [4, 5])
    report = analyze(weights, "cross_entropy", X, labels, l2=1e-2)
    assert report.verdict == "global_minimum"
    assert report.optimality_gap == pytest.approx(fun(_product(weights).ravel())[0] - solve.fun, abs=1e-9)
    assert report.global_lower_bound <= report.global_optimum + 1e-12


def test_l1_loss_optimum_against_sklearn():
    from sklearn.linear_model import QuantileRegressor

    rng = np.random.default_rng(7)
    X = rng.normal(size=(50, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.standard_t(2, size=50)
    model = QuantileRegressor(quantile=0.5, alpha=0.0, fit_intercept=False, solver="highs").fit(X, y)
    independent = np.mean(np.abs(X @ model.coef_ - y))
    report = analyze([np.ones((2, 3)), np.ones((1, 2))], "l1", X, y)
    assert report.global_optimum == pytest.approx(independent, rel=1e-7)
    assert report.verdict == "not_critical"
    moved = [
        w + report.escape.best_step * d
        for w, d in zip([np.ones((2, 3)), np.ones((1, 2))], report.escape.direction, strict=True)
    ]
    assert np.mean(np.abs(X @ _product(moved).ravel() - y)) < np.mean(np.abs(X @ np.full(3, 2.0) - y))


def test_torch_weights_are_accepted():
    torch = pytest.importorskip("torch")
    X, Y = _data()
    A_ls = np.linalg.lstsq(X, Y, rcond=None)[0].T
    weights = [torch.tensor(w, requires_grad=True) for w in _balanced(A_ls, [5])]
    report = analyze(weights, "squared", X, Y)
    assert report.verdict == "global_minimum"


def test_bad_input_errors():
    X, Y = _data()
    with pytest.raises(
        ValueError, match=r"weights\[1\] has shape \(3, 4\) but weights\[0\] has shape \(5, 4\)"
    ):
        analyze([np.zeros((5, 4)), np.zeros((3, 4))], "squared", X, Y)
    with pytest.raises(ValueError, match=r"X must have shape \(n, 6\)"):
        analyze([np.zeros((5, 6)), np.zeros((3, 5))], "squared", X, Y)
    with pytest.raises(ValueError, match=r"Y must have shape \(40, 2\)"):
        analyze([np.zeros((5, 4)), np.zeros((2, 5))], "squared", X, Y)
    with pytest.raises(ValueError, match="at least one weight matrix"):
        analyze([], "squared", X, Y)
    with pytest.raises(ValueError, match="2-D matrix"):
        analyze([np.zeros((2, 5, 4))], "squared", X, Y)
    with pytest.raises(ValueError, match="loss must be one of"):
        analyze([np.zeros((3, 4))], "mse", X, Y)
    with pytest.raises(ValueError, match="needs data"):
        analyze([np.zeros((3, 4))], "squared")
    with pytest.raises(TypeError, match="single array"):
        analyze(np.zeros((3, 4)), "squared", X, Y)
    with pytest.raises(ValueError, match="must be finite"):
        analyze([np.full((3, 4), np.inf)], "squared", X, Y)


def test_report_is_json_serialisable():
    X, Y = _data()
    report = analyze([np.zeros((5, 4)), np.zeros((5, 5)), np.zeros((3, 5))], "squared", X, Y)
    payload = json.loads(to_json(report.to_dict()))
    assert payload["verdict"] == "saddle"
    assert np.array(payload["end_to_end"]).shape == (3, 4)
    assert len(payload["escape"]["direction"]) == 3
    assert "end_to_end" not in report.to_dict(include_arrays=False)
    assert "verdict: saddle" in report.summary()
