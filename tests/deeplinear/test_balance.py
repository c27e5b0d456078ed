"""Balanced factorisations and balancedness measures (Arora, Cohen & Hazan 2018, section 4)."""

from __future__ import annotations

import numpy as np
import pytest

from dltheory.deeplinear import balanced_factors, end_to_end_matrix, imbalance


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (1, 8)])
@pytest.mark.parametrize(("depth", "widths"), [(1, None), (2, None), (3, None), (3, [7, 4]), (4, [6, 6, 9])])
def test_balanced_factors_reproduce_target_exactly_and_are_balanced(shape, depth, widths):
    target = np.random.default_rng(0).standard_normal(shape)
    factors = balanced_factors(target, depth, widths, rng=np.random.default_rng(1))
    assert len(factors) == depth
    np.testing.assert_allclose(end_to_end_matrix(factors), target, atol=1e-12)
    assert np.all(imbalance(factors) < 1e-12)
    if widths is not None:
        assert [f.shape[0] for f in factors[:-1]] == widths


def test_balanced_factor_norms_are_nth_roots():
    target = np.diag([8.0, 1.0])
    for factor in balanced_factors(target, 3):
        np.testing.assert_allclose(np.linalg.svd(factor, compute_uv=False), [2.0, 1.0])


def test_low_rank_target_fits_narrow_hidden_layers():
    rng = np.random.default_rng(2)
    target = np.outer(rng.standard_normal(4), rng.standard_normal(6))  # rank 1
    factors = balanced_factors(target, 3, [1, 1])
    np.testing.assert_allclose(end_to_end_matrix(factors), target, atol=1e-12)
    with pytest.raises(ValueError, match=r"hidden_widths must be >= rank\(target\) = 2"):
        balanced_factors(rng.standard_normal((3, 3)) @ np.diag([1.0, 1.0, 0.0]), 2, [1])


def test_imbalance_detects_unbalanced_factors():
    factors = [np.array([[2.0, 0.0]]), np.array([[1.0]])]  # W2^T W2 = 1, W1 W1^T = 4
    np.testing.assert_allclose(imbalance(factors), [3.0])
    np.testing.assert_allclose(imbalance(factors, relative=True), [3.0 / 5.0])


def test_bad_input():
    with pytest.raises(ValueError, match="hidden_widths must hold depth - 1 = 2"):
        balanced_factors(np.eye(2), 3, [2])
    with pytest.raises(ValueError, match="factors\\[1\\] has shape"):
        end_to_end_matrix([np.ones((2, 3)), np.ones((2, 3))])
    with pytest.raises(ValueError, match="at least one matrix"):
        imbalance([])
