"""General covariance and ridge (our extension of Liao & Couillet 2018): reduction to the paper's case,
spectrum edges against sampled matrices and learning curves against simulation (3 standard errors)."""

from __future__ import annotations

import numpy as np
import pytest

from dltheory.learningdyn import GDTheory, GeneralCovGDTheory, simulate

STEPS = np.array([1, 5, 10, 25, 50, 100, 250, 500, 1000])


def _toeplitz(p, rho):
    idx = np.arange(p)
    return rho ** np.abs(idx[:, None] - idx[None, :])


@pytest.mark.parametrize(("p", "n"), [(100, 200), (150, 150), (200, 100)])
@pytest.mark.parametrize("ridge", [0.0, 0.3])
@pytest.mark.parametrize("discrete", [False, True])
def test_identity_covariance_reduces_to_the_paper(p, n, ridge, discrete):
    mu = np.zeros(p)
    mu[:3] = [1.0, 1.0, np.sqrt(2.0)]
    general = GeneralCovGDTheory(mu, np.eye(p), n, 0.2, 0.02, discrete, ridge=ridge)
    paper = GDTheory.from_mu(mu, n, 0.2, 0.02, discrete, ridge=ridge)
    t = np.concatenate([np.arange(0, 1001, 50.0), [3000.0]])
    for name in ("E", "V", "E_star", "V_star"):
        np.testing.assert_allclose(getattr(general.terms(t), name), getattr(paper.terms(t), name), rtol=1e-8)
    assert general.lambda_max == pytest.approx(paper.lambda_max, rel=1e-9)
    if not (ridge == 0 and p == n):
        np.testing.assert_allclose(general.terms(np.inf).V, paper.terms(np.inf).V, rtol=1e-6)
        assert general.least_squares_limit().test_error == pytest.approx(
            paper.least_squares_limit().test_error, abs=1e-7
        )


def test_spectrum_edge_and_spike_against_sampled_matrices():
    p, n = 300, 600
    cov = np.diag(np.linspace(0.5, 2.0, p))
    mu = np.zeros(p)
    mu[-1] = 2.0
    theory = GeneralCovGDTheory(mu, cov, n, 0.1, 0.01)
    rng = np.random.default_rng(4)
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    tops = []
    for _ in range(4):
        x = np.outer(mu, y) + np.sqrt(np.diag(cov))[:, None] * rng.standard_normal((p, n))
        tops.append(np.linalg.eigvalsh(x @ x.T / n)[-2:])
    second, top = np.mean(tops, axis=0)
    # the spike fluctuates by ~4% per draw at p = 300 (measured), the edge sits ~1% low (p^(-2/3))
    assert theory.spike_location is not None
    assert top == pytest.approx(theory.spike_location, rel=0.05)
    assert second == pytest.approx(theory.bulk_edge, rel=0.03)


@pytest.mark.parametrize(
    ("p", "n", "ridge"), [(128, 256, 0.0), (256, 256, 0.0), (192, 96, 0.0), (128, 256, 0.5)]
)
def test_non_identity_covariance_within_three_standard_errors(p, n, ridge):
    # Toeplitz C (rho = 0.5, eigenvalues 0.33..3) with mu spread over four coordinates. At c = 1 the
    # per-run errors are heavy-tailed (near-zero eigenvalues) and p = 128 gave 3.4-3.7 SE excursions in
    # both directions depending on the seed, so c = 1 is checked at p = 256 (within 1 SE there).
    cov = _toeplitz(p, 0.5)
    mu = np.zeros(p)
    mu[:4] = 1.0
    theory = GeneralCovGDTheory(mu, cov, n, 0.2, 0.02, discrete=True, ridge=ridge)
    runs = 100
    sim = simulate(mu, n, 0.2, 0.02, STEPS, runs=runs, cov=cov, ridge=ridge, seed=21)
    deviation = np.abs(sim.test_error_mean - theory.test_error(STEPS))
    assert np.all(deviation <= 3 * sim.test_error_se), (deviation / sim.test_error_se).round(2)
    floor = 1.0 / (n * np.sqrt(runs))
    train_dev = np.abs(sim.train_error_mean - theory.train_error(STEPS))
    assert np.all(train_dev <= 3 * np.maximum(sim.train_error_se, floor))


def test_mean_difference_error_is_the_small_time_limit_but_not_optimal():
    p, n = 60, 240
    cov = _toeplitz(p, 0.3)
    mu = np.zeros(p)
    mu[0] = 1.5
    theory = GeneralCovGDTheory(mu, cov, n, 0.0, 0.01)
    assert float(theory.test_error(1e-6)) == pytest.approx(theory.mean_difference_error(), abs=1e-6)
    # unlike C = I, w ~ X y/n is not the best direction: gradient descent partly whitens and beats it
    stop = theory.optimal_stopping()
    assert stop.time > 0 and stop.error < theory.mean_difference_error() - 1e-3


def test_bad_input():
    mu = np.ones(4)
    with pytest.raises(ValueError, match="symmetric"):
        GeneralCovGDTheory(mu, np.triu(np.ones((4, 4))), 8, 0.1, 0.01)
    with pytest.raises(ValueError, match="positive semi-definite"):
        GeneralCovGDTheory(mu, -np.eye(4), 8, 0.1, 0.01)
    with pytest.raises(ValueError, match="cov must be a"):
        GeneralCovGDTheory(mu, np.eye(3), 8, 0.1, 0.01)
    with pytest.raises(ValueError, match="sigma2"):
        GeneralCovGDTheory(mu, np.eye(4), 8, -0.1, 0.01)
    with pytest.raises(ValueError, match="n must be"):
        GeneralCovGDTheory(mu, np.eye(4), 0, 0.1, 0.01)
    with pytest.raises(ValueError, match="stability limit"):
        GeneralCovGDTheory(mu, np.eye(4), 8, 0.1, 1.0, discrete=True)
