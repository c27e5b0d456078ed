"""Data-fit losses for deep linear networks, as objects on the network's predictions.

Laurent & von Brecht (ICML 2018) study ``L(W_1, ..., W_L) = f(W_L ... W_1)`` with f convex. For a data
set ``X`` (n x d_0, one sample per row) and targets ``Y`` the end-to-end function is
``f(A) = (1/n) sum_i loss(A x_i, y_i)`` (see :mod:`dltheory.deeplinear.objective`); the objects here are
the per-sample losses ``loss(p, y)`` of a prediction ``p`` in R^{d_L}.

Every loss is convex in ``p`` and carries flags: ``differentiable`` (the theorem needs it; hinge and l1
are not, which is where sub-optimal local minima can appear), ``twice_differentiable`` (a Hessian
exists everywhere) and ``convex``. All methods broadcast over leading batch axes: predictions have shape
``(..., n, k)`` and the value is the mean over the ``n`` samples.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from dltheory.core.validation import as_float_array, check_choice, check_positive

LOSS_NAMES = ("squared", "lp", "cross_entropy", "logistic", "huber", "hinge", "l1")


class Loss(ABC):
    """A per-sample loss ``loss(p, y)`` averaged over samples.

    ``value(P, T)`` returns ``(1/n) sum_i loss(P_i, T_i)`` (shape: the leading batch axes),
    ``gradient(P, T)`` its derivative with respect to ``P`` (a subgradient where the loss has a kink),
    ``hessian_vector(P, T, dP)`` the second derivative applied to ``dP`` (almost-everywhere second
    derivative for losses that are only once differentiable). ``T`` are targets returned by
    :meth:`prepare_targets`.
    """

    name: str = ""
    differentiable: bool = True
    twice_differentiable: bool = True
    convex: bool = True

    def prepare_targets(self, Y: Any, n: int, out_dim: int) -> np.ndarray:
        """Validate targets for ``n`` samples and ``out_dim`` outputs; returns an (n, out_dim) array."""
        targets = as_float_array("Y", Y)
        if targets.ndim == 1 and out_dim == 1:
            targets = targets[:, None]
        if targets.shape != (n, out_dim):
            raise ValueError(
                f"Y must have shape ({n}, {out_dim}) for {self.name} loss with {n} samples and a network "
                f"with {out_dim} outputs, got shape {targets.shape}"
            )
        return targets

    @abstractmethod
    def value(self, P: np.ndarray, T: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def gradient(self, P: np.ndarray, T: np.ndarray) -> np.ndarray: ...

    def hessian_vector(self, P: np.ndarray, T: np.ndarray, dP: np.ndarray) -> np.ndarray:
        raise ValueError(f"{self.name} loss is not differentiable: it has no Hessian")

    def describe(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"


def _mean(per_sample: np.ndarray) -> np.ndarray:
    return per_sample.mean(axis=-1)


class SquaredLoss(Loss):
    """``loss(p, y) = 1/2 ||p - y||^2``."""

    name = "squared"

    def value(self, P: np.ndarray, T: np.ndarray) -> np.ndarray:
        return _mean(0.5 * np.sum((P - T) ** 2, axis=-1))

    def gradient(self, P: np.ndarray, T: np.ndarray) -> np.ndarray:
        return (P - T) / P.shape[-2]

    def hessian_vector(self, P: np.ndarray, T: np.ndarray, dP: np.ndarray) -> np.ndarray:
        return dP / P.shape[-2]


class LpLoss(Loss):
    """``loss(p, y) = (1/q) sum_j |p_j - y_j|^q`` for ``q > 1`` (``q = 4``: the l4 loss).

    Differentiable for q > 1; twice differentiable everywhere for q >= 2.
    """

    name = "lp"

    def __init__(self, p: float = 4.0):
        exponent = float(as_float_array("p", p))
        if exponent <= 1.0:
            raise ValueError(
                f"p must be > 1 for a differentiable l_p loss, got {exponent!r} (use the 'l1' loss for p = 1)"
            )
        self.p = exponent
        self.twice_differentiable = exponent >= 2.0

    def describe(self) -> str:
        return f"lp(p={self.p:g})"

    def value(self, P: np.ndarray, T: np.ndarray) -> np.ndarray:
        return _mean(np.sum(np.abs(P - T) ** self.p, axis=-1) / self.p)

    def gradient(self, P: np.ndarray, T: np.ndarray) -> np.ndarray:
        r = P - T
        return np.sign(r) * np.abs(r) ** (self.p - 1.0) / P.shape[-2]

    def hessian_vector(self, P: np.ndarray, T: np.ndarray, dP: np.ndarray) -> np.ndarray:
        if not self.twice_differentiable:
            raise ValueError(f"lp loss with p = {self.p} < 2 has no Hessian where a residual vanishes")
        return (self.p - 1.0) * np.abs(P - T) ** (self.p - 2.0) * dP / P.shape[-2]


class HuberLoss(Loss):
    """``loss(p, y) = sum_j h(p_j - y_j)``, ``h(r) = r^2/2`` for ``|r| <= delta``, else
    ``delta (|r| - delta/2)`` (Huber 1964). Once differentiable; the Hessian is the a.e. one."""

    name = "huber"
    twice_differentiable = False

    def __init__(self, delta: float = 1.0):
        self.delta = float(check_positive("delta", delta))

    def describe(self) -> str:
        return f"huber(delta={self.delta:g})"

    def value(self, P: np.ndarray, T: np.ndarray) -> np.ndarray:
        a = np.abs(P - T)
        per = np.where(a <= self.delta, 0.5 * a**2, self.delta * (a - 0.5 * self.delta))
        return _mean(per.sum(axis=-1))

    def gradient(self, P: np.ndarray, T: np.ndarray) -> np.ndarray:
        return np.clip(P - T, -self.delta, self.delta) / P.shape[-2]

    def hessian_vector(self, P: np.ndarray, T: np.ndarray, dP: np.ndarray) -> np.ndarray:
        return (np.abs(P - T) < self.delta) * dP / P.shape[-2]


class L1Loss(Loss):
    """``loss(p, y) = ||p - y||_1``; convex, not differentiable where a residual vanishes."""

    name = "l1"
    differentiable = False
    twice_differentiable = False

    def value(self, P: np.ndarray, T: np.ndarray) -> np.ndarray:
        return _mean(np.abs(P - T).sum(axis=-1))

    def gradient(self, P: np.ndarray, T: np.ndarray) -> np.ndarray:
        return np.sign(P - T) / P.shape[-2]


def _labels_to_onehot(name: str, Y: Any, n: int, k: int) -> np.ndarray:
    y = np.asarray(Y)
    if y.ndim == 1:
        if y.shape[0] != n:
            raise ValueError(f"Y must hold {n} labels for {name} loss, got {y.shape[0]}")
        if not np.all(np.equal(np.mod(y, 1), 0)) or y.min(initial=0) < 0 or y.max(initial=0) >= k:
            raise ValueError(
                f"Y labels for {name} loss must be integers in [0, {k}) (one per network output), "
                f"got values in [{y.min()}, {y.max()}]"
            )
        onehot = np.zeros((n, k))
        onehot[np.arange(n), y.astype(np.int64)] = 1.0
        return onehot
    targets = as_float_array("Y", y)
    if targets.shape != (n, k):
        raise ValueError(f"Y for {name} loss must be {n} labels or an ({n}, {k}) array, got shape {y.shape}")
    return targets


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy ``loss(p, y) = logsumexp(p) - <y, p>`` with y one-hot (labels are
    converted) or a probability vector. Convex and smooth; a minimiser of the end-to-end problem exists
    only with an l2 term or on data that are not linearly separable."""

    name = "cross_entropy"

    def prepare_targets(self, Y: Any, n: int, out_dim: int) -> np.ndarray:
        if out_dim < 2:
            raise ValueError(f"cross_entropy loss needs a network with >= 2 outputs, got {out_dim}")
        targets = _labels_to_onehot(self.name, Y, n, out_dim)
        if np.any(targets < 0) or not np.allclose(targets.sum(axis=1), 1.0):
            raise ValueError("Y for cross_entropy loss must be labels or rows of probabilities summing to 1")
        return targets

    @staticmethod
    def _softmax(P: np.ndarray) -> np.ndarray:
        shifted = P - P.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=-1, keepdims=True)

    def value(self, P: np.ndarray, T: np.ndarray) -> np.ndarray:
        m = P.max(axis=-1, keepdims=True)
        lse = (m + np.log(np.exp(P - m).sum(axis=-1, keepdims=True)))[..., 0]
        return _mean(lse - np.sum(T * P, axis=-1))

    def gradient(self, P: np.ndarray, T: np.ndarray) -> np.ndarray:
        return (self._softmax(P) - T) / P.shape[-2]

    def hessian_vector(self, P: np.ndarray, T: np.ndarray, dP: np.ndarray) -> np.ndarray:
        s = self._softmax(P)
        return (s * dP - s * np.sum(s * dP, axis=-1, keepdims=True)) / P.shape[-2]


def _binary_signs(name: str, Y: Any, n: int, out_dim: int) -> np.ndarray:
    if out_dim != 1:
        raise ValueError(f"{name} loss needs a network with 1 output, got {out_dim}")
    y = as_float_array("Y", Y).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"Y must hold {n} labels for {name} loss, got {y.shape[0]}")
    values = set(np.unique(y).tolist())
    if values <= {0.0, 1.0}:
        y = 2.0 * y - 1.0
    elif not values <= {-1.0, 1.0}:
        raise ValueError(f"Y labels for {name} loss must be in {{0, 1}} or {{-1, +1}}, got {sorted(values)}")
    return y[:, None]


class LogisticLoss(Loss):
    """Binary logistic loss ``loss(p, y) = log(1 + exp(-y p))``, ``y in {-1, +1}`` (0/1 converted)."""

    name = "logistic"

    def prepare_targets(self, Y: Any, n: int, out_dim: int) -> np.ndarray:
        return _binary_signs(self.name, Y, n, out_dim)

    def value(self, P: np.ndarray, T: np.ndarray) -> np.ndarray:
        return _mean(np.logaddexp(0.0, -T * P)[..., 0])

    def gradient(self, P: np.ndarray, T: np.ndarray) -> np.ndarray:
        return -T * _sigmoid(-T * P) / P.shape[-2]

    def hessian_vector(self, P: np.ndarray, T: np.ndarray, dP: np.ndarray) -> np.ndarray:
        s = _sigmoid(P)
        return s * (1.0 - s) * dP / P.shape[-2]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


class HingeLoss(Loss):
    """Hinge loss: binary ``max(0, 1 - y p)`` for one output (y in {-1, +1}); multi-class
    Crammer-Singer ``max(0, 1 + max_{j != y} p_j - p_y)`` for k >= 2 outputs. Convex, not
    differentiable on the hinge."""

    name = "hinge"
    differentiable = False
    twice_differentiable = False

    def prepare_targets(self, Y: Any, n: int, out_dim: int) -> np.ndarray:
        if out_dim == 1:
            return _binary_signs(self.name, Y, n, out_dim)
        targets = _labels_to_onehot(self.name, Y, n, out_dim)
        if not np.all((targets == 0) | (targets == 1)) or not np.all(targets.sum(axis=1) == 1):
            raise ValueError("Y for multi-class hinge loss must be labels or one-hot rows")
        return targets

    def _margins(self, P: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        true_score = np.sum(T * P, axis=-1)
        rival = np.where(T > 0, -np.inf, P)
        return 1.0 + rival.max(axis=-1) - true_score, rival.argmax(axis=-1)

    def value(self, P: np.ndarray, T: np.ndarray) -> np.ndarray:
        if P.shape[-1] == 1:
            return _mean(np.maximum(0.0, 1.0 - T * P)[..., 0])
        margin, _ = self._margins(P, T)
        return _mean(np.maximum(0.0, margin))

    def gradient(self, P: np.ndarray, T: np.ndarray) -> np.ndarray:
        if P.shape[-1] == 1:
            return -T * (1.0 - T * P > 0) / P.shape[-2]
        margin, rival = self._margins(P, T)
        active = (margin > 0)[..., None]
        rival_onehot = np.zeros(np.broadcast_shapes(P.shape, T.shape))
        np.put_along_axis(rival_onehot, rival[..., None], 1.0, axis=-1)
        return active * (rival_onehot - T) / P.shape[-2]


def make_loss(loss: str | Loss, **params: Any) -> Loss:
    """A loss object from a name in :data:`LOSS_NAMES` (``params``: ``p`` for lp, ``delta`` for huber)
    or an existing :class:`Loss` (returned unchanged)."""
    if isinstance(loss, Loss):
        if params:
            raise ValueError(f"loss parameters {sorted(params)} given with a loss object {loss!r}")
        return loss
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a name in {list(LOSS_NAMES)} or a Loss object, got {loss!r}")
    check_choice("loss", loss, LOSS_NAMES)
    allowed = {"lp": {"p"}, "huber": {"delta"}}.get(loss, set())
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"{loss} loss takes parameters {sorted(allowed)}, got {sorted(unknown)}")
    classes: dict[str, type[Loss]] = {
        "squared": SquaredLoss,
        "lp": LpLoss,
        "cross_entropy": CrossEntropyLoss,
        "logistic": LogisticLoss,
        "huber": HuberLoss,
        "hinge": HingeLoss,
        "l1": L1Loss,
    }
    return classes[loss](**params)
