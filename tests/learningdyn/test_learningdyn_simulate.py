"""Theory against Monte Carlo gradient descent (Liao & Couillet 2018, Figures 1-3 in miniature).

Tolerance: at every checked step the simulated mean is within 3 standard errors of the theory (the runs
are independent, so the standard error of the mean is honest; the checked steps are correlated within a
run, hence 9 steps x 3 SE is not a multiple-testing hazard worth a Bonferroni widening). Finite-size
bias at p = 128..256 was measured at under 1 SE with 400 runs. Training errors near 0 have a binomial
floor: the tolerance is ``3 max(SE, 1/(n sqrt(runs)))``. Seeds are fixed, so the tests are
deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

from dltheory.learningdyn import GDTheory, simulate, simulate_on_data

STEPS = np.array([1, 5, 10, 25, 50, 100, 250, 500, 1000])


def _assert_within(sim, theory, n):
    test_dev = np.abs(sim.test_error_mean - theory.test_error(sim.times))
    assert np.all(test_dev <= 3 * sim.test_error_se), (test_dev / sim.test_error_se).round(2)
    floor = 1.0 / (n * np.sqrt(sim.runs))
    train_dev = np.abs(sim.train_error_mean - theory.train_error(sim.times))
    assert np.all(train_dev <= 3 * np.maximum(sim.train_error_se, floor)), (
        train_dev / sim.train_error_se
    ).round(2)


@pytest.mark.parametrize(("p", "n", "runs"), [(128, 256, 120), (128, 128, 120), (256, 128, 80)])
def test_theory_within_three_standard_errors_of_gradient_descent(p, n, runs):
    # c = 1/2, 1, 2 (paper: mu = [2, 0, ...], sigma2 = 0.1, alpha = 0.01)
    mu = np.zeros(p)
    mu[0] = 2.0
    sim = simulate(mu, n, 0.1, 0.01, STEPS, runs=runs, seed=11)
    _assert_within(sim, GDTheory.from_mu(mu, n, 0.1, 0.01, discrete=True), n)


def test_ridge_and_large_step_within_three_standard_errors():
    p, n = 128, 256
    mu = np.full(p, np.sqrt(2.0 / p))
    theory = GDTheory.from_mu(mu, n, 0.5, 0.2, discrete=True, ridge=0.3)  # alpha lambda_max ~ 0.85
    sim = simulate(mu, n, 0.5, 0.2, np.array([1, 2, 5, 10, 20, 50, 200]), runs=120, ridge=0.3, seed=5)
    _assert_within(sim, theory, n)


def test_simulation_is_literal_gradient_descent():
    p, n, alpha, sigma2 = 20, 30, 0.05, 0.4
    mu = np.zeros(p)
    mu[0] = 1.5
    steps = np.array([0, 1, 7, 40])
    sim = simulate(mu, n, sigma2, alpha, steps, runs=1, seed=3)
    # redo the same draw by hand: same generator calls in the same order
    rng = np.random.default_rng(3)
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    x = np.outer(mu, y) + rng.standard_normal((p, n))
    w = rng.standard_normal(p) * np.sqrt(sigma2 / p)
    from scipy.special import ndtr

    for step in range(41):
        if step in steps:
            k = int(np.where(steps == step)[0][0])
            assert sim.test_errors[0, k] == pytest.approx(ndtr(-(w @ mu) / np.linalg.norm(w)), rel=1e-10)
            assert sim.train_errors[0, k] == np.mean(y * (w @ x) < 0)
        w = w - alpha * (x @ (x.T @ w) - x @ y) / n


def test_simulation_on_data_uses_held_out_points():
    rng = np.random.default_rng(0)
    p, total = 30, 400
    y = np.where(rng.random(total) < 0.5, -1.0, 1.0)
    mu = np.zeros(p)
    mu[0] = 1.2
    x = y[:, None] * mu + rng.standard_normal((total, p))
    sim = simulate_on_data(x, y, 60, 0.0, 0.1, np.array([0, 5, 50]), runs=6, seed=2)
    assert sim.test_errors.shape == (6, 3)
    np.testing.assert_allclose(sim.test_errors[:, 0], 0.5)  # w = 0: every margin is 0 (half an error)
    # with 340 held-out points the measured test error is a multiple of 1/340
    counts = sim.test_errors[:, 1:] * 340
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
    assert np.all(sim.test_error_mean[1:] < 0.35)
    with pytest.raises(ValueError, match="smaller than the number of rows"):
        simulate_on_data(x, y, total, 0.0, 0.1, [1])
    with pytest.raises(ValueError, match="labels -1 and"):
        simulate_on_data(x, y * 2, 60, 0.0, 0.1, [1])


def test_unstable_step_is_refused():
    mu = np.zeros(64)
    mu[0] = 2.0
    with pytest.raises(ValueError, match="stability limit"):
        simulate(mu, 128, 0.1, 0.4, [1, 2], runs=1)  # lambda_max ~ 5.6: alpha = 0.4 diverges


def test_bad_input():
    with pytest.raises(ValueError, match="sigma2"):
        simulate(np.ones(4), 8, -1.0, 0.1, [1])
    with pytest.raises(ValueError, match="runs"):
        simulate(np.ones(4), 8, 0.1, 0.1, [1], runs=0)
    with pytest.raises(ValueError, match="cov must have shape"):
        simulate(np.ones(4), 8, 0.1, 0.1, [1], cov=np.eye(3))
