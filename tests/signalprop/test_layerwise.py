"""signalprop.layerwise / summary / phases: the torch-free maths behind dltheory.diagnose, checked against
independent quadrature, a direct convolution loop and the fixed-point maps of signalprop.meanfield."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.integrate import quad

from dltheory.signalprop import covariance_map, critical_sigma_w2, fixed_point
from dltheory.signalprop.kernels import dual_kernel
from dltheory.signalprop.layerwise import (
    SERIES_TAIL,
    TABLE_ORDER,
    ChainLayer,
    ConvGeometry,
    GaussianMaps,
    propagate_chain,
    segments,
    series_order,
    spread,
)
from dltheory.signalprop.phases import classify_phase
from dltheory.signalprop.summary import critical_parameters, fixed_point_summary


def test_gaussian_maps_series_matches_two_dimensional_quadrature():
    rng = np.random.default_rng(0)
    q1, q2 = rng.uniform(1e-3, 16.0, 400), rng.uniform(1e-3, 16.0, 400)
    c = np.concatenate([rng.uniform(-1, 1, 380), np.ones(10), np.full(10, 0.999)])
    maps, kernel = GaussianMaps("tanh"), dual_kernel("tanh")
    exact = kernel.cross(q1, q2, c)[0]
    scale = np.sqrt(kernel.moments(q1)[0] * kernel.moments(q2)[0])
    assert np.max(np.abs(maps.cross(q1, q2, c) - exact) / scale) < 1e-5


@pytest.mark.parametrize("largest", [0.0, 0.02, 0.1, 0.3, 0.7, 0.95, 1.0])
def test_gaussian_maps_series_stops_within_its_tail_bound(largest):
    """The Mehler series stops at the order where max |c|^(K+1) <= SERIES_TAIL; the dropped terms are
    bounded by that times sqrt(E[phi(u_1)^2] E[phi(u_2)^2]): checked against the full order-256 series of
    the same spline tables."""
    rng = np.random.default_rng(1)
    q1, q2 = rng.uniform(1e-3, 16.0, 50), rng.uniform(1e-3, 16.0, 50)
    c = rng.uniform(-largest, largest, 50)
    c[0] = largest
    order = series_order(c)
    if largest == 0.0:
        assert order == 0
    elif largest ** (TABLE_ORDER + 1) > SERIES_TAIL:  # the table's whole series (0.95: 2e-6)
        assert order == TABLE_ORDER
    else:
        assert largest ** (order + 1) <= SERIES_TAIL < largest**order
    maps = GaussianMaps("tanh")
    assert maps.tables is not None
    a1, a2 = maps.tables.hermite(np.log(q1)), maps.tables.hermite(np.log(q2))
    full = np.sum(a1 * a2 * c[:, None] ** np.arange(TABLE_ORDER + 1), axis=-1)
    scale = np.sqrt(maps.moments(q1)[0] * maps.moments(q2)[0])
    assert np.max(np.abs(maps.cross(q1, q2, c) - full) / scale) <= 2 * SERIES_TAIL + 1e-14


@pytest.mark.parametrize("q", [1e-4, 0.3, 2.0, 15.0, 40.0])
def test_gaussian_maps_moments_match_scipy_quad(q):
    """Spline tables inside [1e-8, 16], direct quadrature outside: both within 1e-7 of scipy.quad."""
    m, d = GaussianMaps("tanh").moments(np.array([q]))

    def expect(f):
        return quad(
            lambda z: f(math.sqrt(q) * z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),
            -12,
            12,
            limit=400,
            epsabs=1e-14,
        )[0]

    assert m[0] == pytest.approx(expect(lambda x: math.tanh(x) ** 2), rel=1e-7, abs=1e-14)
    assert d[0] == pytest.approx(expect(lambda x: 1 / math.cosh(x) ** 4), rel=1e-7)


def _spread_loop(maps, profile, stride, dilation, padding, mode):
    """Reference: pad with numpy, then a direct loop over output positions and taps (2-D only)."""
    padded = np.pad(maps, [(0, 0), *padding], mode={"zeros": "constant", "circular": "wrap"}[mode])
    kh, kw = profile.shape
    oh = (padded.shape[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (padded.shape[2] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((maps.shape[0], oh, ow))
    for i, j, a, b in itertools.product(range(oh), range(ow), range(kh), range(kw)):
        out[:, i, j] += (
            profile[a, b] * padded[:, stride[0] * i + dilation[0] * a, stride[1] * j + dilation[1] * b]
        )
    return out


@pytest.mark.parametrize(
    "stride, dilation, padding, mode",
    [((1, 1), (1, 1), ((1, 1), (1, 1)), "circular"), ((2, 1), (1, 2), ((2, 1), (0, 3)), "zeros")],
)
def test_spread_is_a_direct_convolution(stride, dilation, padding, mode):
    rng = np.random.default_rng(1)
    profile = rng.uniform(0.1, 1.0, (3, 2))
    profile /= profile.sum()
    maps = rng.uniform(0.0, 2.0, (4, 7, 6))
    geometry = ConvGeometry(stride, dilation, padding, mode)
    expected = _spread_loop(maps, profile, stride, dilation, padding, mode)
    np.testing.assert_allclose(spread(maps, profile, geometry), expected, rtol=1e-13)


@pytest.mark.parametrize(
    "activation, sigma_w2, sigma_b2", [("tanh", 1.3, 0.05), ("relu", 1.8, 0.1), ("erf", 2.5, 0.0)]
)
def test_uniform_chain_matches_the_covariance_map(activation, sigma_w2, sigma_b2):
    """A dense chain with equal parameters iterates signalprop.meanfield.covariance_map (an independent
    code path: 2-D quadrature instead of the spline / Hermite tables): agreement within 2e-6."""
    layers = [ChainLayer(sigma_w2, sigma_b2)] * 8
    q_in, c_in = np.array([0.8, 1.4]), 0.3 * math.sqrt(0.8 * 1.4)
    out = propagate_chain(layers, [activation] * 7, q_in, np.array([c_in]), [0], [1])
    qa, qab, qb = sigma_w2 * 0.8 + sigma_b2, sigma_w2 * c_in + sigma_b2, sigma_w2 * 1.4 + sigma_b2
    kernel = dual_kernel(activation)
    for layer in range(8):
        assert out.q[layer] == pytest.approx((qa + qb) / 2, rel=2e-6)
        assert out.c[layer] == pytest.approx(qab / math.sqrt(qa * qb), abs=2e-6)
        if layer < 7:
            d = (kernel.moments(np.array([qa]))[2] + kernel.moments(np.array([qb]))[2]) / 2
            assert out.chi[layer] == pytest.approx(sigma_w2 * float(d[0]), rel=2e-6)
            qa, qab, qb = (float(v) for v in covariance_map(activation, qa, qab, qb, sigma_w2, sigma_b2))


def test_chain_reports_where_the_variance_overflows():
    out = propagate_chain([ChainLayer(1e200, 0.0)] * 4, ["relu"] * 3, np.ones(2), np.array([0.5]), [0], [1])
    assert out.stopped == 1 and np.isnan(out.q[1]) and out.q[0] == pytest.approx(1e200)


def test_chain_argument_errors():
    with pytest.raises(ValueError, match="activations must have len"):
        propagate_chain([ChainLayer(1.0, 0.0)] * 3, ["tanh"], np.ones(2), np.ones(1), [0], [1])
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        ConvGeometry((1,), (1,), ((0, 0),), "mirror")
    with pytest.raises(ValueError, match="profile and geometry"):
        ChainLayer(1.0, 0.0, (4,), np.ones(3) / 3, None)
    with pytest.raises(ValueError, match="covered must have"):
        segments([True], 4)


def test_segments_split_at_uncovered_links():
    assert segments([], 1) == [(0, 0)]
    assert segments([True, True], 3) == [(0, 2)]
    assert segments([False, True, False], 4) == [(0, 0), (1, 2), (3, 3)]


# ------------------------------------------------------------------------------------ phases, summaries


def test_one_phase_rule_everywhere():
    chi = np.array([0.5, 1 - 1e-9, 1.0, 1 + 1e-9, 1.5, np.nan, np.inf])
    labels = classify_phase(chi).tolist()
    assert labels == ["ordered", "critical", "critical", "critical", "chaotic", "unbounded", "unbounded"]
    assert classify_phase([0.9, 1.1], 0.2, bounded=[True, False]).tolist() == ["critical", "unbounded"]
    with pytest.raises(ValueError, match="tol must be >= 0"):
        classify_phase(1.0, -1.0)
    with pytest.raises(TypeError, match="chi must be a real number"):
        classify_phase("high")
    # signalprop.phase and PhaseDiagram.phase are this rule applied to chi_1
    from dltheory.signalprop import phase, phase_diagram

    grid = phase_diagram("tanh", [1.0, 1.761, 3.0], [0.05])
    assert grid.phase(1e-3).ravel().tolist() == classify_phase(grid.chi_1.ravel(), 1e-3).tolist()
    assert phase("tanh", 3.0, 0.05).item() == "chaotic"


def test_fixed_point_summary_and_critical_parameters():
    s = fixed_point_summary("tanh", 3.0, 0.05, tol=0.05)
    fp = fixed_point("tanh", 3.0, 0.05)
    assert (s.q_star, s.c_star, s.chi_1, s.xi_c) == (
        float(fp.q_star),
        float(fp.c_star),
        float(fp.chi_1),
        float(fp.xi_c),
    )
    assert s.phase == "chaotic" and s.bounded
    unbounded = fixed_point_summary("relu", 3.0, 0.1, tol=0.05)
    assert not unbounded.bounded and unbounded.chi_1 == pytest.approx(1.5) and unbounded.phase == "chaotic"
    sw2, sb2 = critical_parameters("tanh", 0.05)
    assert sb2 == 2.01e-5 and sw2 == pytest.approx(float(critical_sigma_w2("tanh", 2.01e-5)), rel=1e-12)
    assert critical_parameters("leaky_relu", 0.0) == (pytest.approx(2 / (1 + 0.01**2)), 0.0)


def test_growth_verdict_of_residual_stacks():
    from dltheory.signalprop.phases import classify_growth

    assert classify_growth([0.01, 0.5, 9.9, 10.1, np.inf], 10.0).tolist() == [
        "vanishing",
        "stable",
        "stable",
        "exploding",
        "unbounded",
    ]
    with pytest.raises(ValueError, match="target must be > 1"):
        classify_growth(2.0, 1.0)
