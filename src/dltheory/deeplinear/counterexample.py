"""The non-differentiable counterexample to "all local minima are global" (docs/laurent/theory.md).

Laurent & von Brecht's theorem needs f differentiable. With widths 1 -> 1 -> 2 (so the width condition
``d_1 >= min(d_0, d_2) = 1`` holds) and the convex, Lipschitz, non-differentiable

    f(a, b) = 2 |a| + |b - 1| - 1          (A = W_2 W_1 = (a, b)^T),

write ``W_1 = x`` and ``W_2 = (y, z)^T``: ``L = 2 |x y| + |x z - 1| - 1``. At ``x = 0, y = 1, z = 0``,
``L = 0``; on the box ``|x| < 3, |y - 1| < 1/3, |z| < 1/3`` we have ``|x z| < 1``, so
``L = 2 |x| |y| - x z >= |x| (2 |y| - |z|) >= |x| (4/3 - 1/3) >= 0``: a local minimum with value 0, while
the global minimum is ``-1`` (``x = 1, y = 0, z = 1``). Replacing ``|t|`` by its Huber smoothing
``h_delta(t)`` (``t^2 / (2 delta)`` for ``|t| <= delta``, else ``|t| - delta/2``), a convex C^1 function,
puts f under the theorem: the same point becomes a strict saddle (Hessian block
``[[2 / delta, -1], [-1, 0]]`` in (x, z)) and every local minimum has value -1.
"""

from __future__ import annotations

import numpy as np

from dltheory.core.validation import check_positive
from dltheory.deeplinear.objective import MatrixFunction

WIDTHS = (1, 1, 2)
#: ``w1 = 0, w2 = (1, 0)``: the sub-optimal local minimum of the non-smooth f (value 0).
LOCAL_MINIMUM = (np.zeros((1, 1)), np.array([[1.0], [0.0]]))
#: ``w1 = 1, w2 = (0, 1)``: a global minimum (value -1).
GLOBAL_MINIMUM = (np.ones((1, 1)), np.array([[0.0], [1.0]]))
GLOBAL_VALUE = -1.0
#: Half-widths of the box around LOCAL_MINIMUM on which ``L >= 0`` (module docstring): (x, y - 1, z).
LOCAL_BOX = (3.0, 1.0 / 3.0, 1.0 / 3.0)


def _abs_smoothed(t: np.ndarray, delta: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Value, derivative and second derivative of |t| (delta None) or its Huber smoothing."""
    if delta is None:
        return np.abs(t), np.sign(t), np.zeros_like(t)
    inside = np.abs(t) <= delta
    value = np.where(inside, t * t / (2 * delta), np.abs(t) - delta / 2)
    slope = np.where(inside, t / delta, np.sign(t))
    curvature = np.where(inside, 1.0 / delta, 0.0)
    return value, slope, curvature


def counterexample_function(smoothing: float | None = None) -> MatrixFunction:
    """The convex, non-differentiable ``f(a, b) = 2|a| + |b - 1| - 1`` on the 2 x 1 end-to-end matrix.

    With widths 1 -> 1 -> 2, ``w1 = 0, w2 = (1, 0)`` is a local minimum of value 0 while the global minimum
    is -1: differentiability is needed in Laurent & von Brecht's theorem (docs/laurent/theory.md). With
    ``smoothing = delta`` the Huber-smoothed version (convex and differentiable; then the theorem applies and
    the point becomes a strict saddle).

    Args:
        smoothing: Huber parameter delta > 0, or ``None`` for the non-smooth f.

    Returns:
        A :class:`~dltheory.deeplinear.objective.MatrixFunction` to pass to
        :func:`~dltheory.deeplinear.landscape.analyze`.

    Examples:
        >>> import numpy as np
        >>> from dltheory.deeplinear import analyze, counterexample_function
        >>> bad = [np.zeros((1, 1)), np.array([[1.0], [0.0]])]
        >>> report = analyze(bad, counterexample_function())
        >>> report.verdict, report.loss_value, report.global_optimum
        ('local_minimum', 0.0, -1.0)
        >>> analyze(bad, counterexample_function(smoothing=0.1)).verdict
        'saddle'
    """
    delta = None if smoothing is None else float(check_positive("smoothing", smoothing))
    weights = np.array([2.0, 1.0])
    offset = np.array([0.0, 1.0])

    def fn(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        value, slope, _ = _abs_smoothed(A[..., 0] - offset, delta)
        return value @ weights - 1.0, (weights * slope)[..., None]

    def hvp(A: np.ndarray, dA: np.ndarray) -> np.ndarray:
        _, _, curvature = _abs_smoothed(A[..., 0] - offset, delta)
        return (weights * curvature)[..., None] * dA

    name = "2|a| + |b-1| - 1" if delta is None else f"Huber-smoothed 2|a| + |b-1| - 1 (delta={delta:g})"
    return MatrixFunction(
        fn,  # type: ignore[arg-type]
        (2, 1),
        differentiable=delta is not None,
        convex=True,
        hessian_vector=hvp if delta is not None else None,
        name=name,
        vectorized=True,
    )


def network_loss(
    x: np.ndarray | float, y: np.ndarray | float, z: np.ndarray | float, smoothing: float | None = None
) -> np.ndarray:
    """``L(x, (y, z)) = f(x y, x z)`` evaluated elementwise on arrays (for landscape plots)."""
    delta = None if smoothing is None else float(check_positive("smoothing", smoothing))
    a = np.asarray(x) * np.asarray(y)
    b = np.asarray(x) * np.asarray(z)
    return 2.0 * _abs_smoothed(a, delta)[0] + _abs_smoothed(b - 1.0, delta)[0] - 1.0
