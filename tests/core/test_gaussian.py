"""Gaussian quadrature against scipy.integrate.quad (an independent adaptive integrator)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from dltheory.core.activations import get_activation
from dltheory.core.gaussian import (
    gaussian_expectation,
    hermite_coefficients,
    hermite_rule,
    integrate_2d,
)

pytestmark = pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")


def pdf(z):
    return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def quad_expect(f, q, kinks=()):
    points = sorted(k / math.sqrt(q) for k in kinks if abs(k / math.sqrt(q)) < 12)
    return quad(
        lambda z: f(math.sqrt(q) * z) * pdf(z),
        -12,
        12,
        points=points or None,
        epsabs=1e-16,
        epsrel=1e-13,
        limit=400,
    )[0]


@pytest.mark.parametrize("name", ["tanh", "erf", "sigmoid", "gelu", "silu"])
@pytest.mark.parametrize("q", [0.01, 0.7, 3.0, 10.0])
def test_second_moment_matches_quad(name, q):
    act = get_activation(name)
    got = gaussian_expectation(act, lambda x: act.fn(x) ** 2, q)
    ref = quad_expect(lambda x: float(act.fn(np.array(x))) ** 2, q)
    assert abs(got - ref) <= 1e-11 * ref


@pytest.mark.parametrize("name", ["hard_tanh", "selu", "relu"])
@pytest.mark.parametrize("q", [0.05, 1.0, 20.0])
def test_kinked_activations_split_at_kinks(name, q):
    act = get_activation(name)
    got = gaussian_expectation(act, lambda x: act.fn(x) ** 2 + act.deriv(x), q)
    ref = quad_expect(lambda x: float(act.fn(np.array(x))) ** 2 + float(act.deriv(np.array(x))), q, act.kinks)
    assert abs(got - ref) <= 1e-11 * abs(ref)


def test_vectorised_over_q_and_q_zero():
    act = get_activation("tanh")
    q = np.array([[0.0, 0.5], [2.0, 5.0]])
    got = gaussian_expectation(act, lambda x: act.fn(x) ** 2, q)
    assert got.shape == (2, 2) and got[0, 0] == 0.0
    assert abs(got[1, 1] - quad_expect(lambda x: math.tanh(x) ** 2, 5.0)) < 1e-12


def test_hermite_rule_moments():
    z, w = hermite_rule(20)
    assert abs(w.sum() - 1) < 1e-14
    assert abs(w @ z**4 - 3) < 1e-12 and abs(w @ z**6 - 15) < 1e-11


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_hermite_coefficients_match_quad(name):
    act = get_activation(name)
    q = 1.3
    a = hermite_coefficients(act, q, 12)
    for k in (0, 1, 2, 5, 12):
        herm = np.polynomial.hermite_e.HermiteE.basis(k)
        ref = quad(
            lambda z, herm=herm: float(act.fn(np.array(math.sqrt(q) * z))) * herm(z) * pdf(z),
            -12,
            12,
            epsabs=1e-15,
            epsrel=1e-13,
            limit=400,
        )[0] / math.sqrt(math.factorial(k))
        assert abs(a[k] - ref) < 1e-12


def test_mehler_series_matches_two_dimensional_quadrature_and_nested_quad():
    act = get_activation("tanh")
    q1, q2, c = 0.8, 1.7, 0.6
    series = np.sum(
        hermite_coefficients(act, q1, 120) * hermite_coefficients(act, q2, 120) * c ** np.arange(121)
    )
    tensor = integrate_2d(act, q1, q2, c, lambda u1, u2: (np.tanh(u1) * np.tanh(u2),))[0]
    s = math.sqrt(1 - c * c)

    def inner(z1):
        return quad(
            lambda z2: math.tanh(math.sqrt(q2) * (c * z1 + s * z2)) * pdf(z2),
            -12,
            12,
            epsabs=1e-15,
            epsrel=1e-12,
        )[0]

    ref = quad(
        lambda z1: math.tanh(math.sqrt(q1) * z1) * inner(z1) * pdf(z1), -12, 12, epsabs=1e-15, epsrel=1e-12
    )[0]
    assert abs(series - ref) < 1e-11 * ref
    assert abs(tensor - ref) < 1e-11 * ref


def test_two_dimensional_kinked_quadrature_matches_closed_form():
    # E[relu(u1) relu(u2)] = sqrt(q1 q2) (sqrt(1-c^2) + (pi - arccos c) c) / (2 pi)  (Cho & Saul 2009)
    act = get_activation("relu")
    q1, q2 = 0.9, 2.5
    for c in (-0.7, 0.2, 0.95):
        got = integrate_2d(act, q1, q2, c, lambda u1, u2: (act.fn(u1) * act.fn(u2),))[0]
        ref = math.sqrt(q1 * q2) * (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / (2 * math.pi)
        assert abs(got - ref) < 1e-12


def test_bad_input():
    act = get_activation("tanh")
    with pytest.raises(ValueError, match="q must be >= 0"):
        gaussian_expectation(act, np.tanh, -1.0)
    with pytest.raises(ValueError, match="q must be finite"):
        gaussian_expectation(act, np.tanh, float("nan"))
    with pytest.raises(ValueError, match="order must be an integer >= 0"):
        hermite_coefficients(act, 1.0, -1)
