"""The end-to-end preconditioner of a depth-N linear network as an explicit linear operator.

Arora, Cohen & Hazan (2018), section 4: in vectorised form the end-to-end update is
``vec(W) <- vec(W) - lr * P_W vec(grad)`` with

    P_W = sum_{j=1..N} [W W^T]^{(j-1)/N} (x) [W^T W]^{(N-j)/N}

(row-major vec, ``vec(A X B) = (A (x) B^T) vec(X)``; the powers of ``W^T W`` are symmetric),

a symmetric positive semi-definite operator on ``m x n`` matrices. With the full SVD ``W = U S V^T`` its
eigenvectors are the rank-one matrices ``u_r v_{r'}^T`` and its eigenvalues

    lambda_{r r'} = sum_{j=1..N} s_r^{2(j-1)/N} s_{r'}^{2(N-j)/N}         (``0^0 = 1``)

over all pairs of singular values, padded with zeros to lengths m and n. N = 1 gives the identity; for
N >= 2 an eigenvalue vanishes only when both s_r and s_{r'} are zero, i.e. P_W is singular exactly when
rank(W) < min(m, n) (at W = 0 it is the zero operator). Directions along large singular values are
stretched: the paper reads this as an adaptive learning rate combined with momentum-like behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dltheory.deeplinear.dynamics import (
    check_depth,
    check_weight_matrix,
    end_to_end_direction,
    kernel_matrix,
    psd_power,
)


@dataclass(frozen=True)
class EndToEndPreconditioner:
    """The preconditioner ``P_W`` of the depth-N end-to-end dynamics at the end-to-end matrix ``weight``.

    In vectorised form the end-to-end update is ``vec(W) <- ... - lr P_W vec(grad)``; ``P_W`` is positive
    semi-definite with eigenvalues ``sum_j s_r^{2(N-j)/N} s_r'^{2(j-1)/N}`` over pairs of singular values of
    ``W`` (zero-padded).

    Args:
        weight: the end-to-end matrix, shape ``(m, n)``.
        depth: number of factors N >= 1.

    References:
        Arora, Cohen & Hazan (2018), section 4.

    Examples:
        >>> import numpy as np
        >>> from dltheory.deeplinear import EndToEndPreconditioner
        >>> P = EndToEndPreconditioner(np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.0]]), depth=2)
        >>> P.eigenvalues()
        array([[2. , 1.5, 1. ],
               [1.5, 1. , 0.5]])
    """

    weight: np.ndarray
    depth: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", check_weight_matrix("weight", self.weight))
        object.__setattr__(self, "depth", check_depth(self.depth))

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.weight.shape[0]), int(self.weight.shape[1]))

    def apply(self, grad: Any) -> np.ndarray:
        """``P_W(grad)`` as an ``(m, n)`` matrix (the end-to-end update direction)."""
        return end_to_end_direction(self.weight, grad, self.depth)

    def eigenvalues(self) -> np.ndarray:
        """All ``m * n`` eigenvalues ``lambda_{r r'}`` as an ``(m, n)`` array (row r: left singular vector
        u_r, column r': right singular vector v_{r'}; singular values in decreasing order, zero-padded;
        singular values at rounding level, ``max(m, n) * eps * s_max``, count as zeros)."""
        m, n = self.shape
        s = np.linalg.svd(self.weight, compute_uv=False)
        s = np.where(s > max(m, n) * np.finfo(np.float64).eps * s.max(initial=0.0), s, 0.0)  # exact zeros
        left = np.zeros(m)
        right = np.zeros(n)
        left[: s.size] = s
        right[: s.size] = s
        return kernel_matrix(left, right, self.depth)

    def matrix(self) -> np.ndarray:
        """Dense ``(m n) x (m n)`` matrix of ``P_W`` in row-major vec convention, built from the Kronecker
        sum of fractional powers (eigendecomposition of ``W W^T`` and ``W^T W``). For small matrices only."""
        m, n = self.shape
        if m * n > 4096:
            raise ValueError(
                f"matrix() builds an (mn x mn) array; weight of shape {self.shape} is too large "
                "(m * n must be <= 4096); use apply() instead"
            )
        left = self.weight @ self.weight.T
        right = self.weight.T @ self.weight
        total = np.zeros((m * n, m * n))
        for j in range(1, self.depth + 1):
            a = psd_power(left, (j - 1) / self.depth, name="W W^T")
            b = psd_power(right, (self.depth - j) / self.depth, name="W^T W")
            total += np.kron(a, b.T)
        return total

    def condition_number(self) -> float:
        """``max lambda / min lambda`` (inf when ``P_W`` is singular)."""
        values = self.eigenvalues()
        smallest = float(values.min())
        return float(values.max()) / smallest if smallest > 0 else float("inf")
