"""Deterministic learning curves of gradient descent on a two-class Gaussian mixture
(Liao & Couillet, "The Dynamics of Learning: A Random Matrix Approach", ICML 2018).

Model (paper, Section 2): ``x_i = y_i mu + z_i``, ``z_i ~ N(0, I_p)``, labels +-1, ``c = p/n``,
``M = ||mu||^2``; the linear classifier ``sign(w^T x)`` is trained on ``(1/2n)||y^T - w^T X||^2`` by
gradient descent with step alpha from ``w_0 ~ N(0, sigma2/p I_p)``. As ``p, n -> inf`` (paper, Theorems
1-2, written here as real integrals against the measures of :mod:`dltheory.learningdyn.spectral`):

    E  = int g_t dmu_s,                           V  = (M + c)/M int g_t^2 dmu_s + sigma2 int f_t^2 dnu,
    E* = (M + c)/M E,                             V* = (M + c)/M int x g_t^2 dmu_s + sigma2 int x f_t^2 dnu,

with the filters ``f_t, g_t`` of :mod:`dltheory.learningdyn.filters` (``g_t = (1 - f_t)/x``). The paper's
own form is the contour integral ``-(1/2 pi i) oint`` of the same filters against the Stieltjes
transforms ``M m(z)/(1 + (M + c) m(z))`` and ``m(z)`` (``form="contour"``); both are computed here and
agree to about 1e-12. Extensions (not in the paper): the exact discrete-time filter ``(1 - alpha x)^t``
(the paper uses gradient flow), a ridge penalty ``(ridge/2)||w||^2``, and the closed-form t -> inf limits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dltheory.core.validation import as_float_array, check_choice, check_int, check_positive
from dltheory.learningdyn.contour import Contour, converged, filter_contour
from dltheory.learningdyn.curves import (
    LearningCurves,
    LearningTerms,
    check_times,
    gaussian_tail,
    stability_check,
)
from dltheory.learningdyn.filters import gd_filters
from dltheory.learningdyn.spectral import MarchenkoPastur, SignalMeasure, largest_eigenvalue

FORMS = ("integral", "contour")
_MAX_BLOCK = 2_000_000  # time points x nodes per vectorised block


def _check_scalar(name: str, value: Any, *, allow_zero: bool) -> float:
    array = check_positive(name, value, allow_zero=allow_zero)
    if array.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got an array of shape {array.shape}")
    return float(array)


def _ratio(c: Any) -> float:
    if isinstance(c, tuple | list):
        if len(c) != 2:
            raise ValueError(f"c must be p/n or a pair (p, n), got {c!r}")
        p = check_int("p", c[0], minimum=1)
        n = check_int("n", c[1], minimum=1)
        return p / n
    return _check_scalar("c", c, allow_zero=False)


class GDTheory(LearningCurves):
    """Random-matrix learning curves of gradient descent (Liao & Couillet 2018, identity covariance).

    Two classes ``x = y mu + z``, ``z ~ N(0, I_p)``, n samples, ``c = p/n``; the squared loss
    ``(1/2n)||y^T - w^T X||^2`` trained by gradient descent with step ``alpha`` from ``w_0`` with i.i.d.
    entries of variance ``sigma2/p``. The training and test misclassification rates at every step follow from
    the Marchenko-Pastur law, the spike and the signal measure (Theorems 1-2 of the paper; the equations are
    in docs/liao/theory.md).

    Args:
        mu_norm2: ``||mu||^2 > 0``.
        c: ``p/n > 0``, or the pair ``(p, n)``.
        sigma2: initialisation variance (``w_0 ~ N(0, sigma2/p I)``), >= 0.
        alpha: step size, > 0 and below the stability limit ``2 / lambda_max``.
        discrete: ``False`` for gradient flow ``exp(-alpha t x)`` (the paper), ``True`` for the exact iterates
            ``(1 - alpha x)^t`` of gradient descent.
        ridge: adds ``(ridge/2)||w||^2`` to the loss (an extension), >= 0.

    Raises:
        ValueError: for out-of-range parameters, or (discrete time) a step at or beyond the stability limit.

    References:
        Liao & Couillet (2018), The Dynamics of Learning: A Random Matrix Approach, Theorems 1-2.

    Examples:
        >>> from dltheory.learningdyn import GDTheory
        >>> theory = GDTheory(mu_norm2=4.0, c=(256, 512), sigma2=0.1, alpha=0.01, discrete=True)
        >>> theory.test_error([0, 100, 1000]).round(4).tolist()
        [0.5, 0.0484, 0.0804]
        >>> theory.optimal_stopping()
        StoppingPoint(time=96.0, error=0.0483...)
        >>> round(theory.best_possible_error(), 4)          # Q(M / sqrt(M + c))
        0.0297
    """

    def __init__(
        self,
        mu_norm2: float,
        c: float | tuple[int, int],
        sigma2: float,
        alpha: float,
        discrete: bool = False,
        *,
        ridge: float = 0.0,
    ) -> None:
        self.mu_norm2 = _check_scalar("mu_norm2", mu_norm2, allow_zero=False)
        self.c = _ratio(c)
        self.sigma2 = _check_scalar("sigma2", sigma2, allow_zero=True)
        self.alpha = _check_scalar("alpha", alpha, allow_zero=False)
        self.ridge = _check_scalar("ridge", ridge, allow_zero=True)
        if not isinstance(discrete, bool | np.bool_):
            raise TypeError(f"discrete must be a bool, got {discrete!r}")
        self.discrete = bool(discrete)
        self.marchenko_pastur = MarchenkoPastur(self.c)
        self.signal = SignalMeasure(self.mu_norm2, self.c)
        where = "the spike c + 1 + M + c/M" if self.signal.has_spike else "the bulk edge (1 + sqrt c)^2"
        stability_check(
            self.alpha,
            self.lambda_max + self.ridge,
            self.discrete,
            f"the largest eigenvalue of X X^T/n{' + ridge' if self.ridge else ''}, {where}",
        )

    @classmethod
    def from_mu(
        cls, mu: Any, n: int, sigma2: float, alpha: float, discrete: bool = False, *, ridge: float = 0.0
    ) -> GDTheory:
        """The theory for a mean vector ``mu`` (p entries) and the sample size n.

        Args:
            mu: the class mean (``x = +-mu + noise``).
            n: number of training samples.
            sigma2: initialisation variance.
            alpha: step size.
            discrete: exact discrete iterates instead of gradient flow.
            ridge: ridge penalty.

        Returns:
            A :class:`GDTheory` with ``mu_norm2 = ||mu||^2`` and ``c = len(mu) / n``.

        Examples:
            >>> import numpy as np
            >>> from dltheory.learningdyn import GDTheory
            >>> mu = np.zeros(256); mu[0] = 2.0
            >>> GDTheory.from_mu(mu, 512, sigma2=0.1, alpha=0.01).c
            0.5
        """
        vector = as_float_array("mu", mu)
        if vector.ndim != 1 or vector.size == 0:
            raise ValueError(f"mu must be a non-empty vector, got shape {vector.shape}")
        return cls(float(vector @ vector), (vector.size, n), sigma2, alpha, discrete, ridge=ridge)

    def __repr__(self) -> str:
        return (
            f"GDTheory(mu_norm2={self.mu_norm2!r}, c={self.c!r}, sigma2={self.sigma2!r}, "
            f"alpha={self.alpha!r}, discrete={self.discrete!r}, ridge={self.ridge!r})"
        )

    # spectra ----------------------------------------------------------------------------------------
    @property
    def lambda_max(self) -> float:
        return largest_eigenvalue(self.mu_norm2, self.c)

    @property
    def lambda_min(self) -> float:
        return self.marchenko_pastur.support[0]

    @property
    def spike_location(self) -> float | None:
        return self.signal.spike_location

    # closed forms -----------------------------------------------------------------------------------
    def best_possible_error(self) -> float:
        """``Q(M / sqrt(M + c))``: the error of ``w ~ X y/n``, reached as t -> 0+ with sigma2 = 0.

        Returns:
            The best error gradient descent can reach from any initialisation (paper, section 3).

        Examples:
            >>> from dltheory.learningdyn import GDTheory
            >>> theory = GDTheory(mu_norm2=4.0, c=(256, 512), sigma2=0.1, alpha=0.01, discrete=True)
            >>> round(theory.best_possible_error(), 4)
            0.0297
        """
        return float(gaussian_tail(self.mu_norm2 / np.sqrt(self.mu_norm2 + self.c)))

    def _limit_terms(self) -> tuple[float, float, float, float]:
        """t -> inf in closed form. With ``S(z) = M/(u(z) + M + c)`` and ``u = 1/m`` (analytic at z = 0
        when c != 1; ``u^2 - (1 - c - z) u + c z = 0``, so ``u' = -(u + c)/(2u - 1 + c + z)``):
        ``int dmu_s/(x + r) = S(-r)`` and ``int dmu_s/(x + r)^2 = S'(-r)``; the part of ``w_0`` in the null
        space of X X^T (mass ``1 - 1/c`` of nu at 0 when c > 1, ridge = 0) never moves."""
        big_m, c, r = self.mu_norm2, self.c, self.ridge
        k = (big_m + c) / big_m
        if r == 0 and c == 1:
            # the least-squares solution has a diverging norm at c = 1: E/sqrt(V) -> 0
            # (the training set is interpolated: E* = V* = 1)
            return big_m / (big_m + 1), np.inf, 1.0, 1.0
        z = -r
        if r == 0:
            u = 1 - c if c < 1 else 0.0
        else:
            u = float(np.real(1 / self.marchenko_pastur.stieltjes(np.array(z))))
        du = -(u + c) / (2 * u - (1 - c - z))
        s = big_m / (u + big_m + c)
        ds = -big_m * du / (u + big_m + c) ** 2
        null = self.marchenko_pastur.atom_at_zero if r == 0 else 0.0
        e = s
        v = k * ds + self.sigma2 * null
        return e, v, k * e, k * (s - r * ds)

    # the four quantities ----------------------------------------------------------------------------
    def _nodes(self, t_max: float) -> int:
        """Gauss-Chebyshev nodes for integrands up to ``f_t^2``, ``g_t^2`` at ``t <= t_max``: the Chebyshev
        coefficients of ``exp(-k (u + 1))`` on [-1, 1] fall below 1e-16 by degree ``~ 9 sqrt(k)``; a
        degree-2t polynomial (discrete time) is integrated exactly by ``t + 1`` nodes."""
        lo, hi = self.marchenko_pastur.support
        rate = self.alpha * (1 + self.alpha * (hi + self.ridge)) if self.discrete else self.alpha
        k = 2 * rate * t_max * 0.5 * (hi - lo)
        n_nodes = 64 + 9 * np.sqrt(k)
        if self.discrete:
            n_nodes = min(n_nodes, t_max + 8)
        return int(min(n_nodes, 20000))

    def terms(self, t: object, form: str = "integral") -> LearningTerms:
        """The paper's four quantities ``E, V, E*, V*`` at times t.

        Args:
            t: times (steps in discrete time), >= 0; ``inf`` gives the least-squares limit.
            form: ``"integral"`` (real integrals against the spectral measures, default) or ``"contour"`` (the
                paper's contour integrals of the Stieltjes transform); both agree to about 1e-12.

        Returns:
            A :class:`~dltheory.learningdyn.curves.LearningTerms` with arrays of t's shape, from which
            ``test_error`` and ``train_error`` follow.

        Examples:
            >>> from dltheory.learningdyn import GDTheory
            >>> theory = GDTheory(mu_norm2=4.0, c=(256, 512), sigma2=0.1, alpha=0.01, discrete=True)
            >>> terms = theory.terms([10, 100])
            >>> terms.E.round(4).tolist(), terms.test_error.round(4).tolist()
            ([0.3144, 0.7522], [0.172, 0.0484])
            >>> bool(abs(theory.terms(100, form="contour").test_error - terms.test_error[1]) < 1e-9)
            True
        """
        check_choice("form", form, FORMS)
        times = check_times(t, self.discrete)
        flat = times.reshape(-1)
        finite = np.isfinite(flat)
        out = np.zeros((4, flat.size))
        if np.any(finite):
            tf = flat[finite]
            compute = self._integral_terms if form == "integral" else self._contour_terms
            out[:, finite] = compute(tf)
        if not np.all(finite):
            out[:, ~finite] = np.array(self._limit_terms())[:, None]
        e, v, e_star, v_star = (row.reshape(times.shape) for row in out)
        return LearningTerms(times, e, v, e_star, v_star)

    def _integral_terms(self, t: np.ndarray) -> np.ndarray:
        n_nodes = self._nodes(float(np.max(t)))
        nu, sig = self.marchenko_pastur.rule(n_nodes), self.signal.rule(n_nodes)
        k = (self.mu_norm2 + self.c) / self.mu_norm2
        out = np.empty((4, t.size))
        block = max(1, _MAX_BLOCK // (n_nodes + 2))
        for start in range(0, t.size, block):
            tb = t[start : start + block, None]
            f_nu, _ = gd_filters(nu.nodes, tb, self.alpha, ridge=self.ridge, discrete=self.discrete)
            _, g_s = gd_filters(sig.nodes, tb, self.alpha, ridge=self.ridge, discrete=self.discrete)
            e = sig.integrate(g_s)
            g2 = g_s**2
            f2 = f_nu**2
            v = k * sig.integrate(g2) + self.sigma2 * nu.integrate(f2)
            v_star = k * sig.integrate(g2 * sig.nodes) + self.sigma2 * nu.integrate(f2 * nu.nodes)
            out[:, start : start + block] = (e, v, k * e, v_star)
        return out

    def contour_bounds(self) -> tuple[float, float]:
        """Segment holding every singularity of the contour integrands: the support, the spike and, when
        c >= 1, the atom/branch point at 0."""
        lo, hi = self.marchenko_pastur.support
        if self.c >= 1:
            lo = 0.0
        return lo, max(hi, self.signal.pole if self.signal.has_spike else hi)

    def _contour_terms(self, t: np.ndarray) -> np.ndarray:
        lo, hi = self.contour_bounds()
        t_max = float(np.max(t))
        contour = filter_contour(
            lo, hi, alpha=self.alpha, t_max=t_max, ridge=self.ridge, discrete=self.discrete
        )
        contour = converged(contour, lambda cont: self._contour_block(cont, np.array([t_max]))[:, 0])
        out = np.empty((4, t.size))
        block = max(1, _MAX_BLOCK // contour.z.size)
        for start in range(0, t.size, block):
            out[:, start : start + block] = self._contour_block(contour, t[start : start + block])
        return out

    def _contour_block(self, contour: Contour, t: np.ndarray) -> np.ndarray:
        z = contour.z
        m = self.marchenko_pastur.stieltjes(z)
        s = self.signal.transform(z)
        k = (self.mu_norm2 + self.c) / self.mu_norm2
        f, g = gd_filters(z, t[:, None], self.alpha, ridge=self.ridge, discrete=self.discrete)
        e = contour.integrate(g * s)
        g2s, f2m = g * g * s, f * f * m
        v = k * contour.integrate(g2s) + self.sigma2 * contour.integrate(f2m)
        v_star = k * contour.integrate(g2s * z) + self.sigma2 * contour.integrate(f2m * z)
        return np.stack([e, v, k * e, v_star])
