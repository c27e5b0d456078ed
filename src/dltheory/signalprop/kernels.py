"""Gaussian moments of an activation ("dual kernels") that the mean-field maps are built from.

For u1 = sqrt(q1) z1, u2 = sqrt(q2) (c z1 + sqrt(1 - c^2) z2) with z1, z2 iid N(0, 1):

- ``moments(q) -> (m, dm, d)``: m = E[phi(sqrt(q) z)^2], dm = dm/dq = E[z phi phi'(sqrt(q) z)] / sqrt(q)
  (differentiated under the integral, valid for Lipschitz phi with kinks; equals E[phi'^2 + phi phi'']
  for smooth phi by Stein's lemma), d = E[phi'(sqrt(q) z)^2];
- ``cross(q1, q2, c) -> (k, kd)``: k = E[phi(u1) phi(u2)], kd = E[phi'(u1) phi'(u2)].

Closed forms: the ReLU family phi = A x + B |x| (A = (1 + a)/2, B = (1 - a)/2 for leaky slope a; ReLU a = 0,
linear a = 1) uses the arc-cosine kernel of Cho & Saul (2009), E|X||Y| = (2/pi)(sqrt(1 - c^2) + c arcsin c),
E[sign X sign Y] = (2/pi) arcsin c; erf uses the arcsine kernel of Williams (1997),
E[erf(u1) erf(u2)] = (2/pi) arcsin(2 S12 / sqrt((1 + 2 S11)(1 + 2 S22))) and
E[erf'(u1) erf'(u2)] = (4/pi) / sqrt((1 + 2 S11)(1 + 2 S22) - 4 S12^2); hard tanh has closed
1-D moments m = q (erf(a/sqrt2) - 2 a pdf(a)) + 2 Phi(-a), dm = erf(a/sqrt2) - 2 a pdf(a),
d = erf(a/sqrt2), a = 1/sqrt(q).
Everything else uses the quadrature of :mod:`dltheory.core.gaussian`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf, ndtr

from dltheory.core.activations import Activation, get_activation
from dltheory.core.gaussian import integrate_1d, integrate_2d

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class DualKernel:
    """Quadrature moments of a general activation (see the module docstring)."""

    closed_form = False

    def __init__(self, activation: Activation):
        self.activation = activation

    @property
    def uses_hermite_series(self) -> bool:
        """True when the fast Hermite-series correlation map is accurate (smooth, analytic phi)."""
        return not self.activation.kinks

    @property
    def homogeneous_gain(self) -> float | None:
        """g with E[phi(sqrt(q) z)^2] = g q for all q (positively homogeneous phi), else None."""
        return None

    def moments(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        act = self.activation
        q = np.asarray(q, dtype=np.float64)

        def integrand(x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            value, slope = act.values_and_derivs(x)
            return value * value, z * value * slope, slope * slope

        m, zpp, d = integrate_1d(act, q, integrand, even=act.parity == "odd")
        with np.errstate(divide="ignore", invalid="ignore"):
            dm = zpp / np.sqrt(q)
        at_zero = q == 0
        if np.any(at_zero):
            zero = np.zeros(1)
            limit = act.deriv(zero) ** 2 + act.fn(zero) * act.deriv2(zero)
            dm = np.where(at_zero, limit[0], dm)
        return m, dm, d

    def cross(self, q1: np.ndarray, q2: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        act = self.activation

        def integrand(u1: np.ndarray, u2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            v1, s1 = act.values_and_derivs(u1)
            v2, s2 = act.values_and_derivs(u2)
            return v1 * v2, s1 * s2

        k, kd = integrate_2d(act, q1, q2, c, integrand)
        return k, kd


class ReluFamilyKernel(DualKernel):
    """phi(x) = A x + B |x|: ReLU (slope 0), leaky ReLU, linear (slope 1). Arc-cosine kernel."""

    closed_form = True

    def __init__(self, activation: Activation, slope: float):
        super().__init__(activation)
        self.a2 = ((1.0 + slope) / 2.0) ** 2
        self.b2 = ((1.0 - slope) / 2.0) ** 2

    @property
    def homogeneous_gain(self) -> float:
        return self.a2 + self.b2

    def moments(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = np.asarray(q, dtype=np.float64)
        gain = np.full(q.shape, self.a2 + self.b2)
        return gain * q, gain, gain.copy()

    def cross(self, q1: np.ndarray, q2: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = np.clip(np.asarray(c, dtype=np.float64), -1.0, 1.0)
        arcsin = np.arcsin(c)
        abs_kernel = (2.0 / math.pi) * (np.sqrt(1.0 - c * c) + c * arcsin)
        k = np.sqrt(np.asarray(q1) * np.asarray(q2)) * (self.a2 * c + self.b2 * abs_kernel)
        kd = self.a2 + self.b2 * (2.0 / math.pi) * arcsin
        return k, np.broadcast_to(kd, np.shape(k)).copy()


class ErfKernel(DualKernel):
    """phi = erf: arcsine kernel (Williams 1997)."""

    closed_form = True

    def moments(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = np.asarray(q, dtype=np.float64)
        root = np.sqrt(1.0 + 4.0 * q)
        m = (2.0 / math.pi) * np.arcsin(2.0 * q / (1.0 + 2.0 * q))
        dm = (4.0 / math.pi) / ((1.0 + 2.0 * q) * root)
        return m, dm, (4.0 / math.pi) / root

    def cross(self, q1: np.ndarray, q2: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q1, q2, c = (np.asarray(a, dtype=np.float64) for a in (q1, q2, c))
        s12 = c * np.sqrt(q1 * q2)
        norm = (1.0 + 2.0 * q1) * (1.0 + 2.0 * q2)
        k = (2.0 / math.pi) * np.arcsin(np.clip(2.0 * s12 / np.sqrt(norm), -1.0, 1.0))
        kd = (4.0 / math.pi) / np.sqrt(norm - 4.0 * s12 * s12)
        return k, kd


class HardTanhKernel(DualKernel):
    """phi = clip(x, -1, 1): closed-form 1-D moments; 2-D moments by split quadrature."""

    def moments(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = np.asarray(q, dtype=np.float64)
        with np.errstate(divide="ignore"):
            a = 1.0 / np.sqrt(q)
        inside = erf(a / math.sqrt(2.0))
        finite_a = np.where(np.isinf(a), 0.0, a)
        tail_pdf = finite_a * _INV_SQRT_2PI * np.exp(-0.5 * finite_a**2)
        dm = inside - 2.0 * tail_pdf
        m = q * dm + 2.0 * ndtr(-a)
        return m, dm, inside


def dual_kernel(activation: str | Activation | object, **params: float) -> DualKernel:
    """The :class:`DualKernel` of an activation (name, callable or Activation): closed forms where the
    registry knows one, quadrature otherwise."""
    act = get_activation(activation, **params)  # type: ignore[arg-type]
    if act.derivative_method == "exact":
        if act.name in ("relu", "leaky_relu", "linear"):
            return ReluFamilyKernel(act, act.params.get("slope", 1.0 if act.name == "linear" else 0.0))
        if act.name == "erf":
            return ErfKernel(act)
        if act.name == "hard_tanh":
            return HardTanhKernel(act)
    return DualKernel(act)
