"""End-to-end objectives ``f(A)`` of a deep linear network, ``L(W_1..W_L) = f(W_L ... W_1)``.

Laurent & von Brecht (ICML 2018), Theorem 1: if f is convex and differentiable and every hidden width
is at least min(d_0, d_L), every local minimum of L is a global minimum. An objective here is f itself,
a function of the d_L x d_0 end-to-end matrix A, with value, (sub)gradient and Hessian-vector product,
all broadcasting over leading batch axes of A, and the flags the theorem needs (``differentiable``,
``convex``).

- :class:`DataObjective`: ``f(A) = (1/n) sum_i loss(A x_i, y_i) + (l2/2) ||A||_F^2`` for a loss of
  :mod:`dltheory.deeplinear.losses` (the l2 term acts on the product A, so f stays a function of A alone
  and convex, and cross-entropy / logistic losses have a minimiser even on separable data).
- :class:`SquaredObjective`: the squared loss written through its sufficient statistics,
  ``f(A) = f(A*) + 1/2 tr((A - A*) C (A - A*)^T)``, ``C = X^T X / n + l2 I``, ``A* = (Y^T X / n) C^+``,
  exact algebra that keeps values and optimality gaps free of cancellation.
- :class:`MatrixFunction`: a user callable ``A -> (f(A), a (sub)gradient)`` not tied to data, e.g. the
  non-differentiable counterexample of :mod:`dltheory.deeplinear.counterexample`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from dltheory.core.validation import as_float_array, check_positive
from dltheory.deeplinear.losses import Loss, SquaredLoss, make_loss

MatrixCallable = Callable[[np.ndarray], tuple[float, np.ndarray]]


def _transpose(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


class EndToEndObjective(ABC):
    """A function f of the end-to-end matrix (shape ``(d_L, d_0)``); methods broadcast over leading
    axes of ``A``."""

    shape: tuple[int, int]
    differentiable: bool = True
    twice_differentiable: bool = True
    convex: bool = True
    name: str = "f"

    @abstractmethod
    def value(self, A: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def gradient(self, A: np.ndarray) -> np.ndarray:
        """The gradient, or one subgradient where f is not differentiable."""

    @abstractmethod
    def hessian_vector(self, A: np.ndarray, dA: np.ndarray) -> np.ndarray:
        """The second derivative of f at A applied to dA (broadcast over leading axes of dA)."""

    def check_shape(self, shape: tuple[int, ...]) -> None:
        if tuple(shape) != self.shape:
            raise ValueError(
                f"the network's end-to-end matrix has shape {tuple(shape)} (outputs, inputs) but the loss "
                f"expects {self.shape}"
            )

    def describe(self) -> str:
        return self.name


class DataObjective(EndToEndObjective):
    """``f(A) = loss.value(X A^T, Y) + (l2/2) ||A||_F^2`` with X of shape (n, d_0), one sample a row."""

    def __init__(self, loss: Loss, X: Any, Y: Any, out_dim: int, *, l2: float = 0.0):
        self.loss = loss
        self.X = as_float_array("X", X)
        if self.X.ndim != 2:
            raise ValueError(f"X must be a 2-D array (samples, inputs), got shape {self.X.shape}")
        n, d0 = self.X.shape
        if n == 0:
            raise ValueError("X must hold at least one sample, got 0 rows")
        self.T = loss.prepare_targets(Y, n, out_dim)
        self.l2 = float(check_positive("l2", l2, allow_zero=True))
        self.shape = (out_dim, d0)
        self.differentiable = loss.differentiable
        self.twice_differentiable = loss.twice_differentiable
        self.convex = loss.convex
        self.name = loss.describe()

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    def predictions(self, A: np.ndarray) -> np.ndarray:
        return self.X @ _transpose(A)

    def value(self, A: np.ndarray) -> np.ndarray:
        return self.loss.value(self.predictions(A), self.T) + 0.5 * self.l2 * np.sum(A * A, axis=(-2, -1))

    def gradient(self, A: np.ndarray) -> np.ndarray:
        D = self.loss.gradient(self.predictions(A), self.T)
        return _transpose(D) @ self.X + self.l2 * A

    def hessian_vector(self, A: np.ndarray, dA: np.ndarray) -> np.ndarray:
        H = self.loss.hessian_vector(self.predictions(A), self.T, self.predictions(dA))
        return _transpose(H) @ self.X + self.l2 * dA

    def describe(self) -> str:
        extra = f" + {self.l2:g}/2 ||A||^2" if self.l2 else ""
        return f"{self.loss.describe()} loss on {self.n_samples} samples{extra}"


class SquaredObjective(DataObjective):
    """Squared loss ``f(A) = 1/(2n) ||X A^T - Y||_F^2 + (l2/2) ||A||_F^2`` through sufficient statistics:
    ``f(A) = f(A*) + 1/2 tr((A - A*) C (A - A*)^T)`` with ``C = X^T X/n + l2 I`` and the least-squares
    solution ``A* = (Y^T X/n) C^+`` (exact because the rows of Y^T X lie in the range of C)."""

    def __init__(self, X: Any, Y: Any, out_dim: int, *, l2: float = 0.0, rcond: float = 1e-12):
        super().__init__(SquaredLoss(), X, Y, out_dim, l2=l2)
        n = self.n_samples
        cov = self.X.T @ self.X / n + self.l2 * np.eye(self.shape[1])
        eigval, eigvec = np.linalg.eigh(cov)
        keep = eigval > rcond * max(float(eigval.max()), np.finfo(float).tiny)
        self.C = cov
        self.C_eigval = np.where(keep, eigval, 0.0)
        self.C_eigvec = eigvec
        inv = np.where(keep, 1.0 / np.where(keep, eigval, 1.0), 0.0)
        cross = self.T.T @ self.X / n
        self.A_star = (cross @ eigvec) * inv @ eigvec.T
        residual = self.X @ self.A_star.T - self.T
        self.f_star = float(0.5 * np.sum(residual**2) / n + 0.5 * self.l2 * np.sum(self.A_star**2))

    @property
    def C_sqrt(self) -> np.ndarray:
        return (self.C_eigvec * np.sqrt(self.C_eigval)) @ self.C_eigvec.T

    @property
    def C_inv_sqrt(self) -> np.ndarray:
        root = np.sqrt(self.C_eigval)
        inv = np.where(root > 0, 1.0 / np.where(root > 0, root, 1.0), 0.0)
        return (self.C_eigvec * inv) @ self.C_eigvec.T

    def value(self, A: np.ndarray) -> np.ndarray:
        delta = A - self.A_star
        return self.f_star + 0.5 * np.sum((delta @ self.C) * delta, axis=(-2, -1))

    def gradient(self, A: np.ndarray) -> np.ndarray:
        return (A - self.A_star) @ self.C

    def hessian_vector(self, A: np.ndarray, dA: np.ndarray) -> np.ndarray:
        return dA @ self.C


class MatrixFunction(EndToEndObjective):
    """A function of the end-to-end matrix given by a callable ``fn(A) -> (value, subgradient)``.

    ``differentiable`` and ``convex`` are what the caller asserts about f (Laurent & von Brecht's
    theorem needs both); ``hessian_vector(A, dA)`` is optional: without it a smooth f gets central
    finite differences of the gradient (step ``fd_step``). ``vectorized=True`` declares that ``fn`` and
    ``hessian_vector`` accept a stack of matrices ``(..., d_L, d_0)`` and return values ``(...)`` and
    gradients ``(..., d_L, d_0)`` (much faster for batched training).
    """

    def __init__(
        self,
        fn: MatrixCallable,
        shape: tuple[int, int],
        *,
        differentiable: bool,
        convex: bool,
        hessian_vector: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
        name: str = "f",
        fd_step: float = 1e-6,
        vectorized: bool = False,
    ):
        if not callable(fn):
            raise TypeError(f"fn must be callable A -> (value, gradient), got {fn!r}")
        self.fn = fn
        self.shape = (int(shape[0]), int(shape[1]))
        self.differentiable = bool(differentiable)
        self.twice_differentiable = bool(differentiable)
        self.convex = bool(convex)
        self._hvp = hessian_vector
        self.name = name
        self.fd_step = float(check_positive("fd_step", fd_step))
        self.vectorized = bool(vectorized)

    def _call(self, A: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = self.fn(np.array(A, dtype=np.float64))
        grad_array = np.asarray(grad, dtype=np.float64).reshape(self.shape)
        return float(value), grad_array

    def _map(self, A: np.ndarray, fn: Callable[[np.ndarray], Any], out_shape: tuple[int, ...]) -> np.ndarray:
        A = np.asarray(A, dtype=np.float64)
        lead = A.shape[:-2]
        flat = A.reshape((-1, *self.shape))
        out = np.array([fn(a) for a in flat], dtype=np.float64)
        return out.reshape(lead + out_shape)

    def value(self, A: np.ndarray) -> np.ndarray:
        if self.vectorized:
            return np.asarray(self.fn(np.asarray(A, dtype=np.float64))[0], dtype=np.float64)
        return self._map(A, lambda a: self._call(a)[0], ())

    def gradient(self, A: np.ndarray) -> np.ndarray:
        if self.vectorized:
            return np.asarray(self.fn(np.asarray(A, dtype=np.float64))[1], dtype=np.float64)
        return self._map(A, lambda a: self._call(a)[1], self.shape)

    def hessian_vector(self, A: np.ndarray, dA: np.ndarray) -> np.ndarray:
        if not self.differentiable:
            raise ValueError(f"{self.name} is not differentiable: it has no Hessian")
        A = np.asarray(A, dtype=np.float64)
        dA = np.asarray(dA, dtype=np.float64)
        A_b, dA_b = np.broadcast_arrays(A, dA)
        if self._hvp is not None and self.vectorized:
            return np.asarray(self._hvp(A_b, dA_b), dtype=np.float64)
        pairs = list(zip(A_b.reshape((-1, *self.shape)), dA_b.reshape((-1, *self.shape)), strict=True))
        if self._hvp is not None:
            hvp = self._hvp
            out = np.array([hvp(a, d) for a, d in pairs])
        else:
            h = self.fd_step
            out = np.array(
                [(self._call(a + h * d)[1] - self._call(a - h * d)[1]) / (2 * h) for a, d in pairs]
            )
        return out.reshape(A_b.shape)


def make_objective(
    loss: str | Loss | EndToEndObjective | MatrixCallable,
    X: Any,
    Y: Any,
    shape: tuple[int, int],
    *,
    l2: float = 0.0,
    differentiable: bool | None = None,
    convex: bool | None = None,
    **loss_params: Any,
) -> EndToEndObjective:
    """The end-to-end objective for a network whose product has ``shape`` = (d_L, d_0).

    ``loss`` is a loss name or :class:`Loss` (then X and Y are required), an :class:`EndToEndObjective`
    (checked against ``shape``), or a callable ``A -> (value, subgradient)`` of the end-to-end matrix alone
    (then X and Y must be None; ``differentiable`` and ``convex`` state what is known about it and
    default to False, so no theorem is invoked for a function that was not declared convex and
    differentiable).
    """
    if isinstance(loss, EndToEndObjective):
        if X is not None or Y is not None:
            raise ValueError("X and Y must be None when loss is an end-to-end objective (it holds its data)")
        loss.check_shape(shape)
        return loss
    if callable(loss) and not isinstance(loss, Loss | str):
        if X is not None or Y is not None:
            raise ValueError(
                "X and Y must be None when loss is a callable f(A) of the end-to-end matrix; "
                "give a loss name or Loss object to fit data"
            )
        return MatrixFunction(
            loss,
            shape,
            differentiable=bool(differentiable) if differentiable is not None else False,
            convex=bool(convex) if convex is not None else False,
            name=getattr(loss, "__name__", "f"),
        )
    if differentiable is not None or convex is not None:
        raise ValueError("differentiable and convex describe a callable loss; a named loss knows its own")
    loss_obj = make_loss(loss, **loss_params)  # type: ignore[arg-type]
    if X is None or Y is None:
        raise ValueError(f"{loss_obj.name} loss needs data: X (samples, inputs) and Y targets, got None")
    X_arr = as_float_array("X", X)
    if X_arr.ndim != 2 or X_arr.shape[1] != shape[1]:
        raise ValueError(
            f"X must have shape (n, {shape[1]}) to feed a network with {shape[1]} inputs, got {X_arr.shape}"
        )
    if isinstance(loss_obj, SquaredLoss):
        return SquaredObjective(X_arr, Y, shape[0], l2=l2)
    return DataObjective(loss_obj, X_arr, Y, shape[0], l2=l2)
