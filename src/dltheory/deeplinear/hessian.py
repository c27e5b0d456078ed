"""Extreme eigenvalues of the Hessian of ``L(W) = f(W_L ... W_1)`` in weight space.

Small networks: the dense Hessian (built from exact Hessian-vector products, see
:class:`dltheory.deeplinear.product_map.ProductHessian`) and ``numpy.linalg.eigh``. Large networks:
matrix-free Lanczos (ARPACK ``eigsh`` on a ``LinearOperator``): the largest eigenvalue first, then the
largest eigenvalue of ``lambda_max I - H``, so the smallest eigenvalue is resolved to an accuracy relative
to ``lambda_max`` (the spectrum of a deep linear network clusters at 0, where relative accuracy is
unattainable). A negative eigenvalue at a critical point certifies a strict saddle and its
eigenvector is an escape direction; a non-negative spectrum does not certify a minimum (Kawaguchi 2016:
``W = 0`` at depth >= 3 is a saddle with a zero Hessian).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from dltheory.core.validation import check_choice
from dltheory.deeplinear.product_map import ProductHessian

DENSE_MAX_SIZE = 1200


@dataclass
class HessianExtremes:
    """Smallest and largest Hessian eigenvalues with unit eigenvectors (flat weight layout)."""

    min_eigenvalue: float
    max_eigenvalue: float
    min_vector: np.ndarray
    max_vector: np.ndarray
    method: str
    matvecs: int
    converged: bool


def hessian_extremes(
    hessian: ProductHessian,
    *,
    method: str = "auto",
    tol: float = 1e-6,
    max_matvecs: int = 400,
    seed: int = 0,
) -> HessianExtremes:
    """Extreme eigenvalues of the Hessian: ``method`` "dense", "lanczos" or "auto" (dense up to
    :data:`DENSE_MAX_SIZE` parameters). ``tol`` is ARPACK's relative accuracy; Lanczos stops after
    about ``max_matvecs`` products and returns its best Ritz values (``converged=False``)."""
    check_choice("method", method, ("auto", "dense", "lanczos"))
    size = hessian.size
    if method == "dense" or (method == "auto" and size <= DENSE_MAX_SIZE) or size < 4:
        eigval, eigvec = np.linalg.eigh(hessian.dense())
        return HessianExtremes(
            float(eigval[0]), float(eigval[-1]), eigvec[:, 0], eigvec[:, -1], "dense", size, True
        )
    count = [0]

    def matvec(v: np.ndarray) -> np.ndarray:
        count[0] += 1
        return hessian.matvec(v)

    rng = np.random.default_rng(seed)
    top, top_vec, ok_top = _largest(
        LinearOperator((size, size), matvec=matvec, dtype=np.float64), rng, tol, max_matvecs // 2, hessian
    )
    shift = abs(top) * 1.001 + np.finfo(float).tiny

    def shifted(v: np.ndarray) -> np.ndarray:
        return shift * v - matvec(v)

    operator = LinearOperator((size, size), matvec=shifted, dtype=np.float64)
    top_shifted, bottom_vec, ok_bottom = _largest(operator, rng, tol, max_matvecs // 2, hessian, shift=shift)
    return HessianExtremes(
        shift - top_shifted,
        top,
        bottom_vec,
        top_vec,
        "lanczos (ARPACK eigsh): largest eigenvalue, then largest of (shift I - H)",
        count[0],
        ok_top and ok_bottom,
    )


def _largest(
    operator: LinearOperator,
    rng: np.random.Generator,
    tol: float,
    max_matvecs: int,
    hessian: ProductHessian,
    shift: float = 0.0,
) -> tuple[float, np.ndarray, bool]:
    size = operator.shape[0]
    ncv = min(size - 1, 20)
    v0 = rng.normal(size=size)
    try:
        value, vector = eigsh(
            operator, k=1, which="LA", tol=tol, ncv=ncv, v0=v0, maxiter=max(max_matvecs // (ncv - 1), 1)
        )
        return float(value[0]), vector[:, 0], True
    except ArpackNoConvergence as exc:
        if exc.eigenvalues.size:
            return float(exc.eigenvalues[-1]), exc.eigenvectors[:, -1], False
    value, vector = _lanczos_top(operator, rng, steps=min(size, 30))
    return value, vector, False


def _lanczos_top(
    operator: LinearOperator, rng: np.random.Generator, *, steps: int
) -> tuple[float, np.ndarray]:
    """Plain Lanczos with full reorthogonalisation for ``steps`` steps: the top Ritz pair (a lower bound
    on the largest eigenvalue, used when ARPACK does not converge)."""
    size = operator.shape[0]
    basis = np.zeros((size, steps))
    v = rng.normal(size=size)
    basis[:, 0] = v / np.linalg.norm(v)
    alpha = np.zeros(steps)
    beta = np.zeros(steps)
    used = steps
    for j in range(steps):
        w = operator.matvec(basis[:, j])
        alpha[j] = basis[:, j] @ w
        for _ in range(2):
            w -= basis[:, : j + 1] @ (basis[:, : j + 1].T @ w)
        if j + 1 < steps:
            beta[j] = np.linalg.norm(w)
            if beta[j] < 1e-14 * max(abs(alpha[j]), 1.0):
                used = j + 1
                break
            basis[:, j + 1] = w / beta[j]
    T = np.diag(alpha[:used]) + np.diag(beta[: used - 1], 1) + np.diag(beta[: used - 1], -1)
    theta, S = np.linalg.eigh(T)
    return float(theta[-1]), basis[:, :used] @ S[:, -1]
