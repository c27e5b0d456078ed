"""Free-probability Jacobian spectra: closed forms (Marchenko-Pastur, Fuss-Catalan), consistency of the
density with the moment formula, and random-matrix Monte Carlo in numpy (independent of the library)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import comb, erf

from dltheory.signalprop import critical_sigma_w2, q_star
from dltheory.signalprop.meanfield import chi_1
from dltheory.signalprop.spectrum import (
    critical_point_for_q_star,
    derivative_law,
    derivative_moments,
    jacobian_spectral_density,
    jacobian_spectrum_atoms,
    jacobian_spectrum_moments,
)

PHI = {
    "tanh": (np.tanh, lambda h: 1.0 - np.tanh(h) ** 2),
    "relu": (lambda h: np.maximum(h, 0.0), lambda h: (h > 0).astype(float)),
    "hard_tanh": (lambda h: np.clip(h, -1.0, 1.0), lambda h: (np.abs(h) < 1).astype(float)),
}
# critical tanh at sigma_b2 = 0.05 (anchor in docs/xiao/theory.md); exact value from the library below
TANH_SW2 = 1.7610


def _simulate(activation, sw2, sb2, depth, width, weights, rng):
    """Squared singular values of J = D_L W_L ... D_1 W_1 of a random network whose pre-activations start
    at the fixed point q* (plain numpy: QR for Haar matrices, explicit products)."""
    phi, dphi = PHI[activation]
    q = 1.0 if activation == "relu" else float(q_star(activation, sw2, sb2))  # ReLU: any q is a fixed point
    h = rng.normal(size=width) * math.sqrt(q)
    jac = np.eye(width)
    for _ in range(depth):
        if weights == "orthogonal":
            g = rng.normal(size=(width, width))
            qmat, r = np.linalg.qr(g)
            w = math.sqrt(sw2) * qmat * np.sign(np.diag(r))
        else:
            w = rng.normal(size=(width, width)) * math.sqrt(sw2 / width)
        h = w @ phi(h) + rng.normal(size=width) * math.sqrt(sb2)
        jac = (dphi(h)[:, None] * w) @ jac
    return np.linalg.svd(jac, compute_uv=False) ** 2


def _density_moments(activation, sw2, sb2, depth, weights, lo, hi, points=2500):
    """Mass, mean and second moment of the density by the trapezoid rule on a log grid (for the
    singularity at 0) merged with a linear grid (for the edges of the support)."""
    x = np.union1d(np.geomspace(lo, hi, points), np.linspace(hi / points, hi, points))
    rho = jacobian_spectral_density(activation, sw2, sb2, depth, x, weights)
    return [integrate.trapezoid(rho * x**k, x) for k in range(3)]


# ------------------------------------------------------------------------------------ closed forms


def test_gaussian_linear_depth_one_is_marchenko_pastur():
    s = 1.5
    x = np.linspace(0.01, 4 * s - 0.01, 37)
    expected = np.sqrt(x * (4 * s - x)) / (2 * math.pi * s * x)
    got = jacobian_spectral_density("linear", s, 0.0, 1, x, "gaussian")
    np.testing.assert_allclose(got, expected, rtol=1e-8)
    assert np.all(jacobian_spectral_density("linear", s, 0.0, 1, [4 * s + 0.1, 10 * s], "gaussian") < 1e-6)


@pytest.mark.parametrize("depth", [2, 3])
def test_product_of_gaussian_matrices_has_fuss_catalan_moments(depth):
    """W_L ... W_1 with N(0, 1/N) entries: E[x^k] = binom((L+1) k, k) / (L k + 1) (Fuss-Catalan)."""
    edge = (depth + 1) ** (depth + 1) / depth**depth
    _, m1, m2 = _density_moments("linear", 1.0, 0.0, depth, "gaussian", 1e-10, edge * 1.001)
    for k, got in ((1, m1), (2, m2)):
        assert got == pytest.approx(comb((depth + 1) * k, k) / (depth * k + 1), rel=2e-4)


def test_moment_formula_closed_forms():
    relu = jacobian_spectrum_moments("relu", 2.0, 0.0, np.arange(1, 6), "orthogonal")
    np.testing.assert_allclose(relu.mean, 1.0, rtol=1e-12)
    np.testing.assert_allclose(relu.variance, np.arange(1, 6), rtol=1e-10)  # L (mu2/mu1^2 - 1), mu_k = 1/2
    gauss = jacobian_spectrum_moments("relu", 2.0, 0.0, 7, "gaussian")
    assert float(gauss.variance) == pytest.approx(14.0, rel=1e-10)  # L mu2 / mu1^2
    sw2 = float(critical_sigma_w2("hard_tanh", 0.05))
    q = float(q_star("hard_tanh", sw2, 0.05))
    p = erf(1 / math.sqrt(2 * q))
    hard = jacobian_spectrum_moments("hard_tanh", sw2, 0.05, 5, "orthogonal")
    assert float(hard.mean) == pytest.approx(1.0, rel=1e-9)  # sw2 = 1/p on the critical line
    assert float(hard.variance) == pytest.approx(5 * (1 / p - 1), rel=1e-8)
    off = jacobian_spectrum_moments("relu", 1.5, 0.0, 4, "gaussian")
    assert float(off.mean) == pytest.approx(0.75**4, rel=1e-12)  # chi_1^L off criticality


def test_derivative_moments_against_quad():
    for q in (0.05, 0.57, 2.0):
        for k in (1, 2):
            exact = integrate.quad(
                lambda z, q=q, k=k: (
                    np.cosh(math.sqrt(q) * z) ** (-4 * k) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
                ),
                -np.inf,
                np.inf,
                epsabs=1e-14,
            )[0]
            assert float(derivative_moments("tanh", q, k)) == pytest.approx(exact, rel=1e-10)


def test_moments_broadcast_over_grids():
    m = jacobian_spectrum_moments(
        "tanh", np.array([[1.5], [1.8]]), np.array([0.01, 0.05, 0.1]), 10, "gaussian"
    )
    assert m.mean.shape == m.variance.shape == (2, 3)
    single = jacobian_spectrum_moments("tanh", 1.8, 0.1, 10, "gaussian")
    assert float(m.variance[1, 2]) == pytest.approx(float(single.variance), rel=1e-12)


# ------------------------------------------------------------------------------------ density vs moments


@pytest.mark.parametrize(
    ("activation", "weights", "depth"),
    [
        ("relu", "orthogonal", 3),
        ("relu", "gaussian", 3),
        ("hard_tanh", "orthogonal", 3),
        ("hard_tanh", "gaussian", 4),
        ("tanh", "orthogonal", 4),
        ("tanh", "gaussian", 4),
    ],
)
def test_density_and_atoms_reproduce_the_moment_formula(activation, weights, depth):
    """Two independent computations: the S-transform density (Newton on the subordination equation) and
    the free-cumulant moment formula. Total mass, mean and second moment agree to 1e-3."""
    sb2 = 0.0 if activation == "relu" else 0.05
    sw2 = 2.0 if activation == "relu" else float(critical_sigma_w2(activation, sb2))
    m = jacobian_spectrum_moments(activation, sw2, sb2, depth, weights)
    hi = 100.0 * (float(m.mean) + math.sqrt(float(m.variance)))
    mass, m1, m2 = _density_moments(activation, sw2, sb2, depth, weights, 1e-30, hi)
    atoms = jacobian_spectrum_atoms(activation, sw2, sb2, depth, weights)
    mass += sum(w for _, w in atoms)
    m1 += sum(loc * w for loc, w in atoms)
    m2 += sum(loc**2 * w for loc, w in atoms)
    assert mass == pytest.approx(1.0, abs=2e-3)
    assert m1 == pytest.approx(float(m.mean), rel=1e-3)
    assert m2 == pytest.approx(float(m.mean) ** 2 + float(m.variance), rel=2e-3)


# ------------------------------------------------------------------------------------ Monte Carlo


@pytest.mark.parametrize(
    ("activation", "sw2_factor", "weights"),
    [
        ("tanh", 1.0, "orthogonal"),
        ("tanh", 1.0, "gaussian"),
        ("tanh", 1.15, "orthogonal"),
        ("relu", 1.0, "gaussian"),
    ],
)
def test_moments_match_random_networks(activation, sw2_factor, weights):
    """Width 250, depth 6, 10 networks: the mean and the variance of the squared singular values match the
    theory within 4 standard errors of the network average plus 3 % (finite-width bias allowance)."""
    sb2 = 0.0 if activation == "relu" else 0.05
    sw2 = sw2_factor * (2.0 if activation == "relu" else float(critical_sigma_w2(activation, sb2)))
    rng = np.random.default_rng(11)
    samples = [_simulate(activation, sw2, sb2, 6, 250, weights, rng) for _ in range(10)]
    theory = jacobian_spectrum_moments(activation, sw2, sb2, 6, weights)
    for statistic, predicted in ((np.mean, theory.mean), (np.var, theory.variance)):
        values = np.array([statistic(v) for v in samples])
        stderr = values.std(ddof=1) / math.sqrt(values.size)
        assert abs(values.mean() - float(predicted)) <= 4 * stderr + 0.03 * float(predicted)


@pytest.mark.parametrize(("activation", "weights"), [("tanh", "orthogonal"), ("relu", "gaussian")])
def test_density_matches_random_network_histogram(activation, weights):
    """Kolmogorov-Smirnov distance between the theoretical and the empirical distribution (width 500,
    depth 4) below 0.04 (the 1 % critical value for 500 samples is 0.073)."""
    sb2 = 0.0 if activation == "relu" else 0.05
    sw2 = 2.0 if activation == "relu" else float(critical_sigma_w2(activation, sb2))
    values = np.sort(_simulate(activation, sw2, sb2, 4, 500, weights, np.random.default_rng(12)))
    x = np.geomspace(1e-8, values.max() * 3, 2000)
    rho = jacobian_spectral_density(activation, sw2, sb2, 4, x, weights)
    atom = sum(w for loc, w in jacobian_spectrum_atoms(activation, sw2, sb2, 4, weights) if loc == 0.0)
    cdf = atom + integrate.cumulative_trapezoid(rho * x, np.log(x), initial=0.0)
    empirical = np.searchsorted(values, x, side="right") / values.size
    assert np.max(np.abs(cdf - empirical)[x > 1e-6]) < 0.04


def test_hard_tanh_orthogonal_atom_at_the_top():
    """Orthogonal hard-tanh networks have an atom at sigma_w2^L of mass 1 - L (1 - p) (Belinschi); at
    finite width the eigenvalue sigma_w2^L is exactly repeated with about that multiplicity."""
    sw2 = float(critical_sigma_w2("hard_tanh", 0.05))
    atoms = dict(jacobian_spectrum_atoms("hard_tanh", sw2, 0.05, 2, "orthogonal"))
    p = erf(1 / math.sqrt(2 * float(q_star("hard_tanh", sw2, 0.05))))
    assert atoms[sw2**2] == pytest.approx(1 - 2 * (1 - p), rel=1e-12)
    assert atoms[0.0] == pytest.approx(1 - p, rel=1e-12)
    values = _simulate("hard_tanh", sw2, 0.05, 2, 600, "orthogonal", np.random.default_rng(13))
    at_top = np.mean(np.abs(values / sw2**2 - 1) < 1e-8)
    assert at_top == pytest.approx(1 - 2 * (1 - p), abs=0.05)
    assert jacobian_spectrum_atoms("tanh", TANH_SW2, 0.05, 2, "orthogonal") == []
    assert jacobian_spectrum_atoms("hard_tanh", sw2, 0.05, 2, "gaussian") == [(0.0, pytest.approx(1 - p))]


# ------------------------------------------------------------------------------------ critical line by q*


def test_critical_point_for_q_star_round_trip():
    qs = np.array([0.01, 0.1, 0.57, 2.0])
    sw2, sb2 = critical_point_for_q_star("tanh", qs)
    np.testing.assert_allclose(chi_1("tanh", sw2, sb2), 1.0, rtol=1e-10)
    np.testing.assert_allclose(q_star("tanh", sw2, sb2), qs, rtol=1e-8)
    assert float(sw2[2]) == pytest.approx(TANH_SW2, abs=2e-3)
    relu_sw2, relu_sb2 = critical_point_for_q_star("relu", 0.3)
    assert (float(relu_sw2), float(relu_sb2)) == (2.0, 0.0)
    with pytest.raises(ValueError, match="not on the critical line"):
        critical_point_for_q_star("sigmoid", 0.01)


def test_small_q_star_approaches_isometry():
    """Orthogonal tanh at criticality: variance L (mu2/mu1^2 - 1) -> 0 as q* -> 0 (Pennington et al. 2017)."""
    variances = []
    for q in (1.0, 0.1, 0.01):
        sw2, sb2 = critical_point_for_q_star("tanh", q)
        variances.append(float(jacobian_spectrum_moments("tanh", sw2, sb2, 100, "orthogonal").variance))
    assert variances[0] > 10 * variances[1] > 100 * variances[2]
    gaussian = jacobian_spectrum_moments("tanh", *critical_point_for_q_star("tanh", 0.01), 100, "gaussian")
    assert float(gaussian.variance) > 100.0  # Gaussian weights never reach isometry


# ------------------------------------------------------------------------------------ errors and laws


def test_derivative_law_masses_and_moments():
    values, masses, exact = derivative_law("relu", 0.7)
    assert exact and dict(zip(values.tolist(), masses.tolist(), strict=True)) == {0.0: 0.5, 1.0: 0.5}
    values, masses, exact = derivative_law("tanh", 0.3)
    assert not exact and values.size == 64 and masses.sum() == pytest.approx(1.0, rel=1e-14)
    for k in (1, 2, 3, 8):
        exact_moment = (
            2
            * integrate.quad(
                lambda z, k=k: (
                    np.cosh(math.sqrt(0.3) * z) ** (-4 * k) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
                ),
                0,
                40,
                epsabs=1e-15,
                epsrel=1e-14,
                limit=200,
            )[0]
        )
        assert masses @ values**k == pytest.approx(exact_moment, rel=1e-12)


def test_errors():
    with pytest.raises(ValueError, match="point mass"):
        jacobian_spectral_density("linear", 1.0, 0.0, 3, [1.0], "orthogonal")
    with pytest.raises(ValueError, match="x must be > 0"):
        jacobian_spectral_density("relu", 2.0, 0.0, 3, [0.0, 1.0])
    with pytest.raises(ValueError, match="weights must be one of"):
        jacobian_spectrum_moments("tanh", 1.0, 0.0, 3, weights="uniform")
    with pytest.raises(ValueError, match="depth must be a non-negative integer"):
        jacobian_spectrum_moments("tanh", 1.0, 0.0, 2.5)
    with pytest.raises(ValueError, match="scalars"):
        jacobian_spectral_density("tanh", [1.0, 2.0], 0.0, 3, [1.0])
    with pytest.raises(ValueError, match="sigma_w2 must be > 0"):
        jacobian_spectrum_moments("tanh", -1.0, 0.0, 3)
