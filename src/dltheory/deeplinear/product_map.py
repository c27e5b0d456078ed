"""The product map ``W -> A = W_L ... W_1`` of a deep linear network and the derivatives of
``L(W) = f(A(W))``.

Layer k (1-based in the docs, 0-based in code) has weight ``W_k`` of shape ``(d_k, d_{k-1})``, the torch
``nn.Linear`` layout. With ``P_k = W_L ... W_{k+1}`` and ``Q_k = W_{k-1} ... W_1`` the first-order
conditions of Laurent & von Brecht (ICML 2018, eq. (2)) read ``grad_k L = P_k^T grad f(A) Q_k^T = 0``.

The Hessian-vector product (forward-over-reverse, exact) along ``V = (V_1..V_L)``:
``dQ_{k+1} = V_k Q_k + W_k dQ_k``, ``dA = dQ_{L+1}``, ``dG = D^2 f(A)[dA]``;
``Z_k = P_k^T G`` (``Z_L = G``, ``Z_{k-1} = W_k^T Z_k``), ``dZ_L = dG``,
``dZ_{k-1} = V_k^T Z_k + W_k^T dZ_k``;
``(H V)_k = dZ_k Q_k^T + Z_k dQ_k^T``. Six matrix products per layer; all functions broadcast over
leading batch axes (a batch of networks, or a batch of directions V).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dltheory.core.validation import as_float_array


def _t(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def _to_numpy(value: Any) -> Any:
    """torch tensors (duck-typed: ``.detach().cpu().numpy()``) to numpy, anything else unchanged."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value


def as_weights(weights: Any, *, batched: bool = False) -> list[np.ndarray]:
    """Validate a list of weight matrices, first layer first, each of shape ``(d_k, d_{k-1})``.

    numpy arrays, nested lists or torch tensors are accepted (torch is detected by duck typing, never
    imported). With ``batched=True`` every weight carries the same leading batch axes.
    """
    if isinstance(weights, np.ndarray) or hasattr(weights, "detach"):
        raise TypeError("weights must be a list of weight matrices (first layer first), got a single array")
    try:
        items = list(weights)
    except TypeError as exc:
        raise TypeError(f"weights must be a list of weight matrices, got {type(weights).__name__}") from exc
    if not items:
        raise ValueError("weights must hold at least one weight matrix, got an empty list")
    out: list[np.ndarray] = []
    ndim = None
    for k, w in enumerate(items):
        array = as_float_array(f"weights[{k}]", _to_numpy(w))
        if array.ndim < 2 or (not batched and array.ndim != 2):
            raise ValueError(f"weights[{k}] must be a 2-D matrix (outputs, inputs), got shape {array.shape}")
        if ndim is not None and array.ndim != ndim:
            raise ValueError(f"weights[{k}] has {array.ndim} axes but weights[0] has {ndim}")
        ndim = array.ndim
        if k > 0 and array.shape[-1] != out[-1].shape[-2]:
            raise ValueError(
                f"weights[{k}] has shape {array.shape[-2:]} but weights[{k - 1}] has shape "
                f"{out[-1].shape[-2:]}: layer {k} must take {out[-1].shape[-2]} inputs "
                f"(weights[{k}].shape[1] == weights[{k - 1}].shape[0]), first layer first"
            )
        if k > 0 and array.shape[:-2] != out[-1].shape[:-2]:
            raise ValueError(
                f"weights[{k}] has batch shape {array.shape[:-2]}, weights[0] {out[0].shape[:-2]}"
            )
        out.append(array)
    return out


def widths(weights: Sequence[np.ndarray]) -> tuple[int, ...]:
    """``(d_0, d_1, ..., d_L)``."""
    return (int(weights[0].shape[-1]), *(int(w.shape[-2]) for w in weights))


def prefix_products(weights: Sequence[np.ndarray]) -> list[np.ndarray | None]:
    """``Q_k = W_{k-1} ... W_1`` for k = 1..L+1 (0-based list index k-1); ``Q_1 = None`` stands for the
    identity, ``Q_{L+1} = A``."""
    out: list[np.ndarray | None] = [None]
    for w in weights:
        prev = out[-1]
        out.append(w if prev is None else w @ prev)
    return out


def end_to_end(weights: Sequence[np.ndarray]) -> np.ndarray:
    """The end-to-end matrix ``A = W_L ... W_1``."""
    result = prefix_products(weights)[-1]
    assert result is not None
    return result


def backward_products(weights: Sequence[np.ndarray], G: np.ndarray) -> list[np.ndarray]:
    """``Z_k = P_k^T G`` for every layer (0-based list), ``Z_L = G``, ``Z_{k-1} = W_k^T Z_k``."""
    Z = [G]
    for w in reversed(weights[1:]):
        Z.append(_t(w) @ Z[-1])
    return Z[::-1]


def _right_mul_t(Z: np.ndarray, Q: np.ndarray | None) -> np.ndarray:
    return Z if Q is None else Z @ _t(Q)


def layer_gradients(weights: Sequence[np.ndarray], G: np.ndarray) -> list[np.ndarray]:
    """``grad_k L = P_k^T G Q_k^T`` for ``G = grad f(A)`` (or a subgradient)."""
    Q = prefix_products(weights)
    Z = backward_products(weights, G)
    return [_right_mul_t(Z[k], Q[k]) for k in range(len(weights))]


def differential(weights: Sequence[np.ndarray], V: Sequence[np.ndarray]) -> np.ndarray:
    """``dA = sum_k P_k V_k Q_k`` (first-order change of the product along V)."""
    dQ: np.ndarray | None = None
    Q: np.ndarray | None = None
    for w, v in zip(weights, V, strict=True):
        new = v if Q is None else v @ Q
        dQ = new if dQ is None else new + w @ dQ
        Q = w if Q is None else w @ Q
    assert dQ is not None
    return dQ


class ProductHessian:
    """The Hessian of ``L(W) = f(W_L ... W_1)`` at fixed weights, as exact Hessian-vector products.

    ``hvp_f(dA)`` is the Hessian of f at A applied to dA (broadcast over leading axes). Directions are
    lists of per-layer matrices (``apply``) or flat vectors (``matvec``/``matmat``, the layout of
    :func:`flatten`). When d_L < d_0 the transposed network (same Hessian spectrum, cheaper products) is
    used internally.
    """

    def __init__(
        self, weights: Sequence[np.ndarray], G: np.ndarray, hvp_f: Callable[[np.ndarray], np.ndarray]
    ):
        self.shapes = [w.shape for w in weights]
        self.size = int(sum(np.prod(s) for s in self.shapes))
        self._transposed = weights[-1].shape[0] < weights[0].shape[1]
        if self._transposed:
            self._w = [np.ascontiguousarray(w.T) for w in reversed(weights)]
            self._G = G.T
            self._hvp_f: Callable[[np.ndarray], np.ndarray] = lambda dA: _t(hvp_f(_t(dA)))
        else:
            self._w = [np.asarray(w) for w in weights]
            self._G = G
            self._hvp_f = hvp_f
        self._Q = prefix_products(self._w)
        self._Z = backward_products(self._w, self._G)

    def _apply_internal(self, V: list[np.ndarray]) -> list[np.ndarray]:
        w, Q, Z = self._w, self._Q, self._Z
        L = len(w)
        dQs: list[np.ndarray | None] = [None]
        for k in range(L):
            new = V[k] if Q[k] is None else V[k] @ Q[k]
            prev = dQs[-1]
            dQs.append(new if prev is None else new + w[k] @ prev)
        dA = dQs[-1]
        assert dA is not None
        dZ = self._hvp_f(dA)
        out: list[np.ndarray] = [np.empty(0)] * L
        for k in range(L - 1, -1, -1):
            term = _right_mul_t(dZ, Q[k])
            dq = dQs[k]
            if dq is not None:
                term = term + Z[k] @ _t(dq)
            out[k] = term
            if k > 0:
                dZ = _t(V[k]) @ Z[k] + _t(w[k]) @ dZ
        return out

    def apply(self, V: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``H V`` for per-layer directions (leading batch axes allowed)."""
        if self._transposed:
            Vt = [_t(v) for v in reversed(V)]
            return [_t(h) for h in reversed(self._apply_internal(Vt))]
        return self._apply_internal(list(V))

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return flatten(self.apply(unflatten(np.asarray(v, dtype=np.float64).ravel(), self.shapes)))

    def matmat(self, V: np.ndarray) -> np.ndarray:
        """``H V`` for the columns of a (size, m) matrix."""
        V = np.asarray(V, dtype=np.float64)
        batch = unflatten(V.T, self.shapes)
        return flatten(self.apply(batch)).T

    def dense(self) -> np.ndarray:
        """The full (size x size) Hessian, symmetrised."""
        H = self.matmat(np.eye(self.size))
        return 0.5 * (H + H.T)


def flatten(layers: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate per-layer arrays (leading batch axes kept) into flat vectors."""
    lead = layers[0].shape[:-2]
    return np.concatenate([np.reshape(a, (*lead, -1)) for a in layers], axis=-1)


def unflatten(flat: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """Inverse of :func:`flatten` for weight shapes ``shapes``."""
    lead = flat.shape[:-1]
    out = []
    start = 0
    for shape in shapes:
        size = int(np.prod(shape[-2:]))
        out.append(flat[..., start : start + size].reshape((*lead, *shape[-2:])))
        start += size
    if start != flat.shape[-1]:
        raise ValueError(f"flat vector has {flat.shape[-1]} entries, the weights have {start}")
    return out
