"""signalprop.residual: the residual mean-field recursions against independent quadrature (<= 1e-8), against
Monte Carlo of width-1000 networks (q within 5%, c within 0.03, gradient growth within 10%, with standard
errors), their asymptotic laws, the branch scale, and argument errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from dltheory.signalprop.residual import (
    branch_scale,
    residual_asymptotics,
    residual_propagation,
)

SQRT_2PI = math.sqrt(2 * math.pi)

# ------------------------------------------------------------------------------------ independent quadrature


def _gauss(f, q):
    """E_z[f(sqrt(q) z)] by adaptive quadrature (scipy.quad, split at 0)."""
    g = lambda z: f(math.sqrt(q) * z) * math.exp(-z * z / 2) / SQRT_2PI  # noqa: E731
    return quad(g, -12, 0, epsabs=1e-14, limit=200)[0] + quad(g, 0, 12, epsabs=1e-14, limit=200)[0]


def _gauss2(f, q, c):
    """E[f(u1) f(u2)], u ~ N(0, q [[1, c], [c, 1]]), by nested scipy.quad (inner split where u2 = 0)."""
    s = math.sqrt(max(0.0, 1 - c * c))
    a = math.sqrt(q)

    def inner(z1):
        m = a * c * z1
        g = lambda z2: f(m + a * s * z2) * math.exp(-z2 * z2 / 2) / SQRT_2PI  # noqa: E731
        z0 = min(12.0, max(-12.0, -m / (a * s))) if s > 0 else 0.0
        return quad(g, -12, z0, epsabs=1e-14, limit=200)[0] + quad(g, z0, 12, epsabs=1e-14, limit=200)[0]

    outer = lambda z1: f(a * z1) * inner(z1) * math.exp(-z1 * z1 / 2) / SQRT_2PI  # noqa: E731
    return quad(outer, -12, 0, epsabs=1e-14, limit=200)[0] + quad(outer, 0, 12, epsabs=1e-14, limit=200)[0]


def _relu_cross(q, c):
    """Arc-cosine kernel of Cho & Saul (2009) for ReLU at equal variances."""
    return q * (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / (2 * math.pi)


FUNCTIONS = {
    "tanh": (
        math.tanh,
        lambda x: 1 / math.cosh(x) ** 2 if abs(x) < 300 else 0.0,
        lambda q, c: _gauss2(math.tanh, q, c),
    ),
    "relu": (lambda x: max(x, 0.0), lambda x: float(x > 0), _relu_cross),
}
BLOCK_OPS = {"reduced": "AD", "two_layer": "ADAD", "mlp": "DAD"}


def _reference(activation, sw2, sb2, depth, q0, c0, alpha, block, norm, position):
    """The recursions of the module docstring, written out with scalar quadrature."""
    phi, dphi, cross = FUNCTIONS[activation]
    q, lam, chis, qs, cs = q0, q0 * c0, [], [q0], [c0]
    for _ in range(depth):
        bq, blam = (1.0, lam / q) if norm and position == "pre" else (q, lam)
        x = 1.0
        for op in BLOCK_OPS[block]:
            if op == "A":
                c = max(-1.0, min(1.0, blam / bq))
                x *= _gauss(lambda u: dphi(u) ** 2, bq)
                bq, blam = _gauss(lambda u: phi(u) ** 2, bq), cross(bq, c)
            else:
                bq, blam, x = sw2 * bq + sb2, sw2 * blam + sb2, x * sw2
        if norm and position == "pre":
            x /= q
        sq, slam = q + alpha**2 * bq, lam + alpha**2 * blam
        chi = 1 + alpha**2 * x
        if norm and position == "post":
            q, lam, chi = 1.0, slam / sq, chi / sq
        else:
            q, lam = sq, slam
        qs.append(q)
        cs.append(lam / q)
        chis.append(chi)
    growth = np.concatenate([[1.0], np.cumprod(chis)])
    return np.array(qs), np.array(cs), growth[-1] / growth


@pytest.mark.parametrize(
    "activation, block, norm, position, alpha",
    [
        ("tanh", "reduced", None, "pre", 1.0),
        ("tanh", "two_layer", None, "pre", 0.7),
        ("tanh", "mlp", "layer", "pre", 1.0),
        ("tanh", "reduced", "rms", "post", 1.0),
        ("relu", "two_layer", None, "pre", 0.5),
        ("relu", "mlp", "layer", "post", 1.0),
    ],
)
def test_recursions_match_independent_quadrature(activation, block, norm, position, alpha):
    """10 blocks from q0 = 1.3, c0 = 0.4 (tanh reaches q ~ 12): q, c and the gradient growth agree with
    scipy.quad-based recursions to 1e-8 relative (1e-8 absolute for c)."""
    depth, sw2, sb2 = 10, 1.4, 0.1
    prop = residual_propagation(
        activation, sw2, sb2, depth, 1.3, 0.4, alpha=alpha, block=block, norm=norm, norm_position=position
    )
    q, c, grad = _reference(activation, sw2, sb2, depth, 1.3, 0.4, alpha, block, norm, position)
    np.testing.assert_allclose(prop.q, q, rtol=1e-8)
    np.testing.assert_allclose(prop.c, c, rtol=0, atol=1e-8)
    np.testing.assert_allclose(prop.grad_growth, grad, rtol=1e-8)
    assert prop.grad_growth[-1] == 1.0 and prop.growth[0] == 1.0


def test_large_variance_tanh_matches_quadrature():
    """The split Gauss-Legendre rule that takes over at q > 16: 60 reduced blocks reach q ~ 100."""
    prop = residual_propagation("tanh", 1.8, 0.0, 60, 2.0, 0.7)
    q, c, grad = _reference("tanh", 1.8, 0.0, 60, 2.0, 0.7, 1.0, "reduced", None, "pre")
    assert q[-1] > 90
    np.testing.assert_allclose(prop.q, q, rtol=1e-8)
    np.testing.assert_allclose(prop.c, c, atol=1e-8)
    np.testing.assert_allclose(prop.grad_growth, grad, rtol=1e-8)


def test_parameter_grids_broadcast():
    sw2 = np.array([[0.5], [1.0], [2.0]])
    alpha = np.array([0.3, 1.0])
    prop = residual_propagation("tanh", sw2, 0.05, 20, 1.0, alpha=alpha)
    assert prop.q.shape == (21, 3, 2) and prop.chi.shape == (20, 3, 2)
    one = residual_propagation("tanh", 1.0, 0.05, 20, 1.0, alpha=0.3)
    np.testing.assert_allclose(prop.q[:, 1, 0], one.q, rtol=1e-13)
    np.testing.assert_allclose(prop.grad_growth[:, 1, 0], one.grad_growth, rtol=1e-13)
    assert np.all(np.diff(prop.end_to_end, axis=0) > 0)  # larger sigma_w2, larger growth


# ------------------------------------------------------------------------------------ Monte Carlo


def _norm_forward(x, kind):
    if kind == "layer":
        centred = x - x.mean(axis=-1, keepdims=True)
        scale = np.sqrt(np.mean(centred**2, axis=-1, keepdims=True))
        return centred / scale, scale
    scale = np.sqrt(np.mean(x**2, axis=-1, keepdims=True))
    return x / scale, scale


def _norm_backward(g, n, scale, kind):
    out = g - n * np.mean(g * n, axis=-1, keepdims=True)
    if kind == "layer":
        out = out - np.mean(g, axis=-1, keepdims=True)
    return out / scale


def _monte_carlo(
    activation, sw2, sb2, depth, q0, c0, alpha, block, norm, position, width, nets, seed, pairs=16
):
    """Per net: q_l (mean over 2 * pairs inputs), c_l (mean over the pairs, each starting at q0, c0) and the
    squared-gradient growth |g_l|^2 / |g_L|^2 of a width-``width`` numpy network under a random read-out (4
    Gaussian directions per input). Exact backpropagation through the same weights (no independence
    assumption)."""
    rng = np.random.default_rng(seed)
    phi = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0)}[activation]
    dphi = {"tanh": lambda x: 1 - np.tanh(x) ** 2, "relu": lambda x: (x > 0).astype(float)}[activation]
    out_q, out_c, out_g = [], [], []
    for _ in range(nets):
        frames = np.linalg.qr(rng.standard_normal((pairs, width, 2)))[0] * math.sqrt(q0 * width)
        first, second = frames[:, :, 0], frames[:, :, 1]
        h = np.concatenate([first, c0 * first + math.sqrt(1 - c0**2) * second])
        tape, qs, cs = [], [], []
        for _ in range(depth + 1):
            qs.append(float(np.mean(h**2)))
            a, b = h[:pairs], h[pairs:]
            cs.append(
                float(np.mean(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))
            )
            if len(tape) == depth:
                break
            record = {}
            x = h
            if norm and position == "pre":
                x, record["pre"] = _norm_forward(h, norm)
                record["pre_n"] = x
            steps = []
            for op in BLOCK_OPS[block]:
                if op == "A":
                    steps.append(("A", x))
                    x = phi(x)
                else:
                    w = rng.standard_normal((width, width), dtype=np.float32) * np.float32(
                        math.sqrt(sw2 / width)
                    )
                    steps.append(("D", w))
                    x = x @ w.T + rng.standard_normal(width) * math.sqrt(sb2)
            record["steps"] = steps
            h = h + alpha * x
            if norm and position == "post":
                h, record["post"] = _norm_forward(h, norm)
                record["post_n"] = h
            tape.append(record)
        g = rng.standard_normal((4, 2 * pairs, width))
        grads = [float(np.mean(np.sum(g**2, axis=-1)))]
        for record in reversed(tape):
            if "post" in record:
                g = _norm_backward(g, record["post_n"], record["post"], norm)
            branch = alpha * g
            for kind, value in reversed(record["steps"]):
                branch = branch @ value if kind == "D" else branch * dphi(value)
            if "pre" in record:
                branch = _norm_backward(branch, record["pre_n"], record["pre"], norm)
            g = g + branch
            grads.append(float(np.mean(np.sum(g**2, axis=-1))))
        grads = np.array(grads[::-1])
        out_q.append(qs)
        out_c.append(cs)
        out_g.append(grads / grads[-1])
    return np.array(out_q), np.array(out_c), np.array(out_g)


@pytest.mark.parametrize(
    "activation, block, norm, position, alpha, sw2, nets",
    [
        ("tanh", "reduced", None, "pre", 1.0, 1.5, 4),
        ("relu", "reduced", None, "pre", 0.3, 1.0, 6),
        ("tanh", "two_layer", None, "pre", 1.0, 1.2, 3),
        ("tanh", "mlp", "layer", "pre", 1.0, 1.0, 3),
        ("relu", "mlp", "rms", "pre", 1.0, 2.0, 4),
        ("tanh", "reduced", "layer", "post", 1.0, 1.5, 8),
    ],
)
def test_width_1000_networks_follow_the_recursions(activation, block, norm, position, alpha, sw2, nets):
    """3-6 nets of width 1000 and depth 20, 16 input pairs each (q0 = 1, c0 = 0.5): q within 5%, c within
    0.03 and the squared-gradient growth |g_l|^2 / |g_L|^2 within 10% at every block. The standard error of
    each Monte Carlo mean (over the nets) must be at most half the tolerance, so that the comparison can
    fail. ReLU nets get more nets: the mean of ReLU outputs is a direction shared by all inputs (W 1), so its
    finite-width fluctuation does not average out over inputs."""
    depth, width, sb2 = 20, 1000, 0.05
    q, c, g = _monte_carlo(
        activation, sw2, sb2, depth, 1.0, 0.5, alpha, block, norm, position, width, nets, 7
    )
    theory = residual_propagation(
        activation,
        sw2,
        sb2,
        depth,
        1.0,
        0.5,
        alpha=alpha,
        block=block,
        norm=norm,
        norm_position=position,
        width=width,
    )
    for name, mc, th, tol, relative in (
        ("q", q, theory.q, 0.05, True),
        ("c", c, theory.c, 0.03, False),
        ("grad growth", g, theory.grad_growth, 0.10, True),
    ):
        mean, se = mc.mean(0), mc.std(0, ddof=1) / math.sqrt(nets)
        error = np.abs(mean / th - 1) if relative else np.abs(mean - th)
        se = se / th if relative else se
        worst = int(np.argmax(error))
        assert error[worst] <= tol, (
            f"{name}: block {worst} error {error[worst]:.4f} (se {se[worst]:.4f}) > {tol}"
        )
        assert np.max(se) <= tol / 2, f"{name}: Monte Carlo standard error {np.max(se):.4f} too large"


# ------------------------------------------------------------------------------------ asymptotics, alpha


def test_tanh_gradient_growth_is_stretched_exponential():
    """log G(L) / sqrt(L) tends to gamma = 2 kappa sigma_w2 alpha^2 / sqrt(Q_inf); the relative gap to the
    leading-order law shrinks with depth (it is O(L^-1/2 log L))."""
    prop = residual_propagation("tanh", 1.0, 0.0, 1600, 1.0, correlations=False)
    law = residual_asymptotics("tanh", 1.0, 0.0)
    assert law.grad_rate == pytest.approx((8 / 3) / SQRT_2PI, rel=1e-6)  # kappa = (4/3) / sqrt(2 pi)
    log_g = np.log(prop.growth)
    slopes = [
        (log_g[b] - log_g[a]) / (math.sqrt(b) - math.sqrt(a)) / law.grad_rate
        for a, b in ((100, 400), (400, 1600))
    ]
    assert 0 < slopes[1] - 1 < slopes[0] - 1 < 0.05  # 1.041, 1.020: the O(L^-1/2) correction halves
    assert log_g[1600] / float(law.log_growth(1600)) == pytest.approx(1.0, abs=0.03)
    # q grows linearly: q_L / L -> sigma_w2 (tanh saturates)
    # q grows linearly, q_L / L -> sigma_w2, with an O(L^-1/2) deficit (1 - E[tanh^2] ~ 0.8 / sqrt(q))
    assert 0 < 1 - prop.q[1600] / 1600 < 1 - prop.q[400] / 400 < 0.1


def test_tanh_correlation_approaches_its_limit_polynomially():
    """sigma_b2 = 0: c -> 0 like L^-(1 - 2/pi); the log-log slope between 200 and 1600 blocks is within 0.03
    of the predicted exponent."""
    prop = residual_propagation("tanh", 1.0, 0.0, 1600, 1.0, 0.5)
    law = residual_asymptotics("tanh", 1.0, 0.0)
    assert law.c_star == pytest.approx(0.0, abs=1e-9) and law.c_rate == pytest.approx(
        1 - 2 / math.pi, rel=1e-6
    )
    slope = -math.log(prop.c[1600] / prop.c[200]) / math.log(8)
    assert slope == pytest.approx(law.c_rate, abs=0.03)


def test_relu_laws_are_exponential_and_pre_norm_is_a_power_law():
    relu = residual_propagation("relu", 2.0, 0.0, 50, 1.0, alpha=0.5)
    law = residual_asymptotics("relu", 2.0, 0.0, alpha=0.5)
    assert law.grad_law == law.q_law == "exponential"
    np.testing.assert_allclose(np.log(relu.growth), law.log_growth(np.arange(51)), rtol=1e-12)
    np.testing.assert_allclose(relu.q, 1.25 ** np.arange(51), rtol=1e-12)
    pre = residual_propagation("tanh", 1.0, 0.0, 3200, 1.0, norm="layer", correlations=False)
    law = residual_asymptotics("tanh", 1.0, 0.0, norm="layer")
    assert law.grad_law == "power" and law.grad_rate == pytest.approx(
        1.1781, abs=1e-3
    )  # E[phi'^2] / E[phi^2]
    assert math.log(pre.growth[3200]) == pytest.approx(float(law.log_growth(3200)), rel=0.01)


def test_one_over_sqrt_depth_branch_scale_bounds_the_growth():
    """alpha = 1 / sqrt(L): the end-to-end growth converges as L grows (ReLU: to e^(sigma_w2 / 2)); at
    alpha = 1 it diverges."""
    for activation, limit in (("relu", math.exp(1.0)), ("tanh", None)):
        ends = [
            float(
                residual_propagation(
                    activation, 2.0, 0.0, L, 1.0, alpha=1 / math.sqrt(L), correlations=False
                ).end_to_end
            )
            for L in (100, 400, 1600)
        ]
        assert abs(ends[2] / ends[1] - 1) < abs(ends[1] / ends[0] - 1) + 1e-12
        assert ends[2] < 3.0
        if limit is not None:
            assert ends[2] == pytest.approx(limit, rel=2e-3)
    unscaled = residual_propagation("tanh", 2.0, 0.0, 400, 1.0, correlations=False).end_to_end
    assert unscaled > 1e8


def test_branch_scale_hits_the_target_growth():
    for kwargs in ({}, {"block": "two_layer"}, {"norm": "layer"}):
        alpha = branch_scale("tanh", 1.5, 0.05, 200, 1.0, growth=3.0, **kwargs)
        prop = residual_propagation("tanh", 1.5, 0.05, 200, 1.0, alpha=alpha, correlations=False, **kwargs)
        assert float(prop.end_to_end) == pytest.approx(3.0, rel=1e-8)
    assert int(residual_propagation("relu", 2.0, 0.0, 10, 1.0).depth_exceeding(10.0)) == 4  # 2^4 = 16
    assert int(residual_propagation("relu", 2.0, 0.0, 3, 1.0).depth_exceeding(10.0)) == -1


# ------------------------------------------------------------------------------------ errors


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="block must be one of"):
        residual_propagation("tanh", 1.0, 0.0, 5, 1.0, block="bottleneck")
    with pytest.raises(ValueError, match="norm must be one of"):
        residual_propagation("tanh", 1.0, 0.0, 5, 1.0, norm="batch")
    with pytest.raises(ValueError, match="norm_position must be one of"):
        residual_propagation("tanh", 1.0, 0.0, 5, 1.0, norm="layer", norm_position="middle")
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        residual_propagation("tanh", 1.0, 0.0, 0, 1.0)
    with pytest.raises(ValueError, match=r"c0 must lie in \[-1.0, 1.0\]"):
        residual_propagation("tanh", 1.0, 0.0, 5, 1.0, 1.5)
    with pytest.raises(ValueError, match="q0 must be > 0"):
        residual_propagation("tanh", 1.0, 0.0, 5, 0.0)
    with pytest.raises(ValueError, match="width must be an integer >= 3"):
        residual_propagation("tanh", 1.0, 0.0, 5, 1.0, norm="layer", width=2)
    with pytest.raises(ValueError, match="growth must be > 1"):
        branch_scale("tanh", 1.0, 0.0, 5, 1.0, growth=0.5)
    with pytest.raises(ValueError, match="not monotone"):
        branch_scale("tanh", 1.0, 0.0, 5, 1.0, norm="layer", norm_position="post")
    with pytest.raises(ValueError, match="no asymptotic law for activation 'gelu'"):
        residual_asymptotics("gelu", 1.0, 0.0)


def test_pre_layernorm_growth_excess_is_a_finite_width_effect():
    """Pre-LayerNorm tanh reduced stacks (alpha = 1, 64 blocks): finite networks exceed the recursion's
    gradient growth, and the excess shrinks as the width grows (within 5 % at width 1024, several times
    larger at width 128): a finite-width correction, not a missing term of the mean-field recursion."""
    depth, sb2 = 64, 0.05
    excess = {}
    for width, nets in ((128, 12), (1024, 4)):
        _, _, g = _monte_carlo(
            "tanh", 1.0, sb2, depth, 1.0, 0.5, 1.0, "reduced", "layer", "pre", width, nets, 3
        )
        theory = residual_propagation(
            "tanh", 1.0, sb2, depth, 1.0, 0.5, alpha=1.0, block="reduced", norm="layer", width=width
        )
        ratio = g[:, 0] / theory.grad_growth[0]  # the whole stack's growth |g_0|^2 / |g_L|^2
        excess[width] = (ratio.mean() - 1, ratio.std(ddof=1) / math.sqrt(nets))
    (small, small_se), (large, large_se) = excess[128], excess[1024]
    assert abs(large) <= 0.05 and large_se <= 0.025, excess
    assert small - large >= 3 * math.hypot(small_se, large_se), excess
