"""Mean-field fixed points, slopes and depth scales pinned against independent scipy.integrate.quad /
brentq computations done here, closed forms against quadrature, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq

from dltheory.core.activations import get_activation
from dltheory.signalprop import (
    NoFixedPointError,
    c_map,
    chi_1,
    covariance_map,
    critical_line,
    critical_sigma_w2,
    depth_scales,
    fixed_point,
    phase,
    phase_diagram,
    q_map,
    q_star,
    trainable_depth,
)
from dltheory.signalprop.kernels import DualKernel, dual_kernel

pytestmark = pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")


def pdf(z):
    return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def e1(f, q):
    return quad(lambda z: f(math.sqrt(q) * z) * pdf(z), -13, 13, epsabs=1e-16, epsrel=1e-13, limit=400)[0]


def e2(f, g, q, c, kink_at_zero=False):
    s = math.sqrt(1 - c * c)

    def inner(z1):
        points = [-c * z1 / s] if kink_at_zero else None
        return quad(
            lambda z2: g(math.sqrt(q) * (c * z1 + s * z2)) * pdf(z2),
            -13,
            13,
            points=points,
            epsabs=1e-15,
            epsrel=1e-12,
        )[0]

    points = [0.0] if kink_at_zero else None
    return quad(
        lambda z1: f(math.sqrt(q) * z1) * inner(z1) * pdf(z1),
        -13,
        13,
        points=points,
        epsabs=1e-15,
        epsrel=1e-12,
    )[0]


def scalar(name):
    act = get_activation(name)
    return (lambda x: float(act.fn(np.array(x)))), (lambda x: float(act.deriv(np.array(x))))


@pytest.mark.parametrize(
    "name, sw2, sb2",
    [
        ("tanh", 1.7, 0.05),
        ("tanh", 0.9, 0.2),
        ("tanh", 3.0, 0.0),
        ("sigmoid", 4.0, 0.1),
        ("gelu", 1.8, 0.05),
        ("silu", 1.8, 0.3),
    ],
)
def test_q_star_and_chi_1_match_quad(name, sw2, sb2):
    phi, dphi = scalar(name)
    ref_q = brentq(lambda q: sw2 * e1(lambda x: phi(x) ** 2, q) + sb2 - q, 1e-3, 50, xtol=1e-15, rtol=1e-15)
    ref_chi = sw2 * e1(lambda x: dphi(x) ** 2, ref_q)
    fp = fixed_point(name, sw2, sb2)
    assert abs(fp.q_star - ref_q) <= 1e-9 * ref_q
    assert abs(fp.chi_1 - ref_chi) <= 1e-9 * ref_chi
    # xi_q: slope of the length map at q*, by Stein's lemma chi_1 + sw2 E[phi'' phi]
    act = get_activation(name)
    slope = ref_chi + sw2 * e1(lambda x: float(act.deriv2(np.array(x))) * phi(x), ref_q)
    assert abs(fp.xi_q - (-1 / math.log(slope))) <= 1e-8 * fp.xi_q


@pytest.mark.parametrize("name, sw2, sb2", [("tanh", 2.5, 0.05), ("selu", 1.5, 0.05)])
def test_chaotic_c_star_and_chi_c_match_nested_quad(name, sw2, sb2):
    phi, dphi = scalar(name)
    fp = fixed_point(name, sw2, sb2)
    q, c = float(fp.q_star), float(fp.c_star)
    assert fp.chi_1 > 1 and 0 <= c < 1
    kinked = bool(get_activation(name).kinks)
    mapped = (sw2 * e2(phi, phi, q, c, kinked) + sb2) / q
    assert abs(mapped - c) <= 1e-9 * c
    chic = sw2 * e2(dphi, dphi, q, c, kinked)
    assert abs(fp.chi_c - chic) <= 1e-9 * chic
    assert abs(fp.xi_c + 1 / math.log(chic)) <= 1e-8 * fp.xi_c


def test_tanh_anchor_from_the_notes():
    # docs/xiao/theory.md: tanh with sigma_b2 = 0.05 is critical at sigma_w2 = 1.7610 with q* = 0.5700
    line = critical_line("tanh", 0.05)
    assert round(float(line.sigma_w2), 4) == 1.7610
    assert round(float(line.q_star), 4) == 0.5700
    assert abs(chi_1("tanh", line.sigma_w2, 0.05) - 1) < 1e-10
    assert abs(q_star("tanh", line.sigma_w2, 0.05) - line.q_star) < 1e-10
    assert np.isinf(depth_scales("tanh", line.sigma_w2, 0.05)[1])


def test_small_q_end_of_the_tanh_critical_line():
    # sigma_w2 = 1 + 2 q* + O(q*^2), sigma_b2 = O(q*^3)
    sb2 = np.array([1e-9, 1e-7, 1e-5])
    line = critical_line("tanh", sb2)
    q = line.q_star
    np.testing.assert_allclose((line.sigma_w2 - 1) / q, 2.0, rtol=5 * q.max() ** 0.5 + 0.05)
    ratio = sb2 / q**3
    assert np.all(ratio > 0.1) and np.all(ratio < 10) and np.ptp(ratio) < 0.2 * ratio.mean()


@pytest.mark.parametrize(
    "name, params",
    [("relu", {}), ("leaky_relu", {"slope": 0.3}), ("linear", {}), ("erf", {}), ("hard_tanh", {})],
)
def test_closed_forms_agree_with_quadrature(name, params):
    closed = dual_kernel(name, **params)
    generic = DualKernel(get_activation(name, **params))
    q = np.array([0.05, 0.8, 3.0])
    for a, b in zip(closed.moments(q), generic.moments(q), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)
    if closed.closed_form:
        c = np.array([-0.6, 0.3, 0.97])
        for a, b in zip(closed.cross(q, q[::-1], c), generic.cross(q, q[::-1], c), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_relu_theory():
    assert float(critical_sigma_w2("relu", 0.0)) == 2.0
    fp = fixed_point("relu", 1.5, 0.1)
    assert abs(fp.q_star - 0.1 / (1 - 0.75)) < 1e-15 and abs(fp.chi_1 - 0.75) < 1e-15 and fp.c_star == 1
    with pytest.raises(NoFixedPointError, match="no finite fixed point"):
        q_star("relu", 2.5, 0.1)
    with pytest.raises(NoFixedPointError):
        q_star("relu", 2.0, 0.1)
    assert np.isinf(q_star("relu", [2.5], [0.1], diverged="inf")).all()
    with pytest.raises(ValueError, match="critical only at sigma_b2 = 0"):
        critical_sigma_w2("relu", 0.1)


def test_series_c_map_agrees_with_two_dimensional_quadrature():
    fp = fixed_point("tanh", np.array([1.3, 2.0, 3.5]), 0.1)
    direct = c_map("tanh", fp.c_star, np.array([1.3, 2.0, 3.5]), 0.1, q=fp.q_star)
    np.testing.assert_allclose(direct, fp.c_star, rtol=1e-11)


def test_maps_are_consistent():
    q = q_star("tanh", 1.2, 0.1)
    assert abs(q_map("tanh", q, 1.2, 0.1) - q) < 1e-14
    qa, qab, qb = covariance_map("tanh", q, 0.3 * q, q, 1.2, 0.1)
    assert abs(qa - q) < 1e-14 and abs(qb - q) < 1e-14
    assert abs(qab / q - c_map("tanh", 0.3, 1.2, 0.1)) < 1e-13
    assert abs(c_map("tanh", 1.0, 1.2, 0.1) - 1) < 1e-13


def test_phase_diagram_is_pointwise_fixed_point_and_never_nan():
    w = np.linspace(0.6, 3.0, 13)
    b = np.array([0.0, 0.05, 0.05])
    w = np.append(w, critical_sigma_w2("tanh", 0.05))
    diagram = phase_diagram("tanh", w, b)
    assert diagram.q_star.shape == (14, 3)
    for i in (0, 6, 13):
        fp = fixed_point("tanh", w[i], b[1])
        assert np.isinf(fp.xi_c) or abs(diagram.xi_c[i, 1] - fp.xi_c) <= 1e-9 * fp.xi_c
    assert not np.isnan(diagram.xi_c).any() and not np.isnan(diagram.xi_q).any()
    assert np.isinf(diagram.xi_c[13, 1])
    labels = diagram.phase()
    assert labels[0, 1] == "ordered" and labels[12, 1] == "chaotic" and labels[13, 1] == "critical"


def test_phase_and_trainable_depth():
    sw2c = float(critical_sigma_w2("tanh", 0.05))
    assert phase("tanh", [sw2c * 0.9, sw2c, sw2c * 1.1], 0.05).tolist() == ["ordered", "critical", "chaotic"]
    depth = trainable_depth("tanh", 1.5, 0.05)
    assert abs(depth - 6 * depth_scales("tanh", 1.5, 0.05)[1]) < 1e-12


def test_relu_phase_diagram_marks_unbounded_region():
    diagram = phase_diagram("relu", [1.0, 2.0, 3.0], [0.0, 0.1])
    assert diagram.phase().tolist() == [
        ["ordered", "ordered"],
        ["critical", "unbounded"],
        ["unbounded", "unbounded"],
    ]
    assert np.isinf(diagram.xi_c[1, 0])


def test_bad_input_errors():
    with pytest.raises(ValueError, match="sigma_w2 must be > 0"):
        q_star("tanh", -1.0, 0.1)
    with pytest.raises(ValueError, match="sigma_b2 must be >= 0"):
        q_star("tanh", 1.0, -0.1)
    with pytest.raises(ValueError, match="sigma_w2 must be finite"):
        chi_1("tanh", float("nan"), 0.1)
    with pytest.raises(ValueError, match=r"c must lie in \[-1, 1\]"):
        c_map("tanh", 1.5, 1.0, 0.1)
    with pytest.raises(ValueError, match="q must be >= 0"):
        q_map("tanh", -0.1, 1.0, 0.1)
    with pytest.raises(ValueError, match="q_ab must satisfy"):
        covariance_map("tanh", 1.0, 2.0, 1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="activation must be one of"):
        q_star("tanhh", 1.0, 0.1)
