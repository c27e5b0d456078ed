"""Extreme eigenvalues of the Hessian of ``L(W) = f(W_L ... W_1)`` in weight space.

- ``"dense"``: the full Hessian (built from exact Hessian-vector products, see
  :class:`dltheory.deeplinear.product_map.ProductHessian`) and ``numpy.linalg.eigh``; small networks.
- ``"lanczos"`` (default for large networks): one matrix-free Lanczos run (Lanczos 1950) with full
  reorthogonalisation gives both ends of the spectrum from one Krylov space. It stops when both extreme
  Ritz pairs have residual ``||H y - theta y|| = beta_m |s_m| <= tol * max|theta|`` (Paige 1971), i.e.
  accuracy relative to the spectral radius: the spectrum of a deep linear network clusters at 0, where
  relative accuracy is unattainable.
- ``"arpack"``: ARPACK ``eigsh`` on a ``LinearOperator``, largest eigenvalue, then the largest of
  ``lambda_max I - H`` (the baseline of ``benchmarks/bench_landscape.py``).

Ritz values are inner bounds of the spectrum, so a negative ``min_eigenvalue`` comes with a vector of
genuinely negative curvature whether or not the iteration converged. A negative eigenvalue at a critical
point certifies a strict saddle and its eigenvector is an escape direction; a non-negative spectrum does
not certify a minimum (Kawaguchi 2016: ``W = 0`` at depth >= 3 is a saddle with a zero Hessian).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

from dltheory.core.validation import check_choice, check_int, check_positive
from dltheory.deeplinear.product_map import ProductHessian

DENSE_MAX_SIZE = 1200
#: memory allowed for the Lanczos basis (bytes); it caps the number of steps for very large networks.
LANCZOS_BASIS_BYTES = 512 * 2**20


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
    tol: float = 1e-4,
    max_matvecs: int = 300,
    seed: int = 0,
) -> HessianExtremes:
    """Extreme eigenvalues of the Hessian: ``method`` "auto" (dense up to :data:`DENSE_MAX_SIZE`
    parameters, else Lanczos), "dense", "lanczos" or "arpack". ``tol``: residual of the extreme Ritz pairs
    relative to the spectral radius; at most ``max_matvecs`` Hessian-vector products (then
    ``converged=False`` and the best Ritz pairs are returned)."""
    check_choice("method", method, ("auto", "dense", "lanczos", "arpack"))
    check_positive("tol", tol)
    check_int("max_matvecs", max_matvecs, minimum=2)
    size = hessian.size
    if method == "dense" or (method == "auto" and size <= DENSE_MAX_SIZE) or size < 4:
        eigval, eigvec = np.linalg.eigh(hessian.dense())
        return HessianExtremes(
            float(eigval[0]), float(eigval[-1]), eigvec[:, 0], eigvec[:, -1], "dense", size, True
        )
    rng = np.random.default_rng(seed)
    if method == "arpack":
        return _arpack(hessian, rng, tol, max_matvecs)
    return _lanczos(hessian.matvec, size, rng, tol, max_matvecs)


def _lanczos(
    matvec: Callable[[np.ndarray], np.ndarray],
    size: int,
    rng: np.random.Generator,
    tol: float,
    max_matvecs: int,
) -> HessianExtremes:
    steps = int(min(max_matvecs, size, max(LANCZOS_BASIS_BYTES // (8 * size), 2)))
    basis = np.empty((steps, size))
    v = rng.normal(size=size)
    basis[0] = v / np.linalg.norm(v)
    alpha: list[float] = []
    beta: list[float] = []
    converged = False
    theta = np.zeros(1)
    S = np.ones((1, 1))
    used = 0
    for j in range(steps):
        w = matvec(basis[j])
        alpha.append(float(basis[j] @ w))
        for _ in range(2):  # full reorthogonalisation, twice is enough (Parlett)
            w -= (basis[: j + 1] @ w) @ basis[: j + 1]
        b = float(np.linalg.norm(w))
        T = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
        theta, S = np.linalg.eigh(T)
        used = j + 1
        radius = max(abs(theta[0]), abs(theta[-1]))
        residual = b * np.abs(S[-1, [0, -1]])
        if np.all(residual <= tol * radius) or b <= 1e-14 * max(radius, 1e-300):
            converged = True
            break
        if j + 1 < steps:
            beta.append(b)
            basis[j + 1] = w / b
    vectors = basis[:used].T @ S[:, [0, -1]]
    vectors /= np.linalg.norm(vectors, axis=0)
    return HessianExtremes(
        float(theta[0]),
        float(theta[-1]),
        vectors[:, 0],
        vectors[:, 1],
        "lanczos (full reorthogonalisation, both ends from one Krylov space)",
        used,
        converged,
    )


def _arpack(
    hessian: ProductHessian, rng: np.random.Generator, tol: float, max_matvecs: int
) -> HessianExtremes:
    size = hessian.size
    count = [0]

    def matvec(v: np.ndarray) -> np.ndarray:
        count[0] += 1
        return hessian.matvec(v)

    operator = LinearOperator((size, size), matvec=matvec, dtype=np.float64)
    top, top_vec, ok_top = _arpack_largest(operator, rng, tol, max_matvecs // 2)
    shift = abs(top) * 1.001 if top != 0.0 else 1.0

    def shifted(v: np.ndarray) -> np.ndarray:
        return shift * v - matvec(v)

    shifted_operator = LinearOperator((size, size), matvec=shifted, dtype=np.float64)
    top_shifted, bottom_vec, ok_bottom = _arpack_largest(shifted_operator, rng, tol, max_matvecs // 2)
    return HessianExtremes(
        shift - top_shifted,
        top,
        bottom_vec,
        top_vec,
        "ARPACK eigsh: largest eigenvalue, then largest of (shift I - H)",
        count[0],
        ok_top and ok_bottom,
    )


def _arpack_largest(
    operator: LinearOperator, rng: np.random.Generator, tol: float, max_matvecs: int
) -> tuple[float, np.ndarray, bool]:
    size = operator.shape[0]
    ncv = min(size - 1, 20)
    try:
        value, vector = eigsh(
            operator,
            k=1,
            which="LA",
            tol=tol,
            ncv=ncv,
            v0=rng.normal(size=size),
            maxiter=max(max_matvecs // (ncv - 1), 1),
        )
        return float(value[0]), vector[:, 0], True
    except ArpackNoConvergence as exc:
        if exc.eigenvalues.size:
            return float(exc.eigenvalues[-1]), exc.eigenvectors[:, -1], False
    except ArpackError:  # e.g. a zero operator (W = 0 at depth >= 3): Krylov breakdown
        pass
    fallback = _lanczos(operator.matvec, size, rng, tol, min(max_matvecs, 30))
    return fallback.max_eigenvalue, fallback.max_vector, False
