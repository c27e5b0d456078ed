"""End-to-end update of deep linear networks (Arora, Cohen & Hazan 2018) against an explicit depth-N
network trained by gradient descent, and against the literal fractional-power formula."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from dltheory.deeplinear import (
    balanced_factors,
    end_to_end_direction,
    end_to_end_matrix,
    end_to_end_update,
    imbalance,
    psd_power,
    single_output_update,
)


def literal_direction(w: np.ndarray, g: np.ndarray, depth: int) -> np.ndarray:
    """sum_j [W W^T]^{(j-1)/N} G [W^T W]^{(N-j)/N} term by term (independent of the SVD kernel route)."""
    left, right = w @ w.T, w.T @ w
    total = np.zeros_like(g)
    for j in range(1, depth + 1):
        a = np.eye(left.shape[0]) if j == 1 else _power(left, (j - 1) / depth)
        b = np.eye(right.shape[0]) if j == depth else _power(right, (depth - j) / depth)
        total += a @ g @ b
    return total


def _power(p: np.ndarray, exponent: float) -> np.ndarray:
    # PSD power through the SVD P = Q diag(l) Q^T; singular values at rounding level are exact zeros
    u, s, _ = np.linalg.svd(p)
    s = np.where(s > 1e-13 * s.max(), s, 0.0)
    return (u * s**exponent) @ u.T


def factor_gradients(factors: list[np.ndarray], grad: np.ndarray) -> list[np.ndarray]:
    """dL/dW_j = (W_N ... W_{j+1})^T G (W_{j-1} ... W_1)^T for L(W_N ... W_1)."""
    grads = []
    for j in range(len(factors)):
        below = end_to_end_matrix(factors[:j]) if j > 0 else np.eye(factors[0].shape[1])
        above = end_to_end_matrix(factors[j + 1 :]) if j + 1 < len(factors) else np.eye(factors[-1].shape[0])
        grads.append(above.T @ grad @ below.T)
    return grads


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4), (1, 6), (6, 1)])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_direction_matches_literal_fractional_powers(shape, depth):
    rng = np.random.default_rng(0)
    w, g = rng.standard_normal(shape), rng.standard_normal(shape)
    np.testing.assert_allclose(end_to_end_direction(w, g, depth), literal_direction(w, g, depth), atol=1e-10)


@pytest.mark.parametrize("depth", [2, 3])
def test_direction_on_rank_deficient_weight_uses_identity_zeroth_power(depth):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 2)) @ rng.standard_normal((2, 5))  # rank 2
    g = rng.standard_normal((4, 5))
    np.testing.assert_allclose(end_to_end_direction(w, g, depth), literal_direction(w, g, depth), atol=1e-9)
    # at W = 0 every term has a positive power on one side: the update vanishes (saddle of depth >= 2)
    np.testing.assert_array_equal(end_to_end_direction(np.zeros((4, 5)), g, depth), np.zeros((4, 5)))


def test_psd_power_against_scipy_and_identities():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((5, 5))
    p = a @ a.T + 0.1 * np.eye(5)
    np.testing.assert_allclose(
        psd_power(p, 0.3), np.real(scipy.linalg.fractional_matrix_power(p, 0.3)), rtol=1e-9
    )
    np.testing.assert_allclose(psd_power(p, 0.5) @ psd_power(p, 0.5), p, rtol=1e-10)
    np.testing.assert_allclose(psd_power(p, 0.0), np.eye(5), atol=1e-12)
    singular = a[:, :2] @ a[:, :2].T
    np.testing.assert_allclose(
        psd_power(singular, 1.0 / 3) @ psd_power(singular, 2.0 / 3), singular, atol=1e-9
    )


def test_single_output_closed_form_equals_matrix_form():
    rng = np.random.default_rng(3)
    w, g = rng.standard_normal(7), rng.standard_normal(7)
    for depth in (1, 2, 3, 5):
        general = end_to_end_update(w[None, :], g[None, :], depth, lr=0.1, weight_decay=0.01)
        closed = single_output_update(w, g, depth, lr=0.1, weight_decay=0.01)
        np.testing.assert_allclose(closed, general[0], rtol=1e-12)
    np.testing.assert_allclose(single_output_update(np.zeros(7), g, 3, lr=0.1), np.zeros(7))
    np.testing.assert_allclose(single_output_update(np.zeros(7), g, 1, lr=0.1), -0.1 * g)


def test_weight_decay_scales_by_one_minus_lr_lambda_depth():
    w = np.random.default_rng(4).standard_normal((3, 4))
    np.testing.assert_allclose(
        end_to_end_update(w, np.zeros_like(w), 3, lr=0.1, weight_decay=0.2), (1 - 0.06) * w
    )


def explicit_and_end_to_end(depth, widths, lr, total_time, weight_decay=0.0, seed=5):
    """Train a depth-N network by GD from a balanced start and follow the end-to-end rule in parallel.
    Loss: L(W) = ||W X - Y||^2 / (2 n) with a random teacher."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 30))
    y = rng.standard_normal((3, 4)) @ x + 0.1 * rng.standard_normal((3, 30))
    start = 0.3 * rng.standard_normal((3, 4))

    def grad(w):
        return (w @ x - y) @ x.T / x.shape[1]

    factors = balanced_factors(start, depth, widths, rng=np.random.default_rng(seed + 1))
    w_e2e = start.copy()
    for _ in range(int(round(total_time / lr))):
        g_factors = factor_gradients(factors, grad(end_to_end_matrix(factors)))
        factors = [(1 - lr * weight_decay) * f - lr * gf for f, gf in zip(factors, g_factors, strict=True)]
        w_e2e = end_to_end_update(w_e2e, grad(w_e2e), depth, lr, weight_decay)
    return factors, w_e2e, start


@pytest.mark.parametrize(("depth", "widths"), [(2, [3]), (3, [6, 5]), (4, [3, 7, 4])])
def test_gradient_descent_on_explicit_network_follows_end_to_end_rule(depth, widths):
    lrs = (0.04, 0.02, 0.01)
    errors, moves = [], []
    for lr in lrs:
        factors, w_e2e, start = explicit_and_end_to_end(depth, widths, lr, total_time=2.0)
        w_explicit = end_to_end_matrix(factors)
        errors.append(np.linalg.norm(w_explicit - w_e2e) / np.linalg.norm(w_explicit - start))
        moves.append(np.linalg.norm(w_explicit - start))
    assert min(moves) > 0.3  # the trajectory goes somewhere
    assert errors[-1] < 0.02
    # first-order agreement: halving the step halves the deviation
    for coarse, fine in zip(errors[:-1], errors[1:], strict=True):
        assert 0.4 < fine / coarse < 0.6, errors


def test_end_to_end_dynamics_do_not_depend_on_hidden_widths():
    narrow, _, _ = explicit_and_end_to_end(3, [3, 3], 0.005, 1.0)
    wide, _, _ = explicit_and_end_to_end(3, [9, 12], 0.005, 1.0)
    a, b = end_to_end_matrix(narrow), end_to_end_matrix(wide)
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 5e-3


@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_balancedness_preserved_up_to_discretisation(weight_decay):
    imbalances = []
    for lr in (0.02, 0.01):
        factors, w_e2e, _ = explicit_and_end_to_end(3, [5, 5], lr, total_time=2.0, weight_decay=weight_decay)
        imbalances.append(imbalance(factors, relative=True).max())
        assert np.linalg.norm(end_to_end_matrix(factors) - w_e2e) / np.linalg.norm(w_e2e) < 0.05
    assert imbalances[-1] < 5e-3
    assert 0.35 < imbalances[1] / imbalances[0] < 0.65  # O(lr) after a fixed time: vanishes as lr -> 0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: end_to_end_update(np.ones((2, 2)), np.ones((2, 2)), 0, 0.1),
            "depth must be an integer >= 1",
        ),
        (lambda: end_to_end_update(np.ones((2, 2)), np.ones((2, 2)), 2.5, 0.1), "depth must be an integer"),
        (lambda: end_to_end_update(np.ones(3), np.ones(3), 2, 0.1), "weight must be a 2-D matrix"),
        (lambda: end_to_end_update(np.ones((2, 2)), np.ones((2, 3)), 2, 0.1), "grad must have the shape"),
        (lambda: end_to_end_update(np.ones((2, 2)), np.full((2, 2), np.nan), 2, 0.1), "grad must be finite"),
        (lambda: end_to_end_update(np.ones((2, 2)), np.ones((2, 2)), 2, -0.1), "lr must be > 0"),
        (lambda: psd_power(np.array([[1.0, 0.0], [0.0, -1.0]]), 0.5), "positive semi-definite"),
        (lambda: psd_power(np.array([[1.0, 1.0], [0.0, 1.0]]), 0.5), "symmetric"),
        (lambda: psd_power(np.eye(2), -0.5), "exponent must be >= 0"),
        (lambda: single_output_update(np.ones((2, 3)), np.ones(6), 2, 0.1), "single output"),
    ],
)
def test_bad_input_raises_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
