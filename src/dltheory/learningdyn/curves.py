"""What every learning-curve theory shares: misclassification rates from the four limiting quantities,
optimal early stopping and the least-squares limit (Liao & Couillet 2018, Theorems 1-2).

A theory provides ``terms(t)``: ``E = mu^T w(t)``, ``V = w(t)^T C w(t)`` (C = I in the paper),
``E* = (1/n) y^T X^T w(t)`` and ``V* = (1/n) ||X^T w(t)||^2``; then

    test error  = Q(E / sqrt(V)),           train error = Q(E* / sqrt(V* - E*^2)),

with Q the standard Gaussian tail (paper, eqs. 9 and 12).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr

_GRID_POINTS = 400
_INTEGER_SCAN = 4000
_ZOOM_LEVELS = 4
_ZOOM_POINTS = 65


def gaussian_tail(x: np.ndarray) -> np.ndarray:
    """The Gaussian tail ``Q(x) = P(N(0, 1) > x)``.

    Args:
        x: points.

    Returns:
        ``Q(x)``, float64 of x's shape.

    Examples:
        >>> from dltheory.learningdyn import gaussian_tail
        >>> gaussian_tail([0.0, 1.0]).round(4).tolist()
        [0.5, 0.1587]
    """
    return ndtr(-np.asarray(x, dtype=np.float64))


@dataclass(frozen=True)
class LearningTerms:
    """Limits of ``E, V, E*, V*`` at the times ``t`` (arrays of t's shape)."""

    t: np.ndarray
    E: np.ndarray
    V: np.ndarray
    E_star: np.ndarray
    V_star: np.ndarray

    @property
    def test_error(self) -> np.ndarray:
        """``Q(E / sqrt(V))``; 1/2 where ``w = 0`` (t = 0 with sigma2 = 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(self.V > 0, self.E / np.sqrt(np.where(self.V > 0, self.V, 1.0)), 0.0)
        return gaussian_tail(ratio)

    @property
    def train_error(self) -> np.ndarray:
        """``Q(E* / sqrt(V* - E*^2))``; a vanishing spread (interpolation, c > 1, t -> inf) gives 0."""
        spread = self.V_star - self.E_star**2
        tiny = 1e-13 * np.maximum(self.V_star, 1e-300)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(
                spread > tiny,
                self.E_star / np.sqrt(np.where(spread > tiny, spread, 1.0)),
                np.where(self.E_star > 0, np.inf, 0.0),
            )
        return gaussian_tail(ratio)


class StoppingPoint(NamedTuple):
    """Optimal early-stopping time (``inf``: no over-training, stop never; ``0``: the infimum is
    approached as t -> 0+) and the test error there."""

    time: float
    error: float


class LimitErrors(NamedTuple):
    test_error: float
    train_error: float


def check_times(t: object, discrete: bool) -> np.ndarray:
    """Times as a float64 array: t >= 0 (inf allowed); integers in discrete time."""
    try:
        times = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"t must be a number or an array of numbers, got {t!r}") from exc
    if np.any(np.isnan(times)) or np.any(times < 0):
        raise ValueError(f"t must be >= 0 (inf allowed), got {t!r}")
    finite = times[np.isfinite(times)]
    if discrete and np.any(finite != np.round(finite)):
        raise ValueError(
            f"t must hold integers (gradient-descent steps) when discrete=True, got {t!r}; "
            "use discrete=False for gradient flow at real times"
        )
    return times


def stability_check(alpha: float, lambda_max: float, discrete: bool, what: str) -> None:
    """Gradient descent with step alpha converges iff ``alpha * lambda_max < 2``, lambda_max the largest
    eigenvalue of the Hessian ``X X^T/n (+ ridge)``. Discrete time: ValueError; gradient flow: warning."""
    limit = 2.0 / lambda_max
    if alpha < limit:
        return
    message = (
        f"alpha={alpha!r} is at or beyond the stability limit of gradient descent, 2/lambda_max = "
        f"{limit:.6g} (lambda_max = {lambda_max:.6g}, {what}): the iterates diverge along the top "
        "eigenvector"
    )
    if discrete:
        raise ValueError(message + "; choose alpha < 2/lambda_max")
    warnings.warn(
        message + "; the gradient-flow (discrete=False) curves returned do not describe gradient descent "
        "at this step",
        RuntimeWarning,
        stacklevel=3,
    )


class LearningCurves:
    """Error curves, optimal stopping and limits from ``terms(t)`` (subclasses implement ``terms``)."""

    alpha: float
    sigma2: float
    ridge: float
    discrete: bool
    grid_points: int = _GRID_POINTS
    slowest_rate: float = 1e-4  # floor of (lambda_min + ridge)/(lambda_max + ridge) for the time grid

    def terms(self, t: object) -> LearningTerms:
        raise NotImplementedError

    @property
    def lambda_max(self) -> float:
        raise NotImplementedError

    @property
    def lambda_min(self) -> float:
        """Smallest non-zero eigenvalue of X X^T/n (the slowest mode gradient descent fits)."""
        raise NotImplementedError

    def test_error(self, t: object) -> np.ndarray:
        """Limiting test misclassification rate ``Q(E / sqrt(V))`` at times t (vectorised).

        Args:
            t: times (steps in discrete time), >= 0; ``inf`` allowed.

        Returns:
            The test error at each t.

        Examples:
            >>> from dltheory.learningdyn import GDTheory
            >>> theory = GDTheory(4.0, 0.5, 0.1, 0.01)
            >>> float(theory.test_error(0.0))                  # w_0 is independent of the data
            0.5
        """
        return self.terms(t).test_error

    def train_error(self, t: object) -> np.ndarray:
        """Limiting training misclassification rate ``Q(E* / sqrt(V* - E*^2))`` at times t (vectorised).

        Args:
            t: times (steps in discrete time), >= 0; ``inf`` allowed.

        Returns:
            The training error at each t.

        Examples:
            >>> from dltheory.learningdyn import GDTheory
            >>> theory = GDTheory(4.0, (256, 512), 0.1, 0.01, discrete=True)
            >>> theory.train_error([0, 1000]).round(4).tolist()
            [0.5, 0.0014]
        """
        return self.terms(t).train_error

    def least_squares_limit(self) -> LimitErrors:
        """The errors as t -> inf: the least-squares (with ridge: ridge-regression) classifier.

        When p > n and ridge = 0, the part of the initialisation in the null space of ``X X^T`` never moves
        and is included.

        Returns:
            :class:`LimitErrors` ``(test_error, train_error)``.

        Examples:
            >>> from dltheory.learningdyn import GDTheory
            >>> limit = GDTheory(4.0, (256, 512), 0.1, 0.01, discrete=True).least_squares_limit()
            >>> round(limit.test_error, 4), round(limit.train_error, 4)
            (0.0912, 0.0013)
        """
        terms = self.terms(np.inf)
        return LimitErrors(float(terms.test_error), float(terms.train_error))

    def time_scale(self) -> tuple[float, float]:
        """``(1/(alpha (lambda_max + ridge)), 1/(alpha (lambda_min + ridge)))``: fastest and slowest modes."""
        fast = 1.0 / (self.alpha * (self.lambda_max + self.ridge))
        slow_rate = max(self.lambda_min + self.ridge, self.slowest_rate * (self.lambda_max + self.ridge))
        return fast, 1.0 / (self.alpha * slow_rate)

    def time_grid(self) -> np.ndarray:
        """``grid_points`` log-spaced times from well before the fastest to well after the slowest mode."""
        fast, slow = self.time_scale()
        grid = np.geomspace(1e-3 * fast, 15.0 * slow, self.grid_points)  # f_t < e^-15 beyond
        if self.discrete:
            grid = np.unique(np.maximum(np.round(grid), 1.0))
        return grid

    def optimal_stopping(self) -> StoppingPoint:
        """The optimal early-stopping time and the test error there.

        Minimises the test error over t: a log grid, then vectorised zooms around the best point (relative
        precision ~ 1e-7 of the bracket; integers in discrete time).

        Returns:
            :class:`StoppingPoint` ``(time, error)``: ``(inf, least-squares error)`` when the error keeps
            falling (no over-training), ``(0, t -> 0+ limit)`` when it keeps rising (only with sigma2 = 0:
            the best possible error).

        References:
            Liao & Couillet (2018), section 3.

        Examples:
            >>> from dltheory.learningdyn import GDTheory
            >>> GDTheory(4.0, (256, 512), 0.1, 0.01, discrete=True).optimal_stopping()
            StoppingPoint(time=96.0, error=0.0483...)
        """
        grid = self.time_grid()
        errors = self.test_error(grid)
        k = int(np.argmin(errors))
        if k == len(grid) - 1:
            limit = self.least_squares_limit().test_error
            if limit <= errors[k]:
                return StoppingPoint(float("inf"), limit)
        if k == 0 and self.sigma2 == 0 and not self.discrete:
            # the infimum is the t -> 0+ limit (w proportional to X y/n): evaluate it at a vanishing time
            return StoppingPoint(0.0, float(self.test_error(1e-9 * grid[0])))
        lo = grid[max(k - 1, 0)] if k > 0 else 0.0
        hi = grid[min(k + 1, len(grid) - 1)]
        if self.discrete:
            return self._integer_minimum(int(lo), int(hi))
        for _ in range(_ZOOM_LEVELS):  # vectorised zoom: one theory call per level
            times = np.linspace(lo, hi, _ZOOM_POINTS)
            errors = self.test_error(times)
            k = int(np.argmin(errors))
            lo, hi = times[max(k - 1, 0)], times[min(k + 1, _ZOOM_POINTS - 1)]
        return StoppingPoint(float(times[k]), float(errors[k]))

    def _integer_minimum(self, lo: int, hi: int) -> StoppingPoint:
        while hi - lo > _INTEGER_SCAN:
            steps = np.unique(np.round(np.linspace(lo, hi, _INTEGER_SCAN + 1)))
            errors = self.test_error(steps)
            k = int(np.argmin(errors))
            lo, hi = int(steps[max(k - 1, 0)]), int(steps[min(k + 1, len(steps) - 1)])
        steps = np.arange(lo, hi + 1, dtype=np.float64)
        errors = self.test_error(steps)
        k = int(np.argmin(errors))
        return StoppingPoint(float(steps[k]), float(errors[k]))
