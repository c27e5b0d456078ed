"""How much of the difference between two inputs survives ``depth`` critical layers, and the fixed point q*
that keeps it (mean field, numpy only).

Two inputs whose pre-activations have variances ``q_a, q_b`` and covariance ``q_ab`` are mapped by each
layer through the covariance map (Poole et al. 2016, eqs. 3-4)::

    q_xy' = sigma_w2 E[phi(u_x) phi(u_y)] + sigma_b2,   (u_a, u_b) ~ N(0, [[q_a, q_ab], [q_ab, q_b]]).

On the critical line (chi_1 = 1) the correlation ``c = q_ab / sqrt(q_a q_b)`` still drifts to 1, but only
polynomially: near c = 1 the map is ``1 - c' = (1 - c) - kappa (1 - c)^2 + ...`` with a curvature
``kappa`` that grows with q*, so ``1 - c_L ~ 1 / (1 / (1 - c_0) + kappa L)``. The *survival*

    S_L = (1 - c_L) / (1 - c_0)

is the fraction of the inputs' decorrelation that is still there after L layers; a read-out on top of a
network with S_L ~ 0 sees the same features for every input. Xiao et al. (2018, section 4) make the same
point with the depth scales of the correlation map; for a delta-orthogonal convolution stack, which acts
on every spatial position with the same matrix, every pair of (image, position) points follows exactly
this map, so S_L predicts what reaches the pooled features (see the ``signalprop-survival`` experiment).

Choosing q*: S_L falls as q* grows (tanh is more nonlinear at larger pre-activations), so the largest q*
with ``S_L >= target`` is the most nonlinear network whose inputs stay distinguishable at depth L
(:func:`q_star_for_depth`).
"""

from __future__ import annotations

import numpy as np

from dltheory.core.gaussian import hermite_coefficients
from dltheory.core.validation import as_float_array, check_int, check_positive
from dltheory.signalprop.kernels import dual_kernel
from dltheory.signalprop.meanfield import ActivationLike, covariance_map
from dltheory.signalprop.spectrum import critical_point_for_q_star

#: Hermite terms of the settled c-map; at the small q* of deep critical networks they fall below 1e-16
#: long before this order (checked against the two-input covariance map in the tests)
SERIES_ORDER = 80


def correlation_survival(
    activation: ActivationLike,
    depths: object,
    sigma_w2: object,
    sigma_b2: object,
    q_a: object,
    q_b: object,
    q_ab: object,
) -> np.ndarray:
    """Survival ``S_L = (1 - c_L) / (1 - c_0)`` of pairs of inputs after each depth in ``depths``.

    Iterates the two-input covariance map from the layer-1 pre-activation covariance ``(q_a, q_ab, q_b)``
    (arrays broadcast together with ``sigma_w2`` and ``sigma_b2``: one call follows many pairs and
    parameter points at once).

    Args:
        activation: activation name or :class:`~dltheory.core.activations.Activation`.
        depths: increasing non-negative layer counts at which to report S.
        sigma_w2: weight variance.
        sigma_b2: bias variance.
        q_a: pre-activation variance of the first input at the first layer.
        q_b: pre-activation variance of the second input at the first layer.
        q_ab: their covariance at the first layer; ``|q_ab| < sqrt(q_a q_b)`` (distinct inputs).

    Returns:
        Array of shape ``(len(depths),) + broadcast shape``.

    Raises:
        ValueError: for decreasing or negative depths, or a pair that is already fully correlated.

    Examples:
        >>> from dltheory.signalprop import critical_point_for_q_star
        >>> sw2, sb2 = critical_point_for_q_star("tanh", 0.02)
        >>> s = correlation_survival("tanh", [0, 100, 1000], sw2, sb2, 0.02, 0.02, 0.01)
        >>> [round(float(v), 2) for v in s]
        [1.0, 0.97, 0.77]
    """
    layers = np.asarray(depths)
    if layers.ndim != 1 or layers.size == 0 or np.any(np.diff(layers) < 0) or np.any(layers < 0):
        raise ValueError(f"depths must be a non-empty increasing list of layer counts >= 0, got {depths!r}")
    qa, qb = check_positive("q_a", q_a), check_positive("q_b", q_b)
    qab = as_float_array("q_ab", q_ab)
    qa, qb, qab, sw2, sb2 = np.broadcast_arrays(qa, qb, qab, np.asarray(sigma_w2), np.asarray(sigma_b2))
    c0 = qab / np.sqrt(qa * qb)
    if np.any(c0 >= 1.0):
        raise ValueError("q_ab must be < sqrt(q_a q_b): the two inputs must not be fully correlated")
    out, done = [], 0
    a, ab, b = qa, qab, qb
    for depth in layers:
        for _ in range(int(depth) - done):
            a, ab, b = covariance_map(activation, a, ab, b, sw2, sb2)
        done = int(depth)
        out.append((1.0 - ab / np.sqrt(a * b)) / (1.0 - c0))
    return np.stack(out)


def settled_survival(activation: ActivationLike, depth: int, q_star: object, c0: object) -> np.ndarray:
    """Survival ``S_L`` of a pair that starts at the fixed point q* of the critical line with correlation
    ``c0`` (broadcast over ``q_star`` and ``c0``).

    The lengths stay at q*, so only the correlation moves, through the Hermite (dual-activation) series
    of the c-map at q* (Daniely et al. 2016; the c-map of Poole et al. 2016, eq. 5), evaluated by Horner's
    rule: cheap enough for 10,000 layers on a grid of q*.

    Args:
        activation: an activation with a smooth critical line (e.g. ``"tanh"``, ``"erf"``).
        depth: number of layers L.
        q_star: fixed point(s) on the critical line (:func:`critical_point_for_q_star` gives the weights).
        c0: correlation(s) at the first layer, in [0, 1).

    Returns:
        ``S_L`` with the broadcast shape of ``q_star`` and ``c0``.

    Examples:
        >>> [round(float(s), 2) for s in settled_survival("tanh", 10000, [0.02, 0.001], 0.5)]
        [0.23, 0.99]
    """
    layers = check_int("depth", depth, minimum=0)
    q = check_positive("q_star", q_star)
    c = as_float_array("c0", c0)
    if np.any((c < 0.0) | (c >= 1.0)):
        raise ValueError(f"c0 must lie in [0, 1), got {c0!r}")
    q, c = np.broadcast_arrays(q, c)
    sw2, sb2 = critical_point_for_q_star(activation, q)
    coefficients = hermite_coefficients(dual_kernel(activation).activation, q, SERIES_ORDER) ** 2
    coefficients *= (sw2 / q)[..., None]
    current = c.astype(np.float64).copy()
    for _ in range(layers):
        value = np.zeros_like(current)
        for k in range(SERIES_ORDER, -1, -1):
            value = value * current + coefficients[..., k]
        current = sb2 / q + value
    return (1.0 - current) / (1.0 - c)


def q_star_for_depth(
    activation: ActivationLike,
    depth: int,
    *,
    target: float = 0.99,
    c0: float = 0.5,
    q_stars: object = None,
) -> float:
    """The largest q* on the critical line whose survival after ``depth`` layers is at least ``target``.

    The pair starts settled at the fixed point (``q_a = q_b = q*``, correlation ``c0``), where the lengths
    stay at q* and the correlation follows the dual-activation series ``c' = sigma_b2 / q* +
    (sigma_w2 / q*) sum_k a_k(q*)^2 c^k`` (:func:`settled_survival`); S_L decreases with q*, so the answer
    is found on a log-spaced grid of ``q_stars`` (default 64 values in [1e-5, 1]) and refined by
    log-linear interpolation between the grid points that bracket ``target``.

    Args:
        activation: activation name (must have a critical line with small q*, e.g. tanh, erf).
        depth: number of layers.
        target: required survival in (0, 1).
        c0: correlation of the two inputs at the first layer, in [0, 1).
        q_stars: the grid of candidate q* (increasing).

    Returns:
        q* (float). Raises ValueError if even the smallest candidate misses the target.

    Examples:
        >>> round(q_star_for_depth("tanh", 10000), 4)  # keeps 99% of the decorrelation
        0.0011
        >>> round(q_star_for_depth("tanh", 10000, target=0.9), 4)
        0.0037
    """
    layers = check_int("depth", depth, minimum=1)
    goal = float(check_positive("target", target))
    if not goal < 1.0:
        raise ValueError(f"target must lie in (0, 1), got {target!r}")
    if not 0.0 <= c0 < 1.0:
        raise ValueError(f"c0 must lie in [0, 1), got {c0!r}")
    grid = np.geomspace(1e-5, 1.0, 64) if q_stars is None else check_positive("q_stars", q_stars)
    if grid.ndim != 1 or np.any(np.diff(grid) <= 0):
        raise ValueError(f"q_stars must be an increasing 1-D grid, got {q_stars!r}")
    sw2, sb2 = critical_point_for_q_star(activation, grid)
    survival = settled_survival(activation, layers, grid, c0)
    above = np.nonzero(survival >= goal)[0]
    if above.size == 0:
        raise ValueError(
            f"no q* in [{grid[0]:.3g}, {grid[-1]:.3g}] keeps survival >= {goal} after {layers} layers "
            f"(best {survival.max():.3g}); lower the target or extend q_stars"
        )
    last = int(above[-1])
    if last == grid.size - 1:
        return float(grid[-1])
    # S decreases in q*: interpolate log q* linearly in S between the bracketing grid points
    s_hi, s_lo = survival[last], survival[last + 1]
    t = (s_hi - goal) / (s_hi - s_lo)
    return float(np.exp(np.log(grid[last]) + t * (np.log(grid[last + 1]) - np.log(grid[last]))))
