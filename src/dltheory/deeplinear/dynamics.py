"""End-to-end dynamics of deep linear networks (Arora, Cohen & Hazan, ICML 2018, section 4).

A depth-N linear network computes ``x -> W_e x`` with ``W_e = W_N ... W_1``. Gradient descent with step
``lr`` and weight decay ``weight_decay`` on the factors, started from a balanced point
(``W_{j+1}^T W_{j+1} = W_j W_j^T``), moves the end-to-end matrix, to first order in ``lr``, by

    W_e <- (1 - lr * weight_decay * N) W_e
           - lr * sum_{j=1..N} [W_e W_e^T]^{(j-1)/N} grad [W_e^T W_e]^{(N-j)/N}

where ``grad = dL/dW_e`` and the powers are fractional powers of positive semi-definite matrices
(``P^0 = I``). The update depends on the depth N only, not on the hidden widths. With a single output
(``W_e`` a row vector ``w``) it collapses to (paper, section 4, single output)

    w <- (1 - lr * weight_decay * N) w - lr * ||w||^{2 - 2/N} (g + (N - 1) Pr_w(g)),

``Pr_w`` the projection onto the direction of ``w`` (zero at ``w = 0``).

Implementation: with the thin SVD ``W_e = U diag(s) V^T`` (k = min(m, n) singular values, zeros kept) the
sum is ``U [(U^T G V) o K] V^T`` plus the parts of ``G`` outside the row/column spaces, where
``K_{rr'} = sum_j s_r^{2(j-1)/N} s_{r'}^{2(N-j)/N}`` (``0^0 = 1``); see :func:`end_to_end_direction`.
This is exact (no approximation of the fractional powers) and costs one thin SVD.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dltheory.core.validation import as_float_array, check_int, check_positive


def check_weight_matrix(name: str, value: Any) -> np.ndarray:
    """A finite real 2-D array (an end-to-end matrix ``W_e`` or a gradient), else a clear error."""
    array = np.asarray(value)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D matrix (out_features x in_features), got an array of shape {array.shape}; "
            "reshape a single-output weight vector to (1, n) or use single_output_update"
        )
    try:
        return as_float_array(name, array)
    except ValueError as exc:
        raise ValueError(
            f"{exc}; the end-to-end update (its fractional matrix powers) is undefined at non-finite weights "
            "or gradients (has training diverged?)"
        ) from None


def check_depth(depth: Any) -> int:
    """Depth N of the product ``W_N ... W_1``: an integer >= 1."""
    return check_int("depth", depth, minimum=1)


def psd_power(matrix: Any, exponent: float, *, name: str = "matrix", rtol: float = 1e-10) -> np.ndarray:
    """Fractional power ``P^a`` of a symmetric positive semi-definite matrix by eigendecomposition.

    ``P = Q diag(lambda) Q^T`` gives ``P^a = Q diag(lambda^a) Q^T`` with ``0^0 = 1`` (so ``P^0 = I``).
    Eigenvalues within the rounding level of ``eigh`` (``10 * dim * eps * max|lambda|``) count as exact zeros
    and those in ``[-rtol * max|lambda|, 0)`` as rounding errors of zeros; a clearly negative
    eigenvalue (the power is then not real) or an asymmetric matrix raises ValueError. Negative exponents
    are refused because they are undefined on singular matrices.

    Examples:
        >>> import numpy as np
        >>> from dltheory.deeplinear import psd_power
        >>> psd_power(np.diag([4.0, 9.0]), 0.5)
        array([[2., 0.],
               [0., 3.]])
    """
    p = as_float_array(name, matrix)
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {p.shape}")
    a = float(check_positive("exponent", exponent, allow_zero=True))
    scale = float(np.max(np.abs(p))) if p.size else 0.0
    if not np.allclose(p, p.T, rtol=0.0, atol=1e-12 * max(scale, 1.0)):
        raise ValueError(
            f"{name} must be symmetric for a fractional power; max |P - P^T| = {np.max(np.abs(p - p.T)):.3g}"
        )
    eigenvalues, eigenvectors = np.linalg.eigh((p + p.T) / 2)
    tolerance = rtol * max(float(np.max(np.abs(eigenvalues))), np.finfo(np.float64).tiny)
    if np.any(eigenvalues < -tolerance):
        raise ValueError(
            f"{name} must be positive semi-definite for the fractional power {a}; smallest eigenvalue "
            f"{eigenvalues.min():.6g} (tolerance {tolerance:.3g})"
        )
    # eigenvalues below the rounding level of eigh (~ dim * eps * max) are zeros of P: a fractional power
    # would turn their noise (1e-16) into visible values (1e-16^(1/3) ~ 5e-6)
    noise = 10 * p.shape[0] * np.finfo(np.float64).eps * max(float(np.max(np.abs(eigenvalues))), 0.0)
    powered = np.power(np.where(eigenvalues > noise, eigenvalues, 0.0), a)
    return (eigenvectors * powered) @ eigenvectors.T


def kernel_matrix(
    left_singular_values: np.ndarray, right_singular_values: np.ndarray, depth: int
) -> np.ndarray:
    """``K_{rr'} = sum_{j=1..N} s_r^{2(j-1)/N} t_{r'}^{2(N-j)/N}`` (``0^0 = 1``): the eigenvalues of the
    end-to-end preconditioner on the rank-one matrices ``u_r v_{r'}^T`` (Arora et al. 2018, section 4,
    vectorised form)."""
    n = check_depth(depth)
    s = np.asarray(left_singular_values, dtype=np.float64)[:, None]
    t = np.asarray(right_singular_values, dtype=np.float64)[None, :]
    total = np.zeros((s.shape[0], t.shape[1]))
    for j in range(1, n + 1):
        total = total + np.power(s, 2.0 * (j - 1) / n) * np.power(t, 2.0 * (n - j) / n)
    return total


def end_to_end_direction(weight: Any, grad: Any, depth: int) -> np.ndarray:
    """The preconditioned gradient ``sum_j [W W^T]^{(j-1)/N} G [W^T W]^{(N-j)/N}`` (Arora et al., sec. 4).

    Exact, via the thin SVD ``W = U diag(s) V^T``:
    ``U [(U^T G V) o K] V^T + U diag(s^p) U^T G (I - V V^T) + (I - U U^T) G V diag(s^p) V^T`` with
    ``p = 2(N-1)/N`` and ``K`` from :func:`kernel_matrix`; the last two terms are the j = N and j = 1 terms
    acting on the parts of ``G`` outside the row and column spaces of the thin SVD (``P^0 = I`` there).
    """
    n = check_depth(depth)
    w = check_weight_matrix("weight", weight)
    g = check_weight_matrix("grad", grad)
    if g.shape != w.shape:
        raise ValueError(f"grad must have the shape of weight {w.shape}, got {g.shape}")
    if n == 1:
        return g.copy()
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    v = vt.T
    core = u.T @ g @ v
    direction = u @ (core * kernel_matrix(s, s, n)) @ vt
    powered = np.power(s, 2.0 * (n - 1) / n)
    if w.shape[1] > s.size:  # columns of G outside the row space of W: only the j = N term acts there
        direction += (u * powered) @ (u.T @ g - core @ vt)
    if w.shape[0] > s.size:  # rows of G outside the column space of W: only the j = 1 term acts there
        direction += ((g @ v - u @ core) * powered) @ vt
    return direction


def end_to_end_update(weight: Any, grad: Any, depth: int, lr: float, weight_decay: float = 0.0) -> np.ndarray:
    """The next end-to-end matrix of a depth-``depth`` linear network trained by gradient descent.

    ``W <- (1 - lr * weight_decay * N) W - lr * sum_j [W W^T]^{(j-1)/N} grad [W^T W]^{(N-j)/N}``: exact for
    gradient flow from a balanced start, first order in ``lr`` for gradient descent. Computed from one thin
    SVD of ``W`` (:func:`end_to_end_direction`). It depends on the depth only, not on the hidden widths.

    Args:
        weight: the end-to-end matrix ``W_e = W_N ... W_1``, shape ``(out, in)``.
        grad: the gradient of the loss at ``W_e``, same shape.
        depth: the number of factors N >= 1 (1 is plain gradient descent).
        lr: step size, > 0.
        weight_decay: weight decay of every factor, >= 0.

    Returns:
        The updated end-to-end matrix, shape ``(out, in)``.

    Raises:
        ValueError: for a non-integer or non-positive depth, shapes that differ, or non-finite entries
            ("has training diverged?").

    References:
        Arora, Cohen & Hazan (2018), section 4, Theorem 1. See docs/arora/theory.md.

    Examples:
        >>> import numpy as np
        >>> from dltheory.deeplinear import end_to_end_update
        >>> W = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.0]])
        >>> G = np.ones((2, 3))
        >>> end_to_end_update(W, G, depth=1, lr=0.1)                  # depth 1: plain gradient descent
        array([[ 0.9, -0.1, -0.1],
               [-0.1,  0.4, -0.1]])
        >>> end_to_end_update(W, G, depth=3, lr=0.1).round(4)        # depth 3: preconditioned by W
        array([[ 0.7   , -0.2027, -0.1   ],
               [-0.2027,  0.3809, -0.0397]])
    """
    w = check_weight_matrix("weight", weight)
    n = check_depth(depth)
    step = float(check_positive("lr", lr))
    decay = float(check_positive("weight_decay", weight_decay, allow_zero=True))
    return (1.0 - step * decay * n) * w - step * end_to_end_direction(w, grad, n)


def single_output_update(
    weight: Any, grad: Any, depth: int, lr: float, weight_decay: float = 0.0
) -> np.ndarray:
    """Closed form of :func:`end_to_end_update` for a single output.

    ``w <- (1 - lr * weight_decay * N) w - lr * ||w||^{2-2/N} (g + (N - 1) Pr_w(g))`` with
    ``Pr_w(g) = (w . g) w / ||w||^2`` (0 at ``w = 0``).

    Args:
        weight: the end-to-end vector, ``(n,)`` or a row ``(1, n)``.
        grad: the gradient at ``weight``, same number of entries.
        depth: number of factors N >= 1.
        lr: step size, > 0.
        weight_decay: weight decay, >= 0.

    Returns:
        The updated vector, of ``weight``'s shape.

    References:
        Arora, Cohen & Hazan (2018), section 4, Claim 1.

    Examples:
        >>> import numpy as np
        >>> from dltheory.deeplinear import single_output_update
        >>> single_output_update(np.array([3.0, 4.0]), np.array([1.0, 0.0]), depth=2, lr=0.1)
        array([2.32, 3.76])
    """
    w_in = np.asarray(weight)
    if not (w_in.ndim == 1 or (w_in.ndim == 2 and w_in.shape[0] == 1)):
        raise ValueError(
            f"weight must be a vector (n,) or a row (1, n) for a single output, got shape {w_in.shape}"
        )
    w = as_float_array("weight", w_in).ravel()
    g = as_float_array("grad", grad).ravel()
    if g.shape != w.shape:
        raise ValueError(f"grad must have {w.size} entries like weight, got shape {np.shape(grad)}")
    n = check_depth(depth)
    step = float(check_positive("lr", lr))
    decay = float(check_positive("weight_decay", weight_decay, allow_zero=True))
    norm2 = float(w @ w)
    projection = (w @ g) / norm2 * w if norm2 > 0 else np.zeros_like(w)
    direction = norm2 ** (1.0 - 1.0 / n) * (g + (n - 1) * projection) if n > 1 else g
    return ((1.0 - step * decay * n) * w - step * direction).reshape(w_in.shape)
