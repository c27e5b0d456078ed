"""Monte Carlo of the gradient descent that :class:`~dltheory.learningdyn.GDTheory` predicts.

Each run draws a training set, runs gradient descent on ``(1/2n)||y^T - w^T X||^2 (+ (ridge/2)||w||^2)``
from ``w_0 ~ N(0, sigma2/p I)`` and records the training and test misclassification rates at the
requested steps. All steps come at once from one eigendecomposition ``X X^T/n = U diag(lam) U^T`` per
run: ``w(t) = U [f_t(lam) U^T w_0 + g_t(lam) U^T X y/n]`` is exactly the t-th gradient-descent iterate
(``f_t = (1 - alpha (lam + ridge))^t``; ``discrete=False`` gives gradient flow instead), so 1000 steps
cost one ``p x p`` eigendecomposition and a few matrix products, not 1000 gradient evaluations.

On a Gaussian mixture the test error of a given w is known exactly,
``Q(w^T mu / sqrt(w^T C w))``, so no test sample is drawn; on real data it is measured on held-out points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dltheory.core.validation import as_float_array, check_int
from dltheory.learningdyn.curves import check_times, gaussian_tail
from dltheory.learningdyn.filters import gd_filters
from dltheory.learningdyn.theory import _check_scalar

_CHUNK = 4_000_000  # entries of (time points x samples) computed at once


@dataclass(frozen=True)
class Simulation:
    """Per-run error curves (``runs x len(times)``) and their means and standard errors."""

    times: np.ndarray
    test_errors: np.ndarray
    train_errors: np.ndarray

    @property
    def runs(self) -> int:
        return int(self.test_errors.shape[0])

    @property
    def test_error_mean(self) -> np.ndarray:
        return self.test_errors.mean(0)

    @property
    def train_error_mean(self) -> np.ndarray:
        return self.train_errors.mean(0)

    @property
    def test_error_se(self) -> np.ndarray:
        """Standard error of the mean over runs (NaN with a single run)."""
        return _standard_error(self.test_errors)

    @property
    def train_error_se(self) -> np.ndarray:
        return _standard_error(self.train_errors)

    def to_dict(self) -> dict[str, Any]:
        """Times, means and standard errors (not the per-run arrays), as JSON-able lists."""
        return {
            "runs": self.runs,
            "times": self.times.tolist(),
            "test_error_mean": self.test_error_mean.tolist(),
            "test_error_se": self.test_error_se.tolist(),
            "train_error_mean": self.train_error_mean.tolist(),
            "train_error_se": self.train_error_se.tolist(),
        }


def _standard_error(values: np.ndarray) -> np.ndarray:
    if values.shape[0] < 2:
        return np.full(values.shape[1:], np.nan)
    return values.std(0, ddof=1) / np.sqrt(values.shape[0])


def _generator(seed: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_int("seed", seed, minimum=0))


def _error_rate(margins: np.ndarray) -> np.ndarray:
    """Fraction of ``y w^T x < 0`` over the last axis; a zero margin (w = 0) counts as half an error."""
    return (margins < 0).mean(-1) + 0.5 * (margins == 0).mean(-1)


class _Descent:
    """Gradient descent on one training set, all requested steps at once."""

    def __init__(self, x: np.ndarray, y: np.ndarray, *, alpha: float, ridge: float, discrete: bool):
        self.x, self.y = x, y
        p, n = x.shape
        lam, self.basis = np.linalg.eigh(x @ x.T / n)
        self.lam_max = float(lam[-1])
        null = lam < p * np.finfo(np.float64).eps * max(self.lam_max, 1e-300)
        self.lam = np.where(null, 0.0, lam)
        self.signal = self.basis.T @ (x @ y / n)
        self.signal[null] = 0.0  # X y/n lies in the range of X
        self.alpha, self.ridge, self.discrete = alpha, ridge, discrete

    def weights(self, w0: np.ndarray, times: np.ndarray) -> np.ndarray:
        """``w(t)`` in the eigenbasis, shape ``(len(times), p)``."""
        f, g = gd_filters(self.lam, times[:, None], self.alpha, ridge=self.ridge, discrete=self.discrete)
        return f * (self.basis.T @ w0) + g * self.signal

    def error_rates(self, coords: np.ndarray, rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Misclassification rate of every ``w(t)`` (rows of ``coords``, eigenbasis) on the samples
        ``rows`` (``[m, p]``) with labels +-1."""
        if rows.shape[0] < coords.shape[0]:  # cheaper to rotate the samples than the weights
            rows, weights = rows @ self.basis, coords
        else:
            weights = coords @ self.basis.T
        out = np.empty(coords.shape[0])
        block = max(1, _CHUNK // max(rows.shape[0], 1))
        for start in range(0, coords.shape[0], block):
            margins = (rows @ weights[start : start + block].T) * labels[:, None]
            out[start : start + block] = _error_rate(margins.T)
        return out


def _check_common(sigma2: float, alpha: float, ridge: float, runs: int) -> tuple[float, float, float, int]:
    return (
        _check_scalar("sigma2", sigma2, allow_zero=True),
        _check_scalar("alpha", alpha, allow_zero=False),
        _check_scalar("ridge", ridge, allow_zero=True),
        check_int("runs", runs, minimum=1),
    )


def _check_stable(descent: _Descent, alpha: float, ridge: float, discrete: bool) -> None:
    if discrete and alpha * (descent.lam_max + ridge) >= 2:
        raise ValueError(
            f"alpha={alpha!r} is at or beyond the stability limit 2/lambda_max = "
            f"{2 / (descent.lam_max + ridge):.6g} of this training set (lambda_max = {descent.lam_max:.6g}, "
            "the largest eigenvalue of X X^T/n + ridge): gradient descent diverges"
        )


def balanced_labels(n: int) -> np.ndarray:
    """``n`` labels +-1, alternating (``n//2`` or ``n//2 + 1`` of each class)."""
    return np.where(np.arange(n) % 2 == 0, 1.0, -1.0)


def simulate(
    mu: Any,
    n: int,
    sigma2: float,
    alpha: float,
    times: Any,
    *,
    runs: int = 50,
    cov: Any = None,
    ridge: float = 0.0,
    discrete: bool = True,
    seed: int | np.random.Generator = 0,
    train_error: bool = True,
) -> Simulation:
    """Gradient descent on ``runs`` independent draws of ``x_i = y_i mu + C^{1/2} z_i`` (n samples,
    balanced labels, ``C = cov`` or the identity) from ``w_0 ~ N(0, sigma2/p I)``.

    Returns the exact test error ``Q(w^T mu / sqrt(w^T C w))`` and the training error at ``times``
    (steps; ``discrete=False`` runs gradient flow; ``train_error=False`` skips the training error, NaN,
    which is most of the cost at many steps). Raises ValueError when a draw's largest eigenvalue makes
    the step unstable.
    """
    mu = as_float_array("mu", mu)
    if mu.ndim != 1 or mu.size == 0:
        raise ValueError(f"mu must be a non-empty vector, got shape {mu.shape}")
    p = mu.size
    n = check_int("n", n, minimum=2)
    sigma2, alpha, ridge, runs = _check_common(sigma2, alpha, ridge, runs)
    times = check_times(times, discrete).reshape(-1)
    root = None
    if cov is not None:
        cov = as_float_array("cov", cov)
        if cov.shape != (p, p):
            raise ValueError(f"cov must have shape ({p}, {p}), got {cov.shape}")
        eig, vec = np.linalg.eigh(cov)
        if np.min(eig) < -1e-10 * np.max(np.abs(eig)):
            raise ValueError(f"cov must be positive semi-definite, smallest eigenvalue {np.min(eig)!r}")
        root = (vec * np.sqrt(np.clip(eig, 0.0, None))) @ vec.T
    rng = _generator(seed)
    y = balanced_labels(n)
    test = np.empty((runs, times.size))
    train = np.empty((runs, times.size))
    for r in range(runs):
        noise = rng.standard_normal((p, n))
        x = np.outer(mu, y) + (noise if root is None else root @ noise)
        w0 = rng.standard_normal(p) * np.sqrt(sigma2 / p)
        descent = _Descent(x, y, alpha=alpha, ridge=ridge, discrete=discrete)
        _check_stable(descent, alpha, ridge, discrete)
        coords = descent.weights(w0, times)
        mean = coords @ (descent.basis.T @ mu)
        if root is None:
            var = np.sum(coords**2, -1)
        else:
            full = coords @ descent.basis.T
            var = np.sum((full @ cov) * full, -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(var > 0, mean / np.sqrt(np.where(var > 0, var, 1.0)), 0.0)
        test[r] = gaussian_tail(ratio)
        train[r] = descent.error_rates(coords, x.T, y) if train_error else np.nan
    return Simulation(times, test, train)


def simulate_on_data(
    x: Any,
    y: Any,
    n: int,
    sigma2: float,
    alpha: float,
    times: Any,
    *,
    runs: int = 10,
    ridge: float = 0.0,
    discrete: bool = True,
    seed: int | np.random.Generator = 0,
) -> Simulation:
    """Gradient descent on real data: each run trains on n rows of ``x`` (``[N, p]``, labels ``y`` = +-1)
    drawn without replacement and measures the test error on the other ``N - n`` rows."""
    x = as_float_array("x", x)
    y = as_float_array("y", y)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be [N, p] and y [N], got {x.shape} and {y.shape}")
    if not np.all(np.abs(y) == 1):
        raise ValueError("y must hold labels -1 and +1")
    total, p = x.shape
    n = check_int("n", n, minimum=2)
    if n >= total:
        raise ValueError(f"n must be smaller than the number of rows ({total}) to leave a test set, got {n}")
    sigma2, alpha, ridge, runs = _check_common(sigma2, alpha, ridge, runs)
    times = check_times(times, discrete).reshape(-1)
    rng = _generator(seed)
    test = np.empty((runs, times.size))
    train = np.empty((runs, times.size))
    for r in range(runs):
        train_rows = np.zeros(total, dtype=bool)
        train_rows[rng.choice(total, size=n, replace=False)] = True
        x_train = x[train_rows]
        w0 = rng.standard_normal(p) * np.sqrt(sigma2 / p)
        descent = _Descent(x_train.T, y[train_rows], alpha=alpha, ridge=ridge, discrete=discrete)
        _check_stable(descent, alpha, ridge, discrete)
        coords = descent.weights(w0, times)
        train[r] = descent.error_rates(coords, x_train, y[train_rows])
        test[r] = descent.error_rates(coords, x[~train_rows], y[~train_rows])
    return Simulation(times, test, train)
