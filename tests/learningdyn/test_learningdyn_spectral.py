"""Marchenko-Pastur law, signal measure and their quadrature rules (Liao & Couillet 2018, Theorem 1)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from dltheory.learningdyn import MarchenkoPastur, SignalMeasure, largest_eigenvalue
from dltheory.learningdyn.spectral import pole_corrected_rule, semicircle_integral_over_pole

CASES = [(0.3, 0.2), (0.3, 4.0), (1.0, 0.5), (1.0, 4.0), (2.5, 1.0), (2.5, 4.0)]


@pytest.mark.parametrize("c", [0.2, 0.5, 1.0, 2.0, 5.0])
def test_marchenko_pastur_moments(c):
    # moments of MP: E[x] = 1, E[x^2] = 1 + c, E[x^3] = 1 + 3c + c^2 (Bai & Silverstein, Lemma 3.1)
    rule = MarchenkoPastur(c).rule(64)
    x = rule.nodes
    assert rule.integrate(np.ones_like(x)) == pytest.approx(1.0, abs=1e-13)
    assert rule.integrate(x) == pytest.approx(1.0, abs=1e-13)
    assert rule.integrate(x**2) == pytest.approx(1 + c, abs=1e-12)
    assert rule.integrate(x**3) == pytest.approx(1 + 3 * c + c**2, abs=1e-12)


@pytest.mark.parametrize(("c", "m"), CASES)
def test_signal_measure_mass_density_and_rule_against_quad(c, m):
    signal = SignalMeasure(m, c)
    lo, hi = signal.marchenko_pastur.support
    # density is (1/pi) Im of the transform M m(z)/(1 + (M + c) m(z)) just above the real axis
    x = np.linspace(lo, hi, 9)[1:-1]
    np.testing.assert_allclose(signal.density(x), signal.transform(x + 1e-13j).imag / np.pi, atol=1e-9)
    mu_dens = signal.marchenko_pastur.density(x)
    np.testing.assert_allclose(mu_dens, signal.marchenko_pastur.stieltjes(x + 1e-13j).imag / np.pi, atol=1e-9)
    rule = signal.rule(96)
    assert rule.integrate(np.ones_like(rule.nodes)) == pytest.approx(m, abs=1e-12)
    h = lambda t: np.exp(-1.7 * t) * np.cos(t)  # noqa: E731
    reference = quad(lambda t: h(t) * signal.density(t), lo, hi, limit=400, epsabs=1e-14)[0]
    reference += signal.spike_mass * h(signal.pole)
    assert rule.integrate(h(rule.nodes)) == pytest.approx(reference, abs=1e-11)
    assert signal.has_spike == (m**2 > c)


@pytest.mark.parametrize(
    ("left", "right", "pole"), [(0.5, 2.0, 3.0), (0.5, 2.0, 2.0), (0.5, 2.0, 0.0), (0.0, 4.0, 0.0)]
)
def test_semicircle_pole_integral_closed_form(left, right, pole):
    integrand = lambda x: np.sqrt((x - left) * (right - x)) / (pole - x)  # noqa: E731
    reference = quad(integrand, left, right, limit=400, epsabs=1e-13)[0]
    assert semicircle_integral_over_pole(left, right, pole) == pytest.approx(reference, abs=1e-8)
    with pytest.raises(ValueError, match="pole"):
        semicircle_integral_over_pole(left, right, 0.5 * (left + right))
    rule = pole_corrected_rule(left, right, pole, 1.0, 80)
    assert rule.integrate(np.exp(-rule.nodes)) == pytest.approx(
        quad(lambda x: np.exp(-x) * integrand(x), left, right, limit=400, epsabs=1e-13)[0], abs=1e-8
    )


@pytest.mark.parametrize(("c", "m"), [(0.5, 4.0), (0.5, 0.4), (2.0, 4.0)])
def test_largest_eigenvalue_matches_sampled_matrices(c, m):
    # spike c + 1 + M + c/M when M^2 > c, bulk edge (1 + sqrt c)^2 otherwise; finite p: fluctuations of
    # order p^(-1/2) (spike) and p^(-2/3) (edge), so 3% at p = 400 is a wide margin
    rng = np.random.default_rng(1)
    p = 400
    n = int(p / c)
    mu = np.zeros(p)
    mu[0] = np.sqrt(m)
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    x = np.outer(mu, y) + rng.standard_normal((p, n))
    top = np.linalg.eigvalsh(x @ x.T / n)[-1]
    assert top == pytest.approx(largest_eigenvalue(m, c), rel=0.03)


def test_bad_input():
    with pytest.raises(ValueError, match="c must be > 0"):
        MarchenkoPastur(0.0)
    with pytest.raises(ValueError, match="mu_norm2"):
        SignalMeasure(-1.0, 0.5)
