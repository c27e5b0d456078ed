"""Gradient-descent filters f_t, g_t against literal gradient descent and matrix exponentials."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm

from dltheory.learningdyn.filters import gd_filters


def _problem(p=6, n=9, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((p, n))
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    return x, y, rng.standard_normal(p)


@pytest.mark.parametrize("ridge", [0.0, 0.3])
def test_discrete_filter_is_gradient_descent(ridge):
    x, y, w0 = _problem()
    n = x.shape[1]
    alpha = 0.3
    lam, basis = np.linalg.eigh(x @ x.T / n)
    w = w0.copy()
    for step in range(1, 26):
        w = w - alpha * ((x @ x.T / n + ridge * np.eye(len(w))) @ w - x @ y / n)
        f, g = gd_filters(lam, np.array(step), alpha, ridge=ridge, discrete=True)
        predicted = basis @ (f * (basis.T @ w0) + g * (basis.T @ (x @ y / n)))
        np.testing.assert_allclose(predicted, w, rtol=1e-10, atol=1e-12)


def test_continuous_filter_is_gradient_flow():
    x, y, w0 = _problem()
    n = x.shape[1]
    hessian = x @ x.T / n + 0.2 * np.eye(len(w0))
    lam, basis = np.linalg.eigh(x @ x.T / n)
    alpha, t = 0.1, 7.5
    flow = expm(-alpha * t * hessian)
    exact = flow @ w0 + (np.eye(len(w0)) - flow) @ np.linalg.solve(hessian, x @ y / n)
    f, g = gd_filters(lam, np.array(t), alpha, ridge=0.2)
    np.testing.assert_allclose(basis @ (f * (basis.T @ w0) + g * (basis.T @ (x @ y / n))), exact, atol=1e-12)


@pytest.mark.parametrize("discrete", [False, True])
def test_filter_limits(discrete):
    x = np.array([0.0, 1e-300, 0.5, 2.0])
    f, g = gd_filters(x, np.array([3.0]), 0.1, discrete=discrete)
    assert f[0] == 1.0 and g[0] == pytest.approx(0.3)  # g_t(0) = alpha t
    assert g[1] == pytest.approx(0.3)
    f_inf, g_inf = gd_filters(x, np.array([np.inf]), 0.1, discrete=discrete)
    np.testing.assert_array_equal(f_inf, [1.0, 0.0, 0.0, 0.0])  # null space keeps w_0
    np.testing.assert_allclose(g_inf[2:], [2.0, 0.5])
    assert g_inf[0] == 0.0


def test_complex_nodes_match_real_formula():
    z = np.array([0.3 + 0.2j, 1.5 - 0.4j])
    f, g = gd_filters(z, np.array(4.0), 0.2, discrete=True)
    np.testing.assert_allclose(f, (1 - 0.2 * z) ** 4)
    np.testing.assert_allclose(g, (1 - (1 - 0.2 * z) ** 4) / z)
