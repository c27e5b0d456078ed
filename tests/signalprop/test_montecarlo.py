"""Finite-width Monte Carlo: random fully-connected tanh networks (width 1000) and random circular-padded
1-D CNNs (1000 channels) against the mean-field maps."""

from __future__ import annotations

import numpy as np

from dltheory.signalprop import (
    c_map,
    conv_covariance_map,
    covariance_map,
    critical_sigma_w2,
    fixed_point,
    mode_eigenvalues,
    propagate_covariance,
    spatial_mode_power,
    variance_profile,
)


def test_fully_connected_q_and_c_trajectories():
    # Theory: iterate the 2x2 covariance map. Simulation: 6 random nets of width 1000, 12 layers.
    width, depth, nets, sw2, sb2 = 1000, 12, 6, 3.0, 0.1
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, width))
    x[1] = 0.3 * x[0] + np.sqrt(1 - 0.09) * x[1]
    x *= np.sqrt(0.5)  # q0 = 0.5, c0 = 0.3 (approximately, empirical values used below)
    q_sim = np.zeros((nets, depth + 1))
    c_sim = np.zeros((nets, depth + 1))
    for n in range(nets):
        h = x.copy()
        for layer in range(depth + 1):
            qa, qb = np.mean(h * h, axis=1)
            q_sim[n, layer] = qa
            c_sim[n, layer] = np.mean(h[0] * h[1]) / np.sqrt(qa * qb)
            w = rng.standard_normal((width, width)) * np.sqrt(sw2 / width)
            b = rng.standard_normal(width) * np.sqrt(sb2)
            h = np.tanh(h) @ w.T + b
    qa, qb = np.mean(x * x, axis=1)
    qab = np.mean(x[0] * x[1])
    q_theory, c_theory = [qa], [qab / np.sqrt(qa * qb)]
    for _ in range(depth):
        qa, qab, qb = covariance_map("tanh", qa, qab, qb, sw2, sb2)
        q_theory.append(float(qa))
        c_theory.append(float(qab / np.sqrt(qa * qb)))
    # tolerance: relative std of a width-N variance estimate is sqrt(2/N) = 4.5%; mean of 6 nets -> ~2%
    np.testing.assert_allclose(q_sim.mean(axis=0), q_theory, rtol=0.05)
    np.testing.assert_allclose(c_sim.mean(axis=0), c_theory, atol=0.03)
    # the trajectory ends near the fixed point of the theory (chaotic phase: c* < 1)
    fp = fixed_point("tanh", sw2, sb2)
    assert abs(q_theory[-1] - fp.q_star) < 1e-3 and abs(c_theory[-1] - fp.c_star) < 0.02
    assert abs(c_map("tanh", fp.c_star, sw2, sb2) - fp.c_star) < 1e-12


def _cnn_covariances(profile, sw2, sb2, h, depth, rng):
    """Empirical spatial covariance (over channels) of a random 1-D circular CNN, layer by layer;
    h: input of shape (positions, channels)."""
    channels = h.shape[1]
    taps = profile.shape[0]
    offsets = np.arange(taps) - taps // 2
    out = [h @ h.T / channels]
    for _ in range(depth):
        act = np.tanh(h)
        new = rng.standard_normal((1, channels)) * np.sqrt(sb2)
        for offset, v in zip(offsets, profile, strict=True):
            if v == 0:
                continue
            w = rng.standard_normal((channels, channels)) * np.sqrt(sw2 * v / channels)
            new = new + np.roll(act, -offset, axis=0) @ w.T
        h = new
        out.append(h @ h.T / channels)
    return np.stack(out)


def test_cnn_reproduces_per_mode_decay_for_delta_and_uniform_profiles():
    # tanh exactly at criticality (sigma_b2 = 0.05), 8 positions, 3-tap kernels: theory says the
    # position-dependent (m != 0) part of the spatial covariance survives with the delta profile and dies
    # like |lambda_1|^l = 0.80^l with the uniform one.
    n, channels, depth, nets, sb2 = 8, 1000, 8, 6, 0.05
    sw2 = float(critical_sigma_w2("tanh", sb2))
    a = np.arange(n)
    rng = np.random.default_rng(1)
    h0 = rng.standard_normal((n, channels)) * np.sqrt(0.6 * (1 + 0.8 * np.cos(2 * np.pi * a / n)))[:, None]
    h0[1::2] = 0.5 * h0[1::2] + 0.5 * h0[0::2]
    spatial = {}
    for kind in ("delta", "uniform"):
        v = variance_profile(kind, 3, 1)
        theory = propagate_covariance(h0 @ h0.T / channels, v, "tanh", sw2, sb2, depth)
        sims = np.mean([_cnn_covariances(v, sw2, sb2, h0, depth, rng) for _ in range(nets)], axis=0)
        # whole spatial covariance, layer by layer: measured 3-10% with 4 nets of 1000 channels, shrinking
        # as 1/sqrt(nets * channels) (Monte Carlo noise, no contraction at criticality)
        rel = np.linalg.norm(sims - theory, axis=(1, 2)) / np.linalg.norm(theory, axis=(1, 2))
        assert rel.max() < 0.12, (kind, rel)
        # size of the non-zero spatial modes (all lags)
        theory_modes = np.array([np.linalg.norm(spatial_mode_power(t, 1)[1:]) for t in theory])
        sim_modes = np.array([np.linalg.norm(spatial_mode_power(t, 1)[1:]) for t in sims])
        np.testing.assert_allclose(sim_modes, theory_modes, rtol=0.25, atol=0.03)
        spatial[kind] = (theory_modes, sim_modes)
    for which in (0, 1):  # theory, simulation
        assert spatial["uniform"][which][6] < 0.4 * spatial["delta"][which][6]
    lam = abs(mode_eigenvalues("uniform", n)[1])
    assert abs(lam - (1 + 2 * np.cos(2 * np.pi / n)) / 3) < 1e-14
    assert spatial["uniform"][0][6] < 2 * lam**6 * spatial["uniform"][0][0]


def test_conv_fixed_point_is_the_fully_connected_one():
    fp = fixed_point("tanh", 2.0, 0.1)
    n = 6
    sigma_star = fp.q_star * ((1 - fp.c_star) * np.eye(n) + fp.c_star * np.ones((n, n)))
    for kind in ("delta", "uniform"):
        mapped = conv_covariance_map(sigma_star, variance_profile(kind, 3, 1), "tanh", 2.0, 0.1)
        np.testing.assert_allclose(mapped, sigma_star, rtol=1e-10)


def test_correlation_modes_decay_at_chi_c_times_lambda_m():
    # Linearisation around Sigma* (Xiao et al. 2018, eq. 2.10): an off-diagonal perturbation in spatial
    # mode m is multiplied by chi_c * lambda_m per layer (chaotic point, so c* < 1 and both signs are allowed)
    sw2, sb2, n, m = 2.5, 0.05, 16, 2
    fp = fixed_point("tanh", sw2, sb2)
    sigma_star = fp.q_star * ((1 - fp.c_star) * np.eye(n) + fp.c_star * np.ones((n, n)))
    a = np.arange(n)
    pattern = np.cos(np.pi * m * (a[:, None] + a[None, :]) / n) * (1 - np.eye(n))
    for kind in ("delta", "uniform"):
        v = variance_profile(kind, 3, 1)
        layers = propagate_covariance(sigma_star + 1e-5 * fp.q_star * pattern, v, "tanh", sw2, sb2, 6)
        amplitude = np.array([np.sum((s - sigma_star) * pattern) for s in layers]) / np.sum(pattern * pattern)
        predicted = fp.chi_c * mode_eigenvalues(v, n)[m].real
        np.testing.assert_allclose(amplitude[1:] / amplitude[:-1], predicted, rtol=1e-3)
    assert (
        abs(
            mode_eigenvalues(variance_profile("uniform", 3, 1), n)[m]
            - (1 + 2 * np.cos(2 * np.pi * m / n)) / 3
        )
        < 1e-14
    )


def test_mode_eigenvalues_are_the_fft_of_the_profile():
    rng = np.random.default_rng(3)
    v = rng.random((3, 5))
    v /= v.sum()
    shape = (8, 10)
    embedded = np.zeros(shape)
    for i in range(3):
        for j in range(5):
            embedded[(i - 1) % 8, (j - 2) % 10] = v[i, j]
    np.testing.assert_allclose(mode_eigenvalues(v, shape), np.conj(np.fft.fft2(embedded)), atol=1e-14)
    uniform = mode_eigenvalues("uniform", (8, 8))
    # docs/xiao/theory.md: uniform 3x3 on 8x8, slowest non-zero mode lambda = (1 + 2 cos(pi/4)) / 3,
    # xi ~ 4.6 layers
    slowest = np.sort(np.abs(uniform).ravel())[-2]
    assert abs(slowest - (1 + 2 * np.cos(np.pi / 4)) / 3) < 1e-14
    assert abs(-1 / np.log(slowest) - 4.60) < 0.01
    np.testing.assert_allclose(mode_eigenvalues("delta", (8, 8)), 1.0)
