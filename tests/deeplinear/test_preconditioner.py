"""The end-to-end preconditioner P_W as an explicit operator (Arora, Cohen & Hazan 2018, section 4)."""

from __future__ import annotations

import numpy as np
import pytest

from dltheory.deeplinear import EndToEndPreconditioner


def dense_from_apply(pre: EndToEndPreconditioner) -> np.ndarray:
    m, n = pre.shape
    columns = []
    for index in range(m * n):
        basis = np.zeros(m * n)
        basis[index] = 1.0
        columns.append(pre.apply(basis.reshape(m, n)).ravel())
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("shape", [(3, 4), (4, 3), (3, 3), (1, 5)])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_operator_kronecker_form_apply_and_spectrum_agree(shape, depth):
    w = np.random.default_rng(0).standard_normal(shape)
    pre = EndToEndPreconditioner(w, depth)
    dense = pre.matrix()
    np.testing.assert_allclose(dense, dense_from_apply(pre), atol=1e-10)
    np.testing.assert_allclose(dense, dense.T, atol=1e-10)
    np.testing.assert_allclose(
        np.sort(np.linalg.eigvalsh(dense)), np.sort(pre.eigenvalues().ravel()), atol=1e-9
    )
    assert pre.eigenvalues().min() > 0  # full rank W: positive definite


def test_depth_one_is_identity_and_eigenvalues_follow_singular_values():
    w = np.diag([2.0, 0.5])
    np.testing.assert_allclose(EndToEndPreconditioner(w, 1).matrix(), np.eye(4))
    # lambda_{rr'} = sum_j s_r^{2(j-1)/N} s_r'^{2(N-j)/N}; N = 2 -> s_r' + s_r
    np.testing.assert_allclose(EndToEndPreconditioner(w, 2).eigenvalues(), [[4.0, 2.5], [2.5, 1.0]])
    # N = 3, r = r': 3 s^{4/3}
    np.testing.assert_allclose(
        np.diag(EndToEndPreconditioner(w, 3).eigenvalues()), 3 * np.array([2.0, 0.5]) ** (4 / 3)
    )


def test_singular_exactly_when_rank_below_min_dimension():
    rng = np.random.default_rng(1)
    full = rng.standard_normal((2, 4))
    assert EndToEndPreconditioner(full, 3).condition_number() < np.inf
    deficient = np.outer(rng.standard_normal(3), rng.standard_normal(4))
    assert EndToEndPreconditioner(deficient, 3).condition_number() == np.inf
    assert EndToEndPreconditioner(deficient, 1).condition_number() == 1.0


def test_bad_input():
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        EndToEndPreconditioner(np.eye(2), 0)
    with pytest.raises(ValueError, match="2-D matrix"):
        EndToEndPreconditioner(np.ones(3), 2)
    with pytest.raises(ValueError, match="too large"):
        EndToEndPreconditioner(np.ones((100, 100)), 2).matrix()
