"""Numerical contour integrals ``-(1/2 pi i) oint F(z) dz`` around a real spectrum (Liao & Couillet 2018
state their Theorems 1-2 in this form: ``-(1/2 pi i) oint h(z) mu^T Q(z) X y/n dz`` with the resolvent
``Q(z) = (X X^T/n - z I)^{-1}``).

The contour is a Joukowski ellipse ``z(theta) = centre + (half/2) (rho e^{i theta} + e^{-i theta}/rho)``
around the segment ``[lo, hi]`` that holds every singularity (the support, the spike, the atom at 0). An
integrand analytic outside the segment is, in theta, analytic in the strip ``|Im theta| < log rho``, so the
N-point trapezoidal rule converges like ``rho^-N`` (Trefethen & Weideman 2014). The gradient-descent
filters ``exp(-alpha t z)`` and ``(1 - alpha z)^t`` grow off the real axis; the ellipse is shrunk until
their growth on it stays below a bound, and N is chosen from rho and that growth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dltheory.learningdyn.filters import gd_filters

_TARGET_ERROR = 1e-14
_MAX_GROWTH = 20.0
_MAX_NODES = 20000


@dataclass(frozen=True)
class Contour:
    """Nodes ``z`` and weights ``w`` with ``-(1/2 pi i) oint F(z) dz ~= sum_j w_j F(z_j)``."""

    z: np.ndarray
    w: np.ndarray
    rho: float
    lo: float
    hi: float

    def integrate(self, values: np.ndarray) -> np.ndarray:
        """Real part of the rule applied over the last axis (every integral here is real)."""
        return np.real(np.asarray(values) @ self.w)


def ellipse(lo: float, hi: float, rho: float, n_nodes: int) -> Contour:
    """Trapezoidal rule on the Joukowski ellipse of parameter ``rho > 1`` around ``[lo, hi]``."""
    if not rho > 1:
        raise ValueError(f"rho must be > 1, got {rho}")
    centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    theta = 2 * np.pi * np.arange(n_nodes) / n_nodes
    e = np.exp(1j * theta)
    z = centre + 0.5 * half * (rho * e + 1 / (rho * e))
    dz = 0.5j * half * (rho * e - 1 / (rho * e))
    return Contour(z, -dz / (1j * n_nodes), float(rho), float(lo), float(hi))


def rho_for_margin(lo: float, hi: float, margin: float) -> float:
    """Ellipse parameter whose leftmost point is ``lo - margin``."""
    u = 1.0 + margin / (0.5 * (hi - lo))
    return float(u + np.sqrt(u * u - 1.0))


def filter_contour(
    lo: float,
    hi: float,
    *,
    alpha: float,
    t_max: float,
    ridge: float = 0.0,
    discrete: bool = False,
    powers: int = 2,
) -> Contour:
    """Contour around ``[lo, hi]`` for integrands holding up to ``powers`` gradient-descent filters at
    times ``<= t_max``: the widest ellipse (margin at most half the segment's half-width) on which the
    filters grow by at most ``_MAX_GROWTH``, with a first guess of the number of nodes from rho (to be
    refined by :func:`converged`: the filters oscillate along the contour at large alpha t)."""
    half = 0.5 * (hi - lo)
    t_probe = np.array([0.0, t_max]) if np.isfinite(t_max) else np.array([0.0])
    margin = 0.5 * half
    growth = 1.0
    for _ in range(80):
        probe = ellipse(lo, hi, rho_for_margin(lo, hi, margin), 256)
        with np.errstate(over="ignore", invalid="ignore"):
            f, _ = gd_filters(probe.z[None, :], t_probe[:, None], alpha, ridge=ridge, discrete=discrete)
            growth = float(np.power(max(float(np.max(np.abs(f))), 1.0), powers))
        if growth <= _MAX_GROWTH:
            break
        margin *= 0.7
    rho = rho_for_margin(lo, hi, margin)
    n_nodes = int(np.ceil(np.log(growth / _TARGET_ERROR) / np.log(rho)))
    return ellipse(lo, hi, rho, int(np.clip(n_nodes + 16, 64, _MAX_NODES)))


def converged(contour: Contour, evaluate: Callable[[Contour], np.ndarray], *, rtol: float = 1e-10) -> Contour:
    """Double the nodes of ``contour`` (same ellipse) until ``evaluate(contour)`` (an array of integrals)
    changes by less than ``rtol`` times its largest entry (at most ``_MAX_NODES`` nodes)."""
    previous = evaluate(contour)
    while contour.z.size < _MAX_NODES:
        finer = ellipse(contour.lo, contour.hi, contour.rho, 2 * contour.z.size)
        current = evaluate(finer)
        scale = max(float(np.max(np.abs(current))), 1e-300)
        contour = finer
        if np.max(np.abs(current - previous)) <= rtol * scale:
            break
        previous = current
    return contour
