"""Spectral measures of the sample covariance of a two-class Gaussian mixture (Liao & Couillet 2018).

With ``X = [x_1 .. x_n]``, ``x_i = y_i mu + z_i``, ``z_i ~ N(0, I_p)``, ``c = p/n``, ``M = ||mu||^2``, the
eigenvalues of ``A = X X^T / n`` follow, as ``p, n -> inf``:

- the Marchenko-Pastur law (paper, Theorem 1 and eq. 7)
  ``nu(dx) = sqrt((x - l-)^+ (l+ - x)^+) / (2 pi c x) dx + (1 - 1/c)^+ delta_0``, ``l-+ = (1 -+ sqrt c)^2``,
  with Stieltjes transform ``m(z) = int nu(dx)/(x - z) = (1 - c - z + sqrt(z - l-) sqrt(z - l+)) / (2 c z)``;
- an isolated eigenvalue (spike) at ``lambda_s = c + 1 + M + c/M`` when ``M^2 > c``;
- the signal measure, the spectral measure of ``A`` seen from ``mu`` and ``X y / n``:
  ``mu^T h(A) X y / n -> int h dmu_s`` with
  ``mu_s(dx) = sqrt((x - l-)^+ (l+ - x)^+) / (2 pi (lambda_s - x)) dx + ((M^2 - c)^+ / M) delta_{lambda_s}``
  (total mass M) and transform ``int mu_s(dx)/(x - z) = M m(z) / (1 + (M + c) m(z))``.

Both measures are "semicircle-type" densities ``sqrt((x - l-)(l+ - x)) / (kappa (pole - x))`` plus atoms.
:func:`pole_corrected_rule` turns such a density into a quadrature rule (nodes, weights) that is exact up
to spectral accuracy for every entire integrand: Gauss-Chebyshev (second kind) on the smooth divided
difference ``(h(x) - h(pole)) / (pole - x)`` plus the closed form of ``int sqrt(...)/(pole - x) dx``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dltheory.core.validation import check_int, check_positive


@dataclass(frozen=True)
class QuadratureRule:
    """``int h d(measure) ~= sum_k weights[k] * h(nodes[k])`` for smooth h."""

    nodes: np.ndarray
    weights: np.ndarray

    def integrate(self, values: np.ndarray) -> np.ndarray:
        """Integrate ``values[..., k] = h(nodes[k])`` over the last axis."""
        return np.asarray(values) @ self.weights


def semicircle_integral_over_pole(left: float, right: float, pole: float) -> float:
    """Closed form of ``int_left^right sqrt((x - left)(right - x)) / (pole - x) dx`` for a pole outside
    ``(left, right)``: ``pi (pole - (left + right)/2 - sign * sqrt((pole - left)(pole - right)))`` with
    sign +1 to the right of the interval and -1 to the left (checked against quadrature in the tests)."""
    centre = 0.5 * (left + right)
    root = np.sqrt(max((pole - left) * (pole - right), 0.0))
    if pole >= right:
        return float(np.pi * (pole - centre - root))
    if pole <= left:
        return float(np.pi * (pole - centre + root))
    raise ValueError(f"pole must lie outside ({left}, {right}), got {pole}")


def pole_corrected_rule(left: float, right: float, pole: float, kappa: float, n_nodes: int) -> QuadratureRule:
    """Rule for ``int h(x) sqrt((x - left)(right - x)) / (kappa (pole - x)) dx`` (pole outside the interval).

    Writes ``h(x) = [h(x) - h(pole)] + h(pole)``: the bracket over ``(pole - x)`` is smooth and integrated
    by n-point Gauss-Chebyshev of the second kind; the constant part uses the closed form. The result is
    linear in h, hence a rule on the nodes plus one node at the pole.
    """
    n_nodes = check_int("n_nodes", n_nodes, minimum=2)
    half, centre = 0.5 * (right - left), 0.5 * (right + left)
    theta = np.arange(1, n_nodes + 1) * np.pi / (n_nodes + 1)
    nodes = centre + half * np.cos(theta)
    omega = half**2 * np.pi / (n_nodes + 1) * np.sin(theta) ** 2  # Gauss-Chebyshev U weights, scaled
    inv = 1.0 / (pole - nodes)
    w_nodes = omega * inv / kappa
    w_pole = (semicircle_integral_over_pole(left, right, pole) - np.sum(omega * inv)) / kappa
    return QuadratureRule(np.append(nodes, pole), np.append(w_nodes, w_pole))


def _merge(rule: QuadratureRule, atoms: list[tuple[float, float]]) -> QuadratureRule:
    nodes, weights = rule.nodes, rule.weights
    for location, mass in atoms:
        if mass > 0:
            nodes, weights = np.append(nodes, location), np.append(weights, mass)
    return QuadratureRule(nodes, weights)


def _sqrt_branch(z: np.ndarray, left: float, right: float) -> np.ndarray:
    """``sqrt(z - left) sqrt(z - right)`` with principal roots: cut on [left, right], ~ z at infinity."""
    return np.sqrt(z - left + 0j) * np.sqrt(z - right + 0j)


@dataclass(frozen=True)
class MarchenkoPastur:
    """Marchenko-Pastur law of ``Z Z^T / n`` (Z p x n standard Gaussian), ratio ``c = p/n`` (eq. 7 of
    Liao & Couillet 2018)."""

    c: float

    def __post_init__(self) -> None:
        check_positive("c", self.c)

    @property
    def support(self) -> tuple[float, float]:
        root = np.sqrt(self.c)
        return float((1 - root) ** 2), float((1 + root) ** 2)

    @property
    def atom_at_zero(self) -> float:
        return max(1.0 - 1.0 / self.c, 0.0)

    def density(self, x: np.ndarray) -> np.ndarray:
        """Absolutely continuous part ``sqrt((x - l-)^+ (l+ - x)^+) / (2 pi c x)``."""
        x = np.asarray(x, dtype=np.float64)
        lo, hi = self.support
        inside = (x > lo) & (x < hi) & (x > 0)
        root = np.sqrt(np.clip((x - lo) * (hi - x), 0.0, None))
        return np.where(inside, root / (2 * np.pi * self.c * np.where(inside, x, 1.0)), 0.0)

    def stieltjes(self, z: np.ndarray) -> np.ndarray:
        """``m(z) = (1 - c - z + sqrt(z - l-) sqrt(z - l+)) / (2 c z)`` off the support (z != 0)."""
        z = np.asarray(z, dtype=np.complex128)
        lo, hi = self.support
        return (1 - self.c - z + _sqrt_branch(z, lo, hi)) / (2 * self.c * z)

    def rule(self, n_nodes: int = 128) -> QuadratureRule:
        """Quadrature rule for ``int h dnu`` (pole of the density at 0, the atom at 0 when c > 1)."""
        lo, hi = self.support
        base = pole_corrected_rule(lo, hi, 0.0, -2 * np.pi * self.c, n_nodes)
        return _merge(base, [(0.0, self.atom_at_zero)])


@dataclass(frozen=True)
class SignalMeasure:
    """Spectral measure of ``A = X X^T/n`` between ``mu`` and ``X y/n`` (Liao & Couillet 2018, Theorem 1;
    see the module docstring). Total mass ``M = ||mu||^2``."""

    mu_norm2: float
    c: float

    def __post_init__(self) -> None:
        check_positive("mu_norm2", self.mu_norm2)
        check_positive("c", self.c)

    @property
    def marchenko_pastur(self) -> MarchenkoPastur:
        return MarchenkoPastur(self.c)

    @property
    def pole(self) -> float:
        """``lambda_s = c + 1 + M + c/M`` (always >= l+, equal at M = sqrt(c))."""
        m = self.mu_norm2
        return float(self.c + 1 + m + self.c / m)

    @property
    def has_spike(self) -> bool:
        """An eigenvalue leaves the bulk iff ``M^2 > c`` (phase transition of the spiked model)."""
        return self.mu_norm2**2 > self.c

    @property
    def spike_mass(self) -> float:
        return max(self.mu_norm2**2 - self.c, 0.0) / self.mu_norm2

    @property
    def spike_location(self) -> float | None:
        return self.pole if self.has_spike else None

    def density(self, x: np.ndarray) -> np.ndarray:
        """``sqrt((x - l-)^+ (l+ - x)^+) / (2 pi (lambda_s - x))``."""
        x = np.asarray(x, dtype=np.float64)
        lo, hi = self.marchenko_pastur.support
        root = np.sqrt(np.clip((x - lo) * (hi - x), 0.0, None))
        return root / (2 * np.pi * (self.pole - x))

    def transform(self, z: np.ndarray) -> np.ndarray:
        """``int mu_s(dx) / (x - z) = M m(z) / (1 + (M + c) m(z))``."""
        m = self.marchenko_pastur.stieltjes(z)
        return self.mu_norm2 * m / (1 + (self.mu_norm2 + self.c) * m)

    def rule(self, n_nodes: int = 128) -> QuadratureRule:
        """Quadrature rule for ``int h dmu_s``. When there is no spike the pole node keeps a tiny weight
        (the quadrature correction of the near-singular density), still exact for entire h."""
        lo, hi = self.marchenko_pastur.support
        base = pole_corrected_rule(lo, hi, self.pole, 2 * np.pi, n_nodes)
        return _merge(base, [(self.pole, self.spike_mass)])


def largest_eigenvalue(mu_norm2: float, c: float) -> float:
    """Almost-sure limit of the largest eigenvalue of ``X X^T/n``: ``lambda_s`` with a spike, else ``l+``."""
    signal = SignalMeasure(mu_norm2, c)
    return signal.pole if signal.has_spike else signal.marchenko_pastur.support[1]
