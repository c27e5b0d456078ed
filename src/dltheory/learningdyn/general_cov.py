"""Learning curves of gradient descent for a Gaussian mixture with a general covariance (extension of
Liao & Couillet 2018; deterministic equivalents as in Couillet & Liao, "Random Matrix Methods for Machine
Learning", 2022, Section 5.2 and Chapter 2).

Model: ``x_i = y_i mu + C^{1/2} z_i``; loss ``(1/2n)||y^T - w^T X||^2 + (ridge/2)||w||^2``; ``w_0 ~
N(0, sigma2/p I)``. Rotating the labels out (``X O^T`` with ``O`` orthogonal, first row ``y^T/sqrt n``)
gives ``A = X X^T/n = B + a a^T`` with ``a = X y/n = mu + C^{1/2} z/sqrt(n)`` independent of the
noise-only ``B``. With ``Qbar(z) = (C/(1 + delta(z)) - z I)^{-1}``, ``delta = tr(C Qbar)/n`` (fixed point),
``s = mu^T Qbar mu``, ``m = tr(Qbar)/p`` and Sherman-Morrison:

    mu^T Q(z) a  ~ s / (1 + s + delta),         a^T Q(z) a ~ (s + delta) / (1 + s + delta),

and, for two resolvents (kappa = tr(C Qbar1 C Qbar2)/(n (1 + delta1)(1 + delta2))),

    a^T Q1 C Q2 a ~ (mu^T Qbar1 C Qbar2 mu + kappa (1 + delta1)(1 + delta2))
                    / ((1 - kappa)(1 + s1 + delta1)(1 + s2 + delta2)),
    tr(Q1 C Q2)/p ~ tr(Qbar1 C Qbar2) / (p (1 - kappa)).

Then ``E = mu^T w``, ``E* = a^T w_sig``, ``V* = w^T A w`` are single contour integrals and the test
variance ``V = w^T C w`` a double one (``-(1/2 pi i)^2 oint oint g(z1) g(z2) a^T Q1 C Q2 a dz1 dz2``).
With ``C = I`` everything reduces to :class:`dltheory.learningdyn.GDTheory` (checked in the tests).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from dltheory.core.validation import as_float_array, check_int
from dltheory.learningdyn.contour import Contour, converged, filter_contour
from dltheory.learningdyn.curves import (
    LearningCurves,
    LearningTerms,
    check_times,
    gaussian_tail,
    stability_check,
)
from dltheory.learningdyn.filters import gd_filters
from dltheory.learningdyn.theory import _check_scalar

_MAX_BLOCK = 2_000_000


class CovarianceResolvent:
    """Deterministic equivalent ``Qbar(z) = (C/(1 + delta(z)) - z I)^{-1}`` of the resolvent of
    ``C^{1/2} Z Z^T C^{1/2}/n`` in the eigenbasis of C (eigenvalues ``eig``, grouped when repeated).

    ``delta(z)`` solves ``delta = (1/n) sum_i eig_i / (eig_i/(1 + delta) - z)``: fixed-point iterations,
    then Newton on ``D = 1 + delta``; the solution with ``Im delta`` of the sign of ``Im z`` is the one
    that is a Stieltjes transform (Silverstein & Bai 1995)."""

    def __init__(self, eig: np.ndarray, n: int) -> None:
        eig = np.asarray(eig, dtype=np.float64)
        self.n = n
        self.p = eig.size
        self.values, self.group, self.counts = np.unique(eig, return_inverse=True, return_counts=True)

    def one_plus_delta(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.complex128)
        lam, w = self.values, self.counts / self.n
        d = np.ones_like(z)
        for _ in range(30):
            d = 1 + ((w * lam) / (lam / d[..., None] - z[..., None])).sum(-1)
        for _ in range(100):
            denom = lam - z[..., None] * d[..., None]
            residual = d - 1 - (w * lam * d[..., None] / denom).sum(-1)
            slope = 1 - (w * lam**2 / denom**2).sum(-1)
            d = d - residual / slope
            if np.max(np.abs(residual) / np.abs(d)) < 1e-14:
                break
        residual = d - 1 - (w * lam * d[..., None] / (lam - z[..., None] * d[..., None])).sum(-1)
        if not np.max(np.abs(residual) / np.abs(d)) < 1e-11:
            raise RuntimeError(
                "the fixed point delta = tr(C Qbar)/n did not converge "
                f"(relative residual {np.max(np.abs(residual) / np.abs(d)):.3g})"
            )
        return d

    def diagonal(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(1 + delta(z), q)`` with ``q[..., k] = 1/(values_k/(1 + delta) - z)``: the eigenvalues of Qbar,
        one per distinct eigenvalue of C (``counts`` gives the multiplicities)."""
        d = self.one_plus_delta(z)
        return d, 1.0 / (self.values / d[..., None] - np.asarray(z)[..., None])

    def companion_x(self, m_under: np.ndarray) -> np.ndarray:
        """Inverse of the companion Stieltjes transform (Silverstein & Choi 1995):
        ``x(m) = -1/m + (1/n) sum_i eig_i/(1 + eig_i m)``; ``1 + delta(x) = -1/(x m)``."""
        m_under = np.asarray(m_under, dtype=np.float64)
        return (
            -1.0 / m_under
            + (self.counts * self.values / (1 + self.values * m_under[..., None])).sum(-1) / self.n
        )

    def right_edge(self) -> tuple[float, float]:
        """Right edge of the limiting spectrum of ``C^{1/2} Z Z^T C^{1/2}/n``: the minimum of ``x(m)`` over
        ``m in (-1/eig_max, 0)``; returns ``(edge, m at the edge)``."""
        top = float(np.max(self.values))
        found = minimize_scalar(
            lambda m: float(self.companion_x(np.array(m))),
            bounds=(-(1 - 1e-12) / top, -1e-12 / top),
            method="bounded",
            options={"xatol": 1e-14 / top},
        )
        return float(found.fun), float(found.x)

    def left_edge(self) -> float:
        """Left edge of the non-zero part of the limiting spectrum: with ``u = -1/m``,
        ``x(u) = u + (1/n) sum_i eig_i u/(u - eig_i)`` is concave on ``u < eig_min`` (eig_min the smallest
        positive eigenvalue of C) and its maximum there is the edge; ``(1 - sqrt c)^2`` for C = I."""
        positive = self.values > 0
        lam, count = self.values[positive], self.counts[positive]
        low, top = float(lam[0]), float(lam[-1])

        def x_of_u(u: float) -> float:
            return float(u + np.sum(count * lam * u / (u - lam)) / self.n)

        found = minimize_scalar(
            lambda u: -x_of_u(u),
            bounds=(-(10.0 + 10.0 * self.p / self.n) * top, (1 - 1e-12) * low),
            method="bounded",
            options={"xatol": 1e-13 * top},
        )
        return max(-float(found.fun), 0.0)


class GeneralCovGDTheory(LearningCurves):
    """Learning curves of gradient descent with class covariance C (extension of Liao & Couillet 2018).

    ``mu`` (p-vector), ``cov`` (p x p symmetric positive semi-definite, or a p-vector of its eigenvalues
    for a diagonal C), ``n`` samples, ``sigma2``, ``alpha``, ``discrete`` and ``ridge`` as in
    :class:`~dltheory.learningdyn.GDTheory`. Computed by contour integration only (numerically: a
    Joukowski ellipse, trapezoidal rule, nodes doubled until converged to 1e-10).
    """

    grid_points = 120  # optimal stopping: a coarser first scan (each time scale costs a contour)
    slowest_rate = 1e-2  # ... up to alpha t (lambda_max + ridge) = 3000 when the spectrum reaches 0 (c = 1)

    def __init__(
        self,
        mu: Any,
        cov: Any,
        n: int,
        sigma2: float,
        alpha: float,
        discrete: bool = False,
        *,
        ridge: float = 0.0,
    ) -> None:
        mu = as_float_array("mu", mu)
        if mu.ndim != 1 or mu.size == 0:
            raise ValueError(f"mu must be a non-empty vector, got shape {mu.shape}")
        p = mu.size
        self.n = check_int("n", n, minimum=1)
        self.c = p / self.n
        cov = as_float_array("cov", cov)
        if cov.shape == (p,):
            eig, basis = cov.copy(), None
        elif cov.shape == (p, p):
            if not np.allclose(cov, cov.T, rtol=1e-10, atol=1e-12 * float(np.max(np.abs(cov)))):
                raise ValueError("cov must be symmetric")
            eig, basis = np.linalg.eigh(cov)
        else:
            raise ValueError(
                f"cov must be a ({p}, {p}) matrix or a vector of {p} eigenvalues, got {cov.shape}"
            )
        if np.min(eig) < -1e-10 * max(float(np.max(np.abs(eig))), 1e-300):
            raise ValueError(f"cov must be positive semi-definite, smallest eigenvalue {np.min(eig)!r}")
        if np.max(eig) <= 0:
            raise ValueError("cov must not be zero")
        self.eig = np.clip(eig, 0.0, None)
        mu_rot = mu if basis is None else basis.T @ mu
        self.mu_norm2 = float(mu @ mu)
        if self.mu_norm2 <= 0:
            raise ValueError("mu must not be zero (the classes would coincide: every error is 1/2)")
        self.sigma2 = _check_scalar("sigma2", sigma2, allow_zero=True)
        self.alpha = _check_scalar("alpha", alpha, allow_zero=False)
        self.ridge = _check_scalar("ridge", ridge, allow_zero=True)
        self.discrete = bool(discrete)
        self.resolvent = CovarianceResolvent(self.eig, self.n)
        # per distinct eigenvalue of C: its value, multiplicity and the weight of mu on its eigenspace
        self._lam = self.resolvent.values
        self._count = self.resolvent.counts.astype(np.float64)
        self._mu_w = np.bincount(self.resolvent.group, weights=mu_rot**2, minlength=self._lam.size)
        self._edge, self._edge_m = self.resolvent.right_edge()
        self._left_edge = self.resolvent.left_edge() if abs(self.c - 1) > 1e-12 else 0.0
        self._spike = self._find_spike()
        stability_check(
            self.alpha,
            self.lambda_max + self.ridge,
            self.discrete,
            "the largest eigenvalue of X X^T/n" + (" + ridge" if self.ridge else ""),
        )

    # spectra ----------------------------------------------------------------------------------------
    def _signal_denominator(self, m_under: float) -> float:
        """``1 + s + delta`` at the real point ``x(m_under)`` right of the bulk."""
        x = float(self.resolvent.companion_x(np.array(m_under)))
        d = -1.0 / (x * m_under)
        s = float(np.sum(self._mu_w / (self._lam / d - x)))
        return 1 + s + (d - 1)

    def _find_spike(self) -> float | None:
        """Isolated eigenvalue of ``A``: the root of ``1 + s(x) + delta(x)`` right of the bulk, if any."""
        m_edge = self._edge_m
        top = -1e-14 / float(np.max(self.eig))
        if self._signal_denominator(m_edge * (1 - 1e-12)) >= 0:
            return None
        root = brentq(self._signal_denominator, m_edge * (1 - 1e-12), top, xtol=1e-18, rtol=1e-15)
        return float(self.resolvent.companion_x(np.array(root)))

    @property
    def spike_location(self) -> float | None:
        return self._spike

    @property
    def bulk_edge(self) -> float:
        return self._edge

    @property
    def lambda_max(self) -> float:
        return max(self._edge, self._spike or 0.0)

    @property
    def lambda_min(self) -> float:
        """Left edge of the non-zero part of the spectrum of X X^T/n (0 at c = 1)."""
        return self._left_edge

    def mean_difference_error(self) -> float:
        """t -> 0+ with sigma2 = 0 (``w ~ X y/n``): ``Q(M / sqrt(mu^T C mu + tr(C^2)/n))``."""
        v = float(np.sum(self._mu_w * self._lam) + np.sum(self.eig**2) / self.n)
        return float(gaussian_tail(self.mu_norm2 / np.sqrt(v)))

    def contour_bounds(self) -> tuple[float, float]:
        singular = self.c >= 1 or np.min(self.eig) <= 0
        return (0.0 if singular else self._left_edge), self.lambda_max

    # the four quantities ----------------------------------------------------------------------------
    def terms(self, t: object) -> LearningTerms:
        """``E, V, E*, V*`` at times t (t = inf: the least-squares / ridge limit)."""
        times = check_times(t, self.discrete)
        flat = times.reshape(-1)
        finite = np.isfinite(flat)
        out = np.zeros((4, flat.size))
        if np.any(finite):
            out[:, finite] = self._by_time_scale(flat[finite])
        if not np.all(finite):
            out[:, ~finite] = self._limit_terms()[:, None]
        e, v, e_star, v_star = (row.reshape(times.shape) for row in out)
        return LearningTerms(times, e, v, e_star, v_star)

    def _pieces(self, z: np.ndarray) -> dict[str, np.ndarray]:
        d, q = self.resolvent.diagonal(z)
        s = q @ self._mu_w
        m = q @ self._count / self.eig.size
        denom = d + s  # 1 + s + delta
        return {"d": d, "q": q, "s": s, "m": m, "denom": denom}

    def _single(self, contour: Contour, pieces: dict[str, np.ndarray], t: np.ndarray) -> np.ndarray:
        z = contour.z
        f, g = gd_filters(z, t[:, None], self.alpha, ridge=self.ridge, discrete=self.discrete)
        s, d, m, denom = pieces["s"], pieces["d"], pieces["m"], pieces["denom"]
        e = contour.integrate(g * s / denom)
        e_star = contour.integrate(g * (s + d - 1) / denom)
        v_star = contour.integrate(z * g * g * (s + d - 1) / denom) + self.sigma2 * contour.integrate(
            z * f * f * m
        )
        return np.stack([e, e_star, v_star])

    def _kernels(self, pieces: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        q, d, denom = pieces["q"], pieces["d"], pieces["denom"]
        lam, count = self._lam, self._count
        t2 = (q * (count * lam**2)) @ q.T / self.n
        kappa = t2 / np.outer(d, d)
        s2 = (q * (self._mu_w * lam)) @ q.T
        p2 = (q * (count * lam)) @ q.T / self.eig.size
        signal = (s2 + t2) / ((1 - kappa) * np.outer(denom, denom))
        init = p2 / (1 - kappa)
        return signal, init

    def _by_time_scale(self, t: np.ndarray) -> np.ndarray:
        """Evaluate times decade by decade: the contour (and its kernels) needed at ``t <= 10 t_0`` is much
        cheaper than the one needed at the largest t."""
        out = np.empty((4, t.size))
        # past alpha t (lambda_min + ridge) = 40 every filter f_t is below e^-40 on the non-zero spectrum:
        # the curves equal their t -> inf limit to double precision
        settled = self.alpha * t * (self._left_edge + self.ridge) >= 40.0
        if np.any(settled):
            out[:, settled] = self._limit_terms()[:, None]
        scale = np.where(settled, -1.0, np.floor(np.log10(np.maximum(self.alpha * t, 1.0))))
        for level in np.unique(scale[~settled]):
            chosen = scale == level
            out[:, chosen] = self._contour_terms(t[chosen])
        return out

    def _contour_terms(self, t: np.ndarray) -> np.ndarray:
        lo, hi = self.contour_bounds()
        t_max = float(np.max(t))
        contour = filter_contour(
            lo, hi, alpha=self.alpha, t_max=t_max, ridge=self.ridge, discrete=self.discrete
        )
        contour = converged(
            contour, lambda cont: self._single(cont, self._pieces(cont.z), np.array([t_max]))[:, 0]
        )
        pieces = self._pieces(contour.z)
        signal, init = self._kernels(pieces)
        out = np.empty((4, t.size))
        block = max(1, _MAX_BLOCK // contour.z.size)
        for start in range(0, t.size, block):
            tb = t[start : start + block]
            e, e_star, v_star = self._single(contour, pieces, tb)
            f, g = gd_filters(contour.z, tb[:, None], self.alpha, ridge=self.ridge, discrete=self.discrete)
            gw, fw = g * contour.w, f * contour.w
            v = np.real(np.sum((gw @ signal) * gw, -1)) + self.sigma2 * np.real(np.sum((fw @ init) * fw, -1))
            out[:, start : start + block] = (e, v, e_star, v_star)
        return out

    def _quadratic_form_slope(self, pieces: dict[str, np.ndarray]) -> float:
        """``F'(z)`` for ``F = (s + delta)/(1 + s + delta)``: ``(s' + delta')/(1 + s + delta)^2`` with
        ``q_i' = q_i^2 (1 + eig_i delta'/(1 + delta)^2)`` and
        ``delta' = (1/n) sum eig_i q_i^2 / (1 - (1/n) sum eig_i^2 q_i^2/(1 + delta)^2)``."""
        q, d, denom = pieces["q"][0], pieces["d"][0], pieces["denom"][0]
        lam, count = self._lam, self._count
        d_slope = np.sum(count * lam * q**2) / self.n / (1 - np.sum(count * lam**2 * q**2) / self.n / d**2)
        q_slope = q**2 * (1 + lam * d_slope / d**2)
        s_slope = np.sum(self._mu_w * q_slope)
        return float(np.real((s_slope + d_slope) / denom**2))

    def _limit_terms(self) -> np.ndarray:
        """t -> inf: the resolvent at ``z = -ridge`` (``g = 1/(x + ridge)``), approached from
        ``z = -eps`` when ridge = 0; the initialisation keeps ``sigma2 tr(P_null C)/p`` with
        ``tr(P_null C)/p = lim_{z -> 0-} (-z) delta(z)/c`` (null space of X X^T, p > n)."""
        eps = 1e-9 * self.lambda_max
        z = np.array([-self.ridge if self.ridge > 0 else -eps], dtype=np.complex128)
        pieces = self._pieces(z)
        signal, _ = self._kernels(pieces)
        s, d, denom = pieces["s"][0], pieces["d"][0], pieces["denom"][0]
        e = float(np.real(s / denom))
        e_star = float(np.real((s + d - 1) / denom))
        if self.ridge > 0:
            # V* = a^T A (A + r)^{-2} a = F(-r) - r F'(-r), F(z) = a^T Q(z) a ~ (s + delta)/(1 + s + delta)
            v_star = e_star - self.ridge * self._quadratic_form_slope(pieces)
            null = 0.0
        else:
            v_star = e_star  # a^T A (A^+)^2 a = a^T A^+ a
            null = float(np.real(eps * (d - 1) / self.c)) if self.c > 1 or np.min(self.eig) <= 0 else 0.0
        v = float(np.real(signal[0, 0])) + self.sigma2 * null
        if self.ridge == 0 and self.c == 1 and np.min(self.eig) > 0:
            v = np.inf  # as for C = I: the least-squares norm diverges at p = n
        return np.array([e, v, e_star, v_star])
