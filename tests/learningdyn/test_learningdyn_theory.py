"""GDTheory (Liao & Couillet 2018): the two forms of the theorems against each other and against
independent quadrature, the limits stated in the paper, optimal stopping and input checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import ndtr

from dltheory.learningdyn import GDTheory

SETTINGS = [
    dict(mu_norm2=4.0, c=0.5, sigma2=0.1, alpha=0.01),
    dict(mu_norm2=4.0, c=1.0, sigma2=0.1, alpha=0.01),
    dict(mu_norm2=1.5, c=2.0, sigma2=0.3, alpha=0.02),
    dict(mu_norm2=0.4, c=0.5, sigma2=1.0, alpha=0.05),  # no spike: M^2 < c
    dict(mu_norm2=2.0, c=0.9, sigma2=0.0, alpha=0.2),
]


def _reference_terms(theory: GDTheory, t: float) -> tuple[float, float, float, float]:
    """E, V, E*, V* by adaptive quadrature of the densities (independent of the quadrature rules)."""
    big_m, c = theory.mu_norm2, theory.c
    lo, hi = theory.marchenko_pastur.support
    a, r = theory.alpha, theory.ridge

    def f(x):
        return (1 - a * (x + r)) ** t if theory.discrete else np.exp(-a * t * (x + r))

    def g(x):
        return (1 - f(x)) / (x + r)

    sd, nd = theory.signal.density, theory.marchenko_pastur.density
    spike, mass, atom = theory.signal.pole, theory.signal.spike_mass, theory.marchenko_pastur.atom_at_zero
    kw = dict(limit=1000, epsabs=1e-13, epsrel=1e-12)

    def over_signal(h):
        return quad(lambda x: h(x) * sd(x), lo, hi, **kw)[0] + mass * h(spike)

    def over_mp(h):
        return quad(lambda x: h(x) * nd(x), lo, hi, **kw)[0] + atom * h(0.0)

    k = (big_m + c) / big_m
    e = over_signal(g)
    v = k * over_signal(lambda x: g(x) ** 2) + theory.sigma2 * over_mp(lambda x: f(x) ** 2)
    v_star = k * over_signal(lambda x: x * g(x) ** 2) + theory.sigma2 * over_mp(lambda x: x * f(x) ** 2)
    return e, v, k * e, v_star


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("ridge", [0.0, 0.25])
def test_contour_and_real_integral_forms_agree(setting, discrete, ridge):
    theory = GDTheory(**setting, discrete=discrete, ridge=ridge)
    t = np.unique(np.round(np.geomspace(1, 20000, 60)))
    real = theory.terms(t)
    contour = theory.terms(t, form="contour")
    for name in ("E", "V", "E_star", "V_star"):
        np.testing.assert_allclose(getattr(contour, name), getattr(real, name), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(contour.test_error, real.test_error, atol=1e-7)


@pytest.mark.parametrize("setting", SETTINGS[:3])
@pytest.mark.parametrize(("discrete", "t"), [(False, 37.5), (True, 40), (False, 3000.0)])
def test_real_integral_form_matches_adaptive_quadrature(setting, discrete, t):
    theory = GDTheory(**setting, discrete=discrete, ridge=0.1)
    terms = theory.terms(t)
    reference = _reference_terms(theory, t)
    np.testing.assert_allclose(
        [terms.E, terms.V, terms.E_star, terms.V_star], reference, rtol=1e-8, atol=1e-10
    )


@pytest.mark.parametrize("setting", SETTINGS)
def test_start_is_a_coin_flip(setting):
    theory = GDTheory(**setting)
    assert float(theory.test_error(0.0)) == 0.5
    assert float(theory.train_error(0.0)) == 0.5


@pytest.mark.parametrize("c", [0.3, 0.8, 1.6, 3.0])
def test_least_squares_limit_closed_form_and_approach(c):
    # the paper: least squares shrinks the alignment M/sqrt(M + c) by sqrt(1 - min(c, 1/c)); with c > 1 the
    # initialisation keeps its null-space part sigma2 (1 - 1/c), so compare with sigma2 = 0 there
    big_m, sigma2 = 3.0, (0.2 if c < 1 else 0.0)
    theory = GDTheory(big_m, c, sigma2, 0.01)
    expected = ndtr(-np.sqrt(1 - min(c, 1 / c)) * big_m / np.sqrt(big_m + c))
    limit = theory.least_squares_limit()
    assert limit.test_error == pytest.approx(expected, abs=1e-12)
    slow = 1 / (theory.alpha * theory.marchenko_pastur.support[0])
    assert float(theory.test_error(60 * slow)) == pytest.approx(limit.test_error, abs=1e-8)
    assert float(theory.train_error(60 * slow)) == pytest.approx(limit.train_error, abs=1e-8)
    if c > 1:
        assert limit.train_error == 0.0  # p > n: least squares interpolates the training set


def test_least_squares_at_c_equal_one_is_chance():
    theory = GDTheory(4.0, 1.0, 0.1, 0.01)
    assert theory.least_squares_limit().test_error == 0.5
    assert theory.least_squares_limit().train_error == 0.0
    errors = theory.test_error(np.array([1e4, 1e6, 1e8]))
    assert np.all(np.diff(errors) > 0) and errors[-1] > 0.45


@pytest.mark.parametrize(("big_m", "c"), [(4.0, 0.5), (2.0, 2.0), (1.0, 1.0)])
def test_zero_initialisation_reaches_best_possible_error_as_t_vanishes(big_m, c):
    theory = GDTheory(big_m, c, 0.0, 0.01)
    best = theory.best_possible_error()
    assert best == pytest.approx(ndtr(-big_m / np.sqrt(big_m + c)))
    stop = theory.optimal_stopping()
    assert stop.time == 0.0 and stop.error == pytest.approx(best, abs=1e-9)
    # the curve never goes below it, and small sigma2 approaches it continuously
    assert np.all(theory.test_error(np.geomspace(1e-3, 1e5, 300)) >= best - 1e-12)
    gaps = [GDTheory(big_m, c, s2, 0.01).optimal_stopping().error - best for s2 in (1e-2, 1e-4, 1e-6)]
    assert gaps[0] > gaps[1] > gaps[2] > 0 and gaps[2] < 1e-4


def test_larger_initialisation_raises_best_error_and_stopping_time():
    stops = [GDTheory(4.0, 0.5, s2, 0.01).optimal_stopping() for s2 in np.geomspace(1e-2, 1.0, 6)]
    assert np.all(np.diff([s.error for s in stops]) > 0)
    assert np.all(np.diff([s.time for s in stops]) > 0)


def test_over_training_vanishes_as_c_goes_to_zero():
    gaps = []
    for c in (0.5, 0.1, 1e-2, 1e-3):
        theory = GDTheory(4.0, c, 0.1, 0.01)
        gaps.append(theory.least_squares_limit().test_error - theory.optimal_stopping().error)
    assert np.all(np.diff(gaps) < 0) and gaps[-1] < 1e-6 and gaps[0] > 0.04


@pytest.mark.parametrize("discrete", [False, True])
def test_optimal_stopping_is_the_minimum_of_a_dense_scan(discrete):
    theory = GDTheory(4.0, 0.5, 0.1, 0.01, discrete)
    stop = theory.optimal_stopping()
    t = np.arange(0, 2000, 1.0) if discrete else np.linspace(0, 2000, 200001)
    errors = theory.test_error(t)
    assert stop.error <= errors.min() + 1e-12
    assert stop.time == pytest.approx(t[np.argmin(errors)], abs=1.0 if discrete else 0.02)


def test_discrete_and_continuous_time_meet_for_small_steps():
    alpha_t = np.array([0.5, 2.0, 8.0])
    flow = GDTheory(4.0, 0.5, 0.1, 0.01).test_error(alpha_t / 0.01)
    steps = GDTheory(4.0, 0.5, 0.1, 1e-3, discrete=True).test_error(alpha_t / 1e-3)
    np.testing.assert_allclose(steps, flow, atol=2e-3)


def test_constructors_agree():
    mu = np.zeros(200)
    mu[:2] = [1.0, np.sqrt(3.0)]
    a = GDTheory.from_mu(mu, 400, 0.1, 0.01)
    b = GDTheory(4.0, (200, 400), 0.1, 0.01)
    c = GDTheory(4.0, 0.5, 0.1, 0.01)
    t = np.array([[1.0, 10.0], [100.0, np.inf]])
    assert a.test_error(t).shape == (2, 2)
    np.testing.assert_allclose(a.test_error(t), c.test_error(t), rtol=1e-14)
    np.testing.assert_allclose(b.train_error(t), c.train_error(t), rtol=1e-14)


def test_stability_limit():
    theory = GDTheory(4.0, 0.5, 0.1, 0.01)
    limit = 2 / theory.lambda_max
    assert theory.lambda_max == pytest.approx(0.5 + 1 + 4 + 0.5 / 4)  # the spike
    with pytest.raises(ValueError, match="stability limit"):
        GDTheory(4.0, 0.5, 0.1, limit, discrete=True)
    with pytest.raises(ValueError, match="stability limit"):
        GDTheory(4.0, 0.5, 0.1, 0.99 * limit, discrete=True, ridge=0.2)
    with pytest.warns(RuntimeWarning, match="gradient-flow"):
        GDTheory(4.0, 0.5, 0.1, 1.01 * limit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GDTheory(4.0, 0.5, 0.1, 0.99 * limit, discrete=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(mu_norm2=4.0, c=0.0, sigma2=0.1, alpha=0.01), "c must be > 0"),
        (dict(mu_norm2=4.0, c=(0, 10), sigma2=0.1, alpha=0.01), "p must be an integer >= 1"),
        (dict(mu_norm2=4.0, c=(10, -1), sigma2=0.1, alpha=0.01), "n must be an integer >= 1"),
        (dict(mu_norm2=4.0, c=0.5, sigma2=-0.1, alpha=0.01), "sigma2 must be >= 0"),
        (dict(mu_norm2=0.0, c=0.5, sigma2=0.1, alpha=0.01), "mu_norm2 must be > 0"),
        (dict(mu_norm2=4.0, c=0.5, sigma2=0.1, alpha=-1.0), "alpha must be > 0"),
        (dict(mu_norm2=4.0, c=0.5, sigma2=0.1, alpha=0.01, ridge=-1.0), "ridge must be >= 0"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GDTheory(**kwargs)


def test_bad_times():
    theory = GDTheory(4.0, 0.5, 0.1, 0.01, discrete=True)
    with pytest.raises(ValueError, match="integers"):
        theory.test_error(1.5)
    with pytest.raises(ValueError, match=">= 0"):
        theory.test_error(-1)
    with pytest.raises(ValueError, match="form"):
        theory.terms(1, form="residues")
