"""The weight-space derivatives behind the certificates: layer gradients and Hessian-vector products
against finite differences, Lanczos extremes against the dense spectrum, the transposed shortcut."""

from __future__ import annotations

import numpy as np
import pytest

from dltheory.deeplinear.hessian import hessian_extremes
from dltheory.deeplinear.objective import make_objective
from dltheory.deeplinear.product_map import (
    ProductHessian,
    differential,
    end_to_end,
    flatten,
    layer_gradients,
)


def _problem(dims, loss, seed):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(scale=0.7, size=(dims[k + 1], dims[k])) for k in range(len(dims) - 1)]
    X = rng.normal(size=(30, dims[0]))
    Y = rng.integers(0, dims[-1], 30) if loss == "cross_entropy" else rng.normal(size=(30, dims[-1]))
    params = {"p": 4.0} if loss == "lp" else {}
    return weights, make_objective(loss, X, Y, (dims[-1], dims[0]), **params), rng


def _loss(objective, weights):
    return float(objective.value(end_to_end(weights)))


@pytest.mark.parametrize("dims", [(4, 5, 3, 2), (2, 3, 4, 5), (3, 3)])
@pytest.mark.parametrize("loss", ["squared", "cross_entropy", "lp"])
def test_gradient_and_hvp_match_finite_differences(dims, loss):
    weights, objective, rng = _problem(dims, loss, 0)
    V = [rng.normal(size=w.shape) for w in weights]
    h = 1e-6
    plus = [w + h * v for w, v in zip(weights, V, strict=True)]
    minus = [w - h * v for w, v in zip(weights, V, strict=True)]
    A = end_to_end(weights)
    grads = layer_gradients(weights, objective.gradient(A))
    numeric = (_loss(objective, plus) - _loss(objective, minus)) / (2 * h)
    assert numeric == pytest.approx(sum(np.sum(g * v) for g, v in zip(grads, V, strict=True)), rel=1e-6)

    def flat_grad(ws):
        return flatten(layer_gradients(ws, objective.gradient(end_to_end(ws))))

    hessian = ProductHessian(weights, objective.gradient(A), lambda dA: objective.hessian_vector(A, dA))
    np.testing.assert_allclose(
        hessian.matvec(flatten(V)), (flat_grad(plus) - flat_grad(minus)) / (2 * h), rtol=1e-5, atol=1e-7
    )
    dA = (end_to_end(plus) - end_to_end(minus)) / (2 * h)
    np.testing.assert_allclose(differential(weights, V), dA, rtol=1e-6, atol=1e-8)


def test_dense_hessian_is_symmetric_and_matches_matvec():
    weights, objective, rng = _problem((3, 4, 2), "squared", 1)
    A = end_to_end(weights)
    hessian = ProductHessian(weights, objective.gradient(A), lambda dA: objective.hessian_vector(A, dA))
    H = hessian.dense()
    assert H.shape == (hessian.size, hessian.size)
    v = rng.normal(size=hessian.size)
    np.testing.assert_allclose(H @ v, hessian.matvec(v), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hessian.matmat(np.stack([v, 2 * v], axis=1))[:, 1], 2 * H @ v, rtol=1e-10)


@pytest.mark.parametrize("dims", [(12, 10, 9, 6), (6, 9, 10, 12)])
def test_lanczos_extremes_match_dense_spectrum(dims):
    weights, objective, _ = _problem(dims, "squared", 2)
    A = end_to_end(weights)
    hessian = ProductHessian(weights, objective.gradient(A), lambda dA: objective.hessian_vector(A, dA))
    eigenvalues = np.linalg.eigvalsh(hessian.dense())
    lanczos = hessian_extremes(hessian, method="lanczos", tol=1e-8, max_matvecs=2000)
    scale = eigenvalues[-1]
    assert lanczos.max_eigenvalue == pytest.approx(eigenvalues[-1], rel=1e-6)
    assert lanczos.min_eigenvalue == pytest.approx(eigenvalues[0], abs=1e-6 * scale)
    # the eigenvector is a genuine direction of that curvature
    v = lanczos.min_vector
    assert v @ hessian.matvec(v) == pytest.approx(lanczos.min_eigenvalue, abs=1e-6 * scale)
    arpack = hessian_extremes(hessian, method="arpack", tol=1e-8, max_matvecs=4000)
    assert arpack.max_eigenvalue == pytest.approx(eigenvalues[-1], rel=1e-6)
    assert arpack.min_eigenvalue == pytest.approx(eigenvalues[0], abs=1e-6 * scale)
    dense = hessian_extremes(hessian, method="dense")
    assert dense.min_eigenvalue == pytest.approx(eigenvalues[0], abs=1e-10 * scale)


def test_lanczos_on_a_zero_hessian():
    """W = 0 at depth 3 with a zero-gradient loss: the Hessian is exactly 0 (Krylov breakdown)."""
    weights = [np.zeros((30, 30)) for _ in range(3)]
    A = end_to_end(weights)
    hessian = ProductHessian(weights, np.zeros_like(A), lambda dA: 0.0 * dA)
    for method in ("lanczos", "arpack"):
        result = hessian_extremes(hessian, method=method)
        assert result.min_eigenvalue == 0.0 and result.max_eigenvalue == 0.0


def test_hessian_extremes_rejects_unknown_method():
    weights, objective, _ = _problem((2, 2), "squared", 3)
    A = end_to_end(weights)
    hessian = ProductHessian(weights, objective.gradient(A), lambda dA: objective.hessian_vector(A, dA))
    with pytest.raises(ValueError, match="method must be one of"):
        hessian_extremes(hessian, method="power")
