"""Survival of the inputs' decorrelation through critical layers: series vs covariance map vs an independent
quadrature vs Monte Carlo networks; the q* chosen for a depth."""

from __future__ import annotations

import numpy as np
import pytest

from dltheory.signalprop import (
    correlation_survival,
    critical_point_for_q_star,
    q_star_for_depth,
    settled_survival,
)


def _gauss_hermite_cmap(q: float, c: float, sw2: float, sb2: float, nodes: int = 60) -> float:
    """c' at equal lengths q by an independent 2-D Gauss-Hermite rule (tanh is entire: converges fast at
    small q)."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    z1, z2 = np.meshgrid(z, z, indexing="ij")
    u1 = np.sqrt(q) * z1
    u2 = np.sqrt(q) * (c * z1 + np.sqrt(1.0 - c * c) * z2)
    weights = np.outer(w, w)
    cross = np.sum(weights * np.tanh(u1) * np.tanh(u2))
    square = np.sum(w * np.tanh(np.sqrt(q) * z) ** 2)
    return float((sw2 * cross + sb2) / (sw2 * square + sb2))


@pytest.mark.parametrize("q_star", [0.001, 0.02, 0.2])
def test_the_series_the_covariance_map_and_an_independent_quadrature_agree(q_star):
    sw2, sb2 = (float(v) for v in critical_point_for_q_star("tanh", q_star))
    depth, c0 = 40, np.array([0.1, 0.5, 0.9])
    series = settled_survival("tanh", depth, q_star, c0)
    general = correlation_survival("tanh", [depth], sw2, sb2, q_star, q_star, c0 * q_star)[0]
    np.testing.assert_allclose(series, general, rtol=1e-9)
    for start, survival in zip(c0, series, strict=True):
        c = float(start)
        for _ in range(depth):
            c = _gauss_hermite_cmap(q_star, c, sw2, sb2)
        assert (1.0 - c) / (1.0 - start) == pytest.approx(survival, rel=1e-8)


def test_survival_matches_monte_carlo_networks_of_width_1000():
    """Fully connected tanh networks at the critical point q* = 0.1, Gaussian weights (the mean field of a
    delta-orthogonal conv stack is the same map at every position): two inputs at the fixed length with
    correlation 0.5; S after 60 layers averaged over 8 networks, within 4 standard errors + 0.01."""
    q_star, width, depth, runs = 0.1, 1000, 60, 8
    sw2, sb2 = (float(v) for v in critical_point_for_q_star("tanh", q_star))
    predicted = float(settled_survival("tanh", depth, q_star, 0.5))
    rng = np.random.default_rng(0)
    measured = []
    for _ in range(runs):
        z = rng.standard_normal((2, width))
        h = np.stack([z[0], 0.5 * z[0] + np.sqrt(0.75) * z[1]]) * np.sqrt(q_star)  # pre-activations
        c_first = np.corrcoef(h)[0, 1]
        for _ in range(depth):
            weights = rng.standard_normal((width, width)) * np.sqrt(sw2 / width)
            h = np.tanh(h) @ weights.T + rng.standard_normal(width) * np.sqrt(sb2)
        c_last = float(np.sum(h[0] * h[1]) / np.sqrt(np.sum(h[0] ** 2) * np.sum(h[1] ** 2)))
        measured.append((1.0 - c_last) / (1.0 - c_first))
    mean, se = float(np.mean(measured)), float(np.std(measured, ddof=1) / np.sqrt(runs))
    assert predicted < 0.9  # the map visibly decorrelates at this q* and depth: the test can fail
    assert abs(mean - predicted) <= 4 * se + 0.01, (mean, se, predicted)


def test_survival_falls_with_depth_and_with_q_star():
    depths = [0, 10, 100, 1000]
    sw2, sb2 = critical_point_for_q_star("tanh", np.array([0.001, 0.01, 0.1]))
    s = correlation_survival("tanh", depths, sw2, sb2, [0.001, 0.01, 0.1], [0.001, 0.01, 0.1], 0.0)
    assert np.all(s[0] == 1.0)
    assert np.all(np.diff(s, axis=0) < 0)  # deeper: less survives
    assert np.all(np.diff(s[1:], axis=1) < 0)  # larger q*: less survives


@pytest.mark.parametrize(("depth", "target"), [(1000, 0.9), (2500, 0.99)])
def test_the_chosen_q_star_meets_the_target_and_shrinks_with_depth(depth, target):
    q = q_star_for_depth("tanh", depth, target=target)
    assert float(settled_survival("tanh", depth, q, 0.5)) == pytest.approx(target, abs=2e-3)
    assert q_star_for_depth("tanh", 4 * depth, target=target) < q


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="depths"):
        correlation_survival("tanh", [10, 5], 1.0, 0.0, 1.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="fully correlated"):
        correlation_survival("tanh", [1], 1.0, 0.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="target"):
        q_star_for_depth("tanh", 100, target=1.5)
    with pytest.raises(ValueError, match="c0"):
        settled_survival("tanh", 10, 0.01, 1.0)
    with pytest.raises(ValueError, match="no q\\*"):
        q_star_for_depth("tanh", 100, target=0.99, q_stars=[0.5, 1.0])
