"""Balancedness of the factors of a deep linear network (Arora, Cohen & Hazan 2018, section 4).

Factors ``[W_1, ..., W_N]`` with ``W_j`` of shape ``(d_j, d_{j-1})`` (``W_1`` acts first) compute
``W_e = W_N ... W_1``. They are *balanced* when ``W_{j+1}^T W_{j+1} = W_j W_j^T`` for j = 1..N-1
(paper, section 4). Gradient flow keeps the differences ``W_{j+1}^T W_{j+1} - W_j W_j^T``
constant (also with weight decay, where they decay as ``exp(-2 lambda t)``), so a balanced start stays
balanced; the end-to-end dynamics of :mod:`dltheory.deeplinear.dynamics` assume it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dltheory.core.validation import check_int
from dltheory.deeplinear.dynamics import check_depth, check_weight_matrix


def _check_factors(factors: Sequence[Any]) -> list[np.ndarray]:
    if len(factors) == 0:
        raise ValueError("factors must hold at least one matrix [W_1, ..., W_N], got an empty sequence")
    mats = [check_weight_matrix(f"factors[{i}]", f) for i, f in enumerate(factors)]
    for i in range(1, len(mats)):
        if mats[i].shape[1] != mats[i - 1].shape[0]:
            raise ValueError(
                f"factors[{i}] has shape {mats[i].shape} but factors[{i - 1}] outputs {mats[i - 1].shape[0]} "
                f"features; W_{{j+1}} must have as many columns as W_j has rows"
            )
    return mats


def end_to_end_matrix(factors: Sequence[Any]) -> np.ndarray:
    """``W_e = W_N ... W_1`` for factors ``[W_1, ..., W_N]`` (``W_1`` applied first)."""
    mats = _check_factors(factors)
    product = mats[0]
    for mat in mats[1:]:
        product = mat @ product
    return product


def imbalance(factors: Sequence[Any], *, relative: bool = False) -> np.ndarray:
    """``||W_{j+1}^T W_{j+1} - W_j W_j^T||_F`` for j = 1..N-1 (empty for N = 1).

    ``relative=True`` divides each by ``||W_j||_F^2 + ||W_{j+1}||_F^2`` (0 where both factors vanish), a
    scale-free measure: 0 for balanced factors, at most 1.
    """
    mats = _check_factors(factors)
    values = []
    for lower, upper in zip(mats[:-1], mats[1:], strict=True):
        gap = float(np.linalg.norm(upper.T @ upper - lower @ lower.T))
        if relative:
            scale = float(np.sum(lower**2) + np.sum(upper**2))
            gap = gap / scale if scale > 0 else 0.0
        values.append(gap)
    return np.asarray(values, dtype=np.float64)


def balanced_factors(
    target: Any,
    depth: int,
    hidden_widths: Sequence[int] | None = None,
    *,
    rng: np.random.Generator | None = None,
    truncate: bool = False,
) -> list[np.ndarray]:
    """Exactly balanced factors ``[W_1, ..., W_N]`` whose product is ``target`` (shape ``(m, n)``).

    With the thin SVD ``target = U diag(s) V^T`` (k = min(m, n)) and matrices ``Q_j`` (``d_j x k``) with
    orthonormal columns: ``W_1 = Q_1 S^{1/N} V^T``, ``W_j = Q_j S^{1/N} Q_{j-1}^T``,
    ``W_N = U S^{1/N} Q_{N-1}^T``. Then every ``W_{j+1}^T W_{j+1} = W_j W_j^T = Q_j S^{2/N} Q_j^T`` (the
    balanced initialisation of Arora, Cohen, Golowich & Hu 2019, procedure 1).

    ``hidden_widths`` (N - 1 integers, default ``[min(m, n)] * (N - 1)``) must be at least ``rank(target)``,
    unless ``truncate=True``: then the product is the best approximation of ``target`` of rank
    ``min(hidden_widths)`` (Eckart-Young: the largest singular values are kept). The ``Q_j`` are
    Haar-random when ``rng`` is given and the first columns of the identity otherwise.

    Examples:
        >>> import numpy as np
        >>> from dltheory.deeplinear import balanced_factors, end_to_end_matrix, imbalance
        >>> W = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.0]])
        >>> factors = balanced_factors(W, depth=3, hidden_widths=[4, 6], rng=np.random.default_rng(0))
        >>> [f.shape for f in factors]
        [(4, 3), (6, 4), (2, 6)]
        >>> bool(np.allclose(end_to_end_matrix(factors), W)), bool(imbalance(factors).max() < 1e-12)
        (True, True)
    """
    w = check_weight_matrix("target", target)
    n_layers = check_depth(depth)
    m, n = w.shape
    k = min(m, n)
    widths = (
        [k] * (n_layers - 1)
        if hidden_widths is None
        else [check_int("hidden_widths[i]", d, minimum=1) for d in hidden_widths]
    )
    if len(widths) != n_layers - 1:
        raise ValueError(f"hidden_widths must hold depth - 1 = {n_layers - 1} widths, got {list(widths)}")
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    if n_layers == 1:
        return [w.copy()]
    rank = int(np.sum(s > s.max(initial=0.0) * max(m, n) * np.finfo(np.float64).eps))
    keep = min([k, *widths])
    if keep < rank and not truncate:
        raise ValueError(
            f"hidden_widths must be >= rank(target) = {rank} to represent target exactly, got {list(widths)}"
        )
    u, s, vt = u[:, :keep], s[:keep], vt[:keep]
    root = np.power(s, 1.0 / n_layers)
    bases = [_orthonormal_columns(d, keep, rng) for d in widths]
    factors = [bases[0] * root @ vt]
    for j in range(1, n_layers - 1):
        factors.append(bases[j] * root @ bases[j - 1].T)
    factors.append(u * root @ bases[-1].T)
    return factors


def _orthonormal_columns(rows: int, cols: int, rng: np.random.Generator | None) -> np.ndarray:
    if rng is None:
        return np.eye(rows, cols)
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.sign(np.diag(r))
