"""Mean-field signal propagation in deep fully-connected networks (numpy, float64, broadcasting).

Network: ``h^{l+1} = W^{l+1} phi(h^l) + b^{l+1}`` with ``W_ij ~ N(0, sigma_w2 / N)``,
``b_i ~ N(0, sigma_b2)``, infinite width. Equations (Poole et al. 2016, eqs. 3-5; Schoenholz et al. 2017,
eqs. 2-11; Xiao et al. 2018, section 2):

- length map ``q^{l+1} = sigma_w2 E_z[phi(sqrt(q^l) z)^2] + sigma_b2``, fixed point q*;
- covariance map ``q_ab' = sigma_w2 E[phi(u_a) phi(u_b)] + sigma_b2`` with (u_a, u_b) ~ N(0, [[q_aa, q_ab],
  [q_ab, q_bb]]); correlation map ``c' = q_ab' / sqrt(q_aa' q_bb')``, fixed point c*;
- ``chi_1 = sigma_w2 E[phi'(sqrt(q*) z)^2]`` (slope of the c-map at c = 1; mean squared singular value of
  one layer's input-output Jacobian); ordered if chi_1 < 1, chaotic if chi_1 > 1;
- ``chi_c = sigma_w2 E[phi'(u_1) phi'(u_2)]`` at (q*, c*) (slope of the c-map at c*);
- depth scales ``xi_q = -1 / log(sigma_w2 dE[phi^2]/dq |_{q*})`` (= -1/log(chi_1 + sigma_w2 E[phi'' phi]) for
  smooth phi) and ``xi_c = -1 / log(chi_c)``; xi_c is +inf on the critical line (and wherever the slope is
  within 1e-13 of 1, which float64 quadrature cannot tell from 1).

Definitions used where the literature is implicit:

- q* is the stable fixed point of the length map reached from O(1) inputs: q* = 0 when phi(0) = 0,
  sigma_b2 = 0 and sigma_w2 phi'(0)^2 <= 1; otherwise the root of q_map(q) = q bracketed between 0 and an
  upper bound (sigma_w2 sup phi^2 + sigma_b2 for bounded phi, found by doubling otherwise). When no finite
  fixed point exists (e.g. ReLU with sigma_w2 > 2 and sigma_b2 > 0, or sigma_w2 > 2 at sigma_b2 = 0) the
  functions raise :class:`NoFixedPointError`, or return inf with ``diverged="inf"``.
- c* is the attracting fixed point of the c-map (at q = q*) in [0, 1]: 1 in the ordered phase, the unique
  root of c_map(c) = c in [0, 1) in the chaotic phase (unique because the dual activation
  sum_k a_k^2 c^k has non-negative coefficients, hence is convex on [0, 1]).

Numerics: closed forms for the ReLU family and erf (exact to rounding); quadrature otherwise (relative error
<= 1e-12 for the 1-D moments of smooth activations, see :mod:`dltheory.core.gaussian`). In the chaotic phase
of smooth activations the c-map is evaluated as the Hermite series ``(sigma_w2 sum_k a_k(q*)^2 c^k +
sigma_b2) / q*`` truncated at ``series_order`` (default 200) terms; the neglected tail is bounded by
``sigma_w2 c^(K+1) (E[phi^2] - sum_k a_k^2) / q*`` and is below 1e-10 for tanh at q* <= 3.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dltheory.core.activations import Activation
from dltheory.core.gaussian import hermite_coefficients
from dltheory.core.validation import as_float_array, check_choice, check_int, check_positive
from dltheory.signalprop.kernels import DualKernel, dual_kernel
from dltheory.signalprop.phases import CRITICAL_TOL, classify_phase

ActivationLike = str | Activation | Any

Q_MAX = 1e12
SERIES_ORDER = 200
MARGINAL_TOL = 1e-13
_MAX_ITER = 200


class NoFixedPointError(ValueError):
    """The length map has no finite stable fixed point: the pre-activation variance grows without bound.

    A ``ValueError``, raised for example by ``q_star("relu", 3.0, 0.1)``; pass ``diverged="inf"`` to the
    functions that accept it to get ``inf`` instead.
    """


def _kernel(activation: ActivationLike) -> DualKernel:
    if isinstance(activation, DualKernel):
        return activation
    return dual_kernel(activation)


def _params(sigma_w2: object, sigma_b2: object) -> tuple[np.ndarray, np.ndarray]:
    sw2 = check_positive("sigma_w2", sigma_w2)
    sb2 = check_positive("sigma_b2", sigma_b2, allow_zero=True)
    return np.broadcast_arrays(sw2, sb2)  # type: ignore[return-value]


def _inverse_log(x: np.ndarray) -> np.ndarray:
    """-1 / log(x) for 0 <= x <= 1, with +inf at x >= 1 - MARGINAL_TOL (a marginal map, or one that cannot be
    told from marginal at the ~1e-13 accuracy of the quadrature)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore"):
        out = -1.0 / np.log(np.clip(x, 0.0, 1.0))
    return np.where(x >= 1.0 - MARGINAL_TOL, np.inf, out)


# ----------------------------------------------------------------------------------------------- maps


def q_map(activation: ActivationLike, q: object, sigma_w2: object, sigma_b2: object) -> np.ndarray:
    """One step of the length map ``q' = sigma_w2 E_z[phi(sqrt(q) z)^2] + sigma_b2``.

    Args:
        activation: an activation name (``"tanh"``, ``"relu"``, ``"erf"``, ...), an
            :class:`~dltheory.core.activations.Activation` or a vectorised callable.
        q: squared length of the pre-activations entering the layer (>= 0).
        sigma_w2: weight variance (times fan-in), > 0.
        sigma_b2: bias variance, >= 0.

    Returns:
        ``q'``, an array of the broadcast shape of ``q``, ``sigma_w2`` and ``sigma_b2``.

    References:
        Poole et al. (2016), eq. 3; Xiao et al. (2018), section 2. See docs/xiao/theory.md.

    Examples:
        >>> from dltheory.signalprop import q_map
        >>> float(q_map("tanh", 1.0, 1.5, 0.05))
        0.64144...
        >>> q_map("tanh", [0.5, 1.0, 2.0], 1.5, 0.05).shape
        (3,)
    """
    kernel = _kernel(activation)
    sw2, sb2 = _params(sigma_w2, sigma_b2)
    q_arr = check_positive("q", q, allow_zero=True)
    q_arr, sw2, sb2 = np.broadcast_arrays(q_arr, sw2, sb2)
    return sw2 * kernel.moments(q_arr)[0] + sb2


def covariance_map(
    activation: ActivationLike,
    q_aa: object,
    q_ab: object,
    q_bb: object,
    sigma_w2: object,
    sigma_b2: object,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One layer of the 2 x 2 covariance map of two inputs a and b.

    ``q_xy' = sigma_w2 E[phi(u_x) phi(u_y)] + sigma_b2`` with
    ``(u_a, u_b) ~ N(0, [[q_aa, q_ab], [q_ab, q_bb]])``.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        q_aa: squared length of input a.
        q_ab: covariance of the two inputs; ``|q_ab| <= sqrt(q_aa q_bb)``.
        q_bb: squared length of input b.
        sigma_w2: weight variance, > 0.
        sigma_b2: bias variance, >= 0.

    Returns:
        ``(q_aa', q_ab', q_bb')``, arrays of the broadcast shape.

    Raises:
        ValueError: when ``q_ab`` is not a valid covariance or a variance is negative.

    References:
        Poole et al. (2016), eqs. 3-4.

    Examples:
        >>> from dltheory.signalprop import covariance_map
        >>> [round(float(v), 4) for v in covariance_map("tanh", 1.0, 0.5, 1.0, 1.5, 0.05)]
        [0.6414, 0.3295, 0.6414]
    """
    kernel = _kernel(activation)
    sw2, sb2 = _params(sigma_w2, sigma_b2)
    qa = check_positive("q_aa", q_aa, allow_zero=True)
    qb = check_positive("q_bb", q_bb, allow_zero=True)
    qab = as_float_array("q_ab", q_ab)
    qa, qb, qab, sw2, sb2 = np.broadcast_arrays(qa, qb, qab, sw2, sb2)
    bound = np.sqrt(qa * qb)
    if np.any(np.abs(qab) > bound * (1.0 + 1e-12) + 1e-300):
        raise ValueError(f"q_ab must satisfy |q_ab| <= sqrt(q_aa q_bb) (a covariance), got q_ab={q_ab!r}")
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(bound > 0, np.clip(qab / np.where(bound > 0, bound, 1.0), -1.0, 1.0), 0.0)
    cross = kernel.cross(qa, qb, c)[0]
    new_a = sw2 * kernel.moments(qa)[0] + sb2
    new_b = sw2 * kernel.moments(qb)[0] + sb2
    return new_a, sw2 * cross + sb2, new_b


def c_map(
    activation: ActivationLike,
    c: object,
    sigma_w2: object,
    sigma_b2: object,
    *,
    q: object | None = None,
) -> np.ndarray:
    """One step of the correlation map for two inputs of equal length q (default ``q = q*``).

    ``c' = (sigma_w2 E[phi(u_1) phi(u_2)] + sigma_b2) / (sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2)`` with
    ``u_1, u_2`` Gaussians of variance q and correlation c.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        c: input correlation(s) in [-1, 1].
        sigma_w2: weight variance, > 0.
        sigma_b2: bias variance, >= 0.
        q: common squared length of both inputs; ``None`` uses the fixed point q*.

    Returns:
        The output correlation ``c'``, an array of the broadcast shape.

    References:
        Poole et al. (2016), eq. 5; Schoenholz et al. (2017), section 3.

    Examples:
        >>> from dltheory.signalprop import c_map
        >>> float(c_map("tanh", 0.5, 2.0, 0.05))
        0.51565...
        >>> float(c_map("tanh", 1.0, 2.0, 0.05))   # c = 1 is always a fixed point
        1.0
    """
    kernel = _kernel(activation)
    sw2, sb2 = _params(sigma_w2, sigma_b2)
    c_arr = as_float_array("c", c)
    if np.any(np.abs(c_arr) > 1.0):
        raise ValueError(f"c must lie in [-1, 1], got {c!r}")
    q_arr = q_star(kernel, sw2, sb2) if q is None else check_positive("q", q, allow_zero=True)
    c_arr, sw2, sb2, q_arr = np.broadcast_arrays(c_arr, sw2, sb2, q_arr)
    numerator = sw2 * kernel.cross(q_arr, q_arr, c_arr)[0] + sb2
    denominator = sw2 * kernel.moments(q_arr)[0] + sb2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 1.0)


# -------------------------------------------------------------------------------------- fixed points


def _length_upper_bound(kernel: DualKernel, sw2: np.ndarray, sb2: np.ndarray) -> np.ndarray:
    """A q_hi with q_map(q_hi) <= q_hi, or inf where none was found below Q_MAX."""
    bound = kernel.activation.bound
    if bound is not None:
        return sw2 * bound**2 + sb2 + 1e-300
    hi = np.maximum(1.0, 2.0 * (sw2 * kernel.moments(np.zeros_like(sw2))[0] + sb2))
    pending = np.ones(hi.shape, dtype=bool)
    while np.any(pending):
        idx = np.nonzero(pending)[0]
        g = sw2[idx] * kernel.moments(hi[idx])[0] + sb2[idx] - hi[idx]
        done = g < 0
        pending[idx[done]] = False
        grow = idx[~done]
        hi[grow] *= 4.0
        overflow = grow[hi[grow] > Q_MAX]
        hi[overflow] = np.inf
        pending[overflow] = False
    return hi


def _solve_q_star(kernel: DualKernel, sw2: np.ndarray, sb2: np.ndarray) -> np.ndarray:
    """Vectorised q* on flat arrays (inf where there is no finite stable fixed point)."""
    gain = kernel.homogeneous_gain
    if gain is not None:
        slope = sw2 * gain
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(slope < 1.0, sb2 / (1.0 - slope), np.inf)
        return np.where((sb2 == 0) & (slope <= 1.0), 0.0, q)
    m0, dm0, _ = kernel.moments(np.zeros(1))
    q = np.zeros(sw2.shape)
    trivial = (m0[0] == 0.0) & (sb2 == 0.0) & (sw2 * dm0[0] <= 1.0)
    idx = np.nonzero(~trivial)[0]
    if idx.size == 0:
        return q
    w, b = sw2[idx], sb2[idx]
    hi = _length_upper_bound(kernel, w, b)
    lo = np.zeros_like(hi)
    x = np.where(np.isfinite(hi), hi, 0.0)
    out = np.full(idx.shape, np.inf)
    active = np.nonzero(np.isfinite(hi))[0]
    for _ in range(_MAX_ITER):
        if active.size == 0:
            break
        m, dm, _ = kernel.moments(x[active])
        g = w[active] * m + b[active] - x[active]
        slope = w[active] * dm - 1.0
        positive = g > 0
        lo[active] = np.where(positive, x[active], lo[active])
        hi[active] = np.where(g < 0, x[active], hi[active])
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = x[active] - g / slope
        inside = (slope < 0) & (newton > lo[active]) & (newton < hi[active])
        step = np.where(inside, newton, 0.5 * (lo[active] + hi[active]))
        done = (g == 0) | (np.abs(step - x[active]) <= 4e-16 * np.maximum(x[active], 1e-300))
        done |= hi[active] - lo[active] <= 4e-16 * hi[active]
        out[active[done]] = np.where(g[done] == 0, x[active[done]], step[done])
        x[active] = step
        active = active[~done]
    out[active] = x[active]
    q[idx] = out
    return q


def q_star(
    activation: ActivationLike, sigma_w2: object, sigma_b2: object, *, diverged: str = "raise"
) -> np.ndarray:
    """Fixed point q* of the length map ``q = sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2``.

    Where several fixed points exist, q* is the stable one reached from inputs of order one (see the module
    docstring).

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_w2: weight variance(s), > 0; broadcasts with ``sigma_b2``.
        sigma_b2: bias variance(s), >= 0.
        diverged: ``"raise"`` raises :class:`NoFixedPointError` where no finite fixed point exists,
            ``"inf"`` returns +inf there.

    Returns:
        q*, an array of the broadcast shape of ``sigma_w2`` and ``sigma_b2``.

    Raises:
        NoFixedPointError: when the variance grows without bound and ``diverged="raise"``.

    References:
        Poole et al. (2016), eq. 3; Xiao et al. (2018), section 2. See docs/xiao/theory.md.

    Examples:
        >>> from dltheory.signalprop import q_star
        >>> float(q_star("tanh", 1.76095, 0.05))     # the tanh anchor of docs/xiao/theory.md
        0.5700...
        >>> q_star("relu", 3.0, 0.1, diverged="inf")
        array(inf)
    """
    check_choice("diverged", diverged, ["raise", "inf"])
    kernel = _kernel(activation)
    sw2, sb2 = _params(sigma_w2, sigma_b2)
    q = _solve_q_star(kernel, sw2.reshape(-1), sb2.reshape(-1)).reshape(sw2.shape)
    if diverged == "raise" and not np.all(np.isfinite(q)):
        bad = ~np.isfinite(q)
        raise NoFixedPointError(
            f"no finite fixed point of the length map for activation {kernel.activation.name!r} at "
            f"sigma_w2={sw2[bad].ravel()[:5].tolist()}, sigma_b2={sb2[bad].ravel()[:5].tolist()}: the "
            "variance grows without bound (for the ReLU family this happens when sigma_w2 (1 + slope^2) / 2 "
            ">= 1 and sigma_b2 > 0, or > 1); pass diverged='inf' to get inf instead"
        )
    return q


def chi_1(activation: ActivationLike, sigma_w2: object, sigma_b2: object) -> np.ndarray:
    """``chi_1 = sigma_w2 E[phi'(sqrt(q*) z)^2]``: the slope of the correlation map at c = 1.

    It is the mean squared singular value of one layer's input-output Jacobian: < 1 ordered (gradients
    vanish), > 1 chaotic (gradients explode), = 1 critical.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_w2: weight variance(s), > 0.
        sigma_b2: bias variance(s), >= 0.

    Returns:
        chi_1, an array of the broadcast shape.

    Raises:
        NoFixedPointError: where q* is not finite.

    References:
        Schoenholz et al. (2017), eq. 5; Xiao et al. (2018), eq. 2.7.

    Examples:
        >>> from dltheory.signalprop import chi_1
        >>> float(chi_1("tanh", 1.76095464, 0.05))   # on the critical line
        1.0000...
        >>> float(chi_1("relu", 2.0, 0.0))           # He initialisation
        1.0
    """
    kernel = _kernel(activation)
    sw2, sb2 = _params(sigma_w2, sigma_b2)
    q = q_star(kernel, sw2, sb2)
    return sw2 * kernel.moments(q)[2]


def _cmap_series(kernel: DualKernel, q: np.ndarray, sw2: np.ndarray, sb2: np.ndarray, order: int):  # type: ignore[no-untyped-def]
    """Hermite-series c-map and its slope at equal lengths q: returns (evaluate, rows) where
    ``evaluate(c, idx, r) -> (c', dc'/dc)`` uses the first r of ``rows`` terms.

    ``c' = sb2 / q + sum_k (sw2 / q) a_k(q)^2 c^k``; terms whose total contribution to the slope at c = 1
    is below 1e-16 are dropped; odd activations keep only odd k (Horner in c^2).
    """
    a = hermite_coefficients(kernel.activation, q, order)
    coeffs = (sw2 / q)[:, None] * a * a
    constant = sb2 / q + coeffs[:, 0]
    powers = np.arange(order + 1, dtype=np.float64)
    tail = np.cumsum((powers * coeffs).max(axis=0)[::-1])[::-1]
    kept = int(np.searchsorted(-tail, -1e-16))
    odd = kernel.activation.parity == "odd"
    ks = np.arange(1, max(kept, 2), 2 if odd else 1)
    table = np.ascontiguousarray(coeffs[:, ks].T)
    slope_table = table * ks[:, None]

    def evaluate(c: np.ndarray, idx: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
        block, slope_block = table[:rows, idx], slope_table[:rows, idx]
        x = c * c if odd else c
        value = np.zeros(idx.size)
        slope = np.zeros(idx.size)
        for row in range(min(rows, ks.size) - 1, -1, -1):
            value *= x
            value += block[row]
            slope *= x
            slope += slope_block[row]
        return constant[idx] + c * value, slope

    return evaluate, int(ks.size)


def _cmap_direct(kernel: DualKernel, q: np.ndarray, sw2: np.ndarray, sb2: np.ndarray):  # type: ignore[no-untyped-def]
    def evaluate(c: np.ndarray, idx: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
        k, kd = kernel.cross(q[idx], q[idx], c)
        return (sw2[idx] * k + sb2[idx]) / q[idx], sw2[idx] * kd

    return evaluate, 1


def _solve_c_star(
    kernel: DualKernel, q: np.ndarray, sw2: np.ndarray, sb2: np.ndarray, chi1: np.ndarray, order: int
) -> tuple[np.ndarray, np.ndarray]:
    """Flat arrays -> (c*, chi_c). Monotone iteration c <- max(c_map(c), Newton step) from c = 0, which
    stays below c* because c_map is increasing and convex on [0, 1]."""
    c = np.ones(q.shape)
    chi_c = chi1.copy()
    chaotic = np.nonzero((chi1 > 1.0 + 1e-13) & np.isfinite(q) & (q > 0))[0]
    if chaotic.size == 0:
        return c, chi_c
    if kernel.closed_form or not kernel.uses_hermite_series:
        evaluate, total = _cmap_direct(kernel, q[chaotic], sw2[chaotic], sb2[chaotic])
    else:
        evaluate, total = _cmap_series(kernel, q[chaotic], sw2[chaotic], sb2[chaotic], order)
    # A truncated series under-estimates the c-map (all terms are >= 0), so its fixed point is a lower
    # bound on c* and a valid start for the next, longer truncation: cheap stages first.
    stages = sorted({min(8, total), min(32, total), total})
    x = np.zeros(chaotic.size)
    for rows in stages:
        active = np.arange(chaotic.size)
        for _ in range(_MAX_ITER):
            if active.size == 0:
                break
            value, slope = evaluate(x[active], active, rows)
            g = value - x[active]
            with np.errstate(divide="ignore", invalid="ignore"):
                newton = np.where(slope < 1.0, x[active] - g / (slope - 1.0), -np.inf)
            step = np.clip(np.maximum(value, newton), x[active], 1.0)
            done = (np.abs(step - x[active]) <= 1e-15) | (g <= 0)
            x[active] = step
            active = active[~done]
    value, slope = evaluate(x, np.arange(chaotic.size), total)
    c[chaotic] = x
    chi_c[chaotic] = slope
    return c, chi_c


@dataclass(frozen=True)
class FixedPoint:
    """Mean-field quantities at (sigma_w2, sigma_b2), as returned by :func:`fixed_point`.

    Every field is an array of the broadcast shape of the parameters.

    Attributes:
        sigma_w2: weight variances.
        sigma_b2: bias variances.
        q_star: fixed point of the length map (inf where none is finite, with ``diverged="inf"``).
        c_star: fixed point of the correlation map (1 in the ordered phase).
        chi_1: slope of the correlation map at c = 1.
        chi_c: slope of the correlation map at c*.
        xi_q: depth scale of the length map.
        xi_c: depth scale of the correlation map (+inf on the critical line).
    """

    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    q_star: np.ndarray
    c_star: np.ndarray
    chi_1: np.ndarray
    chi_c: np.ndarray
    xi_q: np.ndarray
    xi_c: np.ndarray

    @property
    def bounded(self) -> np.ndarray:
        """True where a finite fixed point exists (elsewhere every other field is NaN)."""
        return np.isfinite(self.q_star)


def fixed_point(
    activation: ActivationLike,
    sigma_w2: object,
    sigma_b2: object,
    *,
    diverged: str = "raise",
    series_order: int = SERIES_ORDER,
) -> FixedPoint:
    """All fixed-point quantities in one vectorised pass: q*, c*, chi_1, chi_c, xi_q, xi_c.

    The equations are those of the module docstring (docs/xiao/theory.md states them with the papers'
    references). In the chaotic phase of smooth activations the correlation map is evaluated as its Hermite
    series truncated at ``series_order`` terms.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_w2: weight variance(s), > 0; broadcasts with ``sigma_b2``.
        sigma_b2: bias variance(s), >= 0.
        diverged: ``"raise"`` (default) or ``"inf"``: points without a finite fixed point then get
            ``q_star = inf`` and NaN in the other fields.
        series_order: number of Hermite terms of the c-map (default 200).

    Returns:
        A :class:`FixedPoint` of arrays of the broadcast shape.

    Raises:
        NoFixedPointError: where no finite fixed point exists and ``diverged="raise"``.

    References:
        Poole et al. (2016); Schoenholz et al. (2017), sections 2-3; Xiao et al. (2018), section 2.

    Examples:
        >>> from dltheory.signalprop import fixed_point
        >>> fp = fixed_point("tanh", 2.0, 0.05)      # chaotic: c* < 1
        >>> round(float(fp.q_star), 4), round(float(fp.c_star), 4), round(float(fp.chi_1), 4)
        (0.7218, 0.7441, 1.0477)
        >>> round(float(fp.xi_c), 2)
        25.21
    """
    check_int("series_order", series_order, minimum=1)
    kernel = _kernel(activation)
    sw2, sb2 = _params(sigma_w2, sigma_b2)
    shape = sw2.shape
    w, b = sw2.reshape(-1), sb2.reshape(-1)
    q = q_star(kernel, w, b, diverged=diverged)
    ok = np.isfinite(q)
    m, dm, d = kernel.moments(np.where(ok, q, 0.0))
    chi1 = np.where(ok, w * d, np.nan)
    dq_slope = np.where(ok, w * dm, np.nan)
    c, chic = _solve_c_star(kernel, q, w, b, np.where(ok, chi1, 0.0), series_order)
    c = np.where(ok, c, np.nan)
    chic = np.where(ok, chic, np.nan)
    xi_q = np.where(ok, _inverse_log(np.where(ok, dq_slope, 0.0)), np.nan)
    xi_c = np.where(ok, _inverse_log(np.where(ok, chic, 0.0)), np.nan)
    fields = [q, c, chi1, chic, xi_q, xi_c]
    return FixedPoint(sw2, sb2, *(f.reshape(shape) for f in fields))


def c_star(activation: ActivationLike, sigma_w2: object, sigma_b2: object) -> np.ndarray:
    """Fixed point c* of the correlation map at q = q* (1 in the ordered phase).

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_w2: weight variance(s), > 0.
        sigma_b2: bias variance(s), >= 0.

    Returns:
        c*, an array of the broadcast shape.

    References:
        Schoenholz et al. (2017), section 3.

    Examples:
        >>> from dltheory.signalprop import c_star
        >>> float(c_star("tanh", 1.0, 0.05)), round(float(c_star("tanh", 3.0, 0.05)), 4)
        (1.0, 0.2993)
    """
    return fixed_point(activation, sigma_w2, sigma_b2).c_star


def chi_c(activation: ActivationLike, sigma_w2: object, sigma_b2: object) -> np.ndarray:
    """``chi_c = sigma_w2 E[phi'(u_1) phi'(u_2)]`` at (q*, c*): the slope of the correlation map at c*.

    Equals chi_1 in the ordered phase, where c* = 1.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_w2: weight variance(s), > 0.
        sigma_b2: bias variance(s), >= 0.

    Returns:
        chi_c, an array of the broadcast shape.

    References:
        Schoenholz et al. (2017), eq. 9.

    Examples:
        >>> from dltheory.signalprop import chi_c
        >>> round(float(chi_c("tanh", 3.0, 0.05)), 4)
        0.8954
    """
    return fixed_point(activation, sigma_w2, sigma_b2).chi_c


def depth_scales(
    activation: ActivationLike, sigma_w2: object, sigma_b2: object
) -> tuple[np.ndarray, np.ndarray]:
    """Depth scales (xi_q, xi_c) of the length and correlation maps.

    ``xi_q = -1 / log(sigma_w2 dE[phi^2]/dq at q*)`` and ``xi_c = -1 / log(chi_c)``; xi_c is +inf on the
    critical line, never NaN.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_w2: weight variance(s), > 0.
        sigma_b2: bias variance(s), >= 0.

    Returns:
        ``(xi_q, xi_c)``, arrays of the broadcast shape.

    References:
        Schoenholz et al. (2017), eqs. 7 and 9.

    Examples:
        >>> from dltheory.signalprop import depth_scales
        >>> xi_q, xi_c = depth_scales("erf", [1.0, 1.5], 0.05)
        >>> xi_c.round(2)
        array([ 7.04, 32.34])
    """
    fp = fixed_point(activation, sigma_w2, sigma_b2)
    return fp.xi_q, fp.xi_c


def trainable_depth(
    activation: ActivationLike, sigma_w2: object, sigma_b2: object, *, factor: float = 6.0
) -> np.ndarray:
    """Heuristic maximal trainable depth ``factor * xi_c`` (the "6 xi_c" curve).

    An empirical rule of thumb that bounds the trainable region in Schoenholz et al. (2017), figure 5; not a
    theorem.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_w2: weight variance(s), > 0.
        sigma_b2: bias variance(s), >= 0.
        factor: multiple of xi_c (default 6).

    Returns:
        ``factor * xi_c``, an array of the broadcast shape (+inf on the critical line).

    References:
        Schoenholz et al. (2017), figure 5; Xiao et al. (2018), figure 2.

    Examples:
        >>> from dltheory.signalprop import trainable_depth
        >>> round(float(trainable_depth("tanh", 2.0, 0.05)), 1)
        151.3
    """
    factor_arr = check_positive("factor", factor)
    return factor_arr * depth_scales(activation, sigma_w2, sigma_b2)[1]


def phase(
    activation: ActivationLike, sigma_w2: object, sigma_b2: object, *, tol: float = CRITICAL_TOL
) -> np.ndarray:
    """The phase of each (sigma_w2, sigma_b2): "ordered", "critical" or "chaotic".

    "ordered" where chi_1 < 1 - tol, "chaotic" where chi_1 > 1 + tol, "critical" otherwise.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_w2: weight variance(s), > 0.
        sigma_b2: bias variance(s), >= 0.
        tol: half-width of the critical band around chi_1 = 1.

    Returns:
        A string array of the broadcast shape.

    References:
        Poole et al. (2016); Schoenholz et al. (2017).

    Examples:
        >>> from dltheory.signalprop import phase
        >>> phase("tanh", [1.0, 3.0], 0.05).tolist()
        ['ordered', 'chaotic']
        >>> str(phase("relu", 2.0, 0.0))
        'critical'
    """
    return classify_phase(chi_1(activation, sigma_w2, sigma_b2), tol)


# ------------------------------------------------------------------------------------ critical line


def _critical_bias(kernel: DualKernel, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Critical-line parametrisation by q*: sigma_w2 = 1 / E[phi'^2], sigma_b2 = q - sigma_w2 E[phi^2]."""
    m, _, d = kernel.moments(q)
    with np.errstate(divide="ignore"):
        sw2 = 1.0 / d
    return sw2, q - sw2 * m


def critical_sigma_w2(activation: ActivationLike, sigma_b2: object) -> np.ndarray:
    """The sigma_w2 with chi_1 = 1 at the given sigma_b2: the order-to-chaos transition.

    Solves, on the critical line parametrised by q*, ``sigma_b2(q) = q - E[phi^2](q) / E[phi'^2](q) =
    sigma_b2`` by vectorised bisection (64 halvings of a doubling bracket), then ``sigma_w2 = 1 / E[phi'^2]``
    at q*. For the ReLU family the line is the single point ``sigma_w2 = 2 / (1 + slope^2)`` at sigma_b2 = 0.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_b2: bias variance(s), >= 0.

    Returns:
        The critical sigma_w2, an array of the shape of ``sigma_b2``.

    Raises:
        ValueError: for the ReLU family at sigma_b2 > 0, or any activation without a critical point at that
            sigma_b2.

    References:
        Schoenholz et al. (2017), section 3; Xiao et al. (2018), section 2. See docs/xiao/theory.md.

    Examples:
        >>> from dltheory.signalprop import critical_sigma_w2
        >>> float(critical_sigma_w2("tanh", 0.05))   # the tanh anchor: 1.7610 at q* = 0.5700
        1.76095...
        >>> critical_sigma_w2("tanh", [0.0, 0.05]).round(4).tolist()
        [1.0, 1.761]
    """
    kernel = _kernel(activation)
    sb2 = check_positive("sigma_b2", sigma_b2, allow_zero=True)
    return _critical(kernel, sb2)[0]


def _critical(kernel: DualKernel, sb2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = sb2.reshape(-1)
    gain = kernel.homogeneous_gain
    if gain is not None:
        if np.any(flat > 0):
            raise ValueError(
                f"activation {kernel.activation.name!r} is critical only at sigma_b2 = 0 (sigma_w2 = "
                f"{1.0 / gain:g}); got sigma_b2={sb2!r}"
            )
        return np.full(sb2.shape, 1.0 / gain), np.zeros(sb2.shape)
    lo = np.zeros(flat.shape)
    hi = np.ones(flat.shape)
    pending = _critical_bias(kernel, hi)[1] < flat
    while np.any(pending):
        hi[pending] *= 2.0
        if np.any(hi > Q_MAX):
            raise ValueError(
                f"no critical sigma_w2 found for activation {kernel.activation.name!r} at sigma_b2={sb2!r} "
                f"(no q* <= {Q_MAX:g} on the critical line)"
            )
        pending = _critical_bias(kernel, hi)[1] < flat
    lo_bias = _critical_bias(kernel, lo)[1]
    if np.any(lo_bias > flat):
        raise ValueError(
            f"no critical sigma_w2 for activation {kernel.activation.name!r} at sigma_b2={sb2!r}: "
            "the critical "
            f"line starts at sigma_b2 = {float(np.max(lo_bias)):g}"
        )
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        below = _critical_bias(kernel, mid)[1] < flat
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    q = 0.5 * (lo + hi)
    sw2 = _critical_bias(kernel, q)[0]
    return sw2.reshape(sb2.shape), q.reshape(sb2.shape)


@dataclass(frozen=True)
class CriticalLine:
    """Points (sigma_w2, sigma_b2) with chi_1 = 1 and their fixed points q*, from :func:`critical_line`.

    Attributes:
        sigma_w2: critical weight variances.
        sigma_b2: the bias variances asked for.
        q_star: the fixed point q* at each critical point.
    """

    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    q_star: np.ndarray


def critical_line(activation: ActivationLike, sigma_b2: object) -> CriticalLine:
    """The critical line chi_1(sigma_w2, sigma_b2) = 1 sampled at the given sigma_b2 values.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_b2: bias variance(s), >= 0.

    Returns:
        A :class:`CriticalLine` with sigma_w2, sigma_b2 and q* of the shape of ``sigma_b2``.

    References:
        Schoenholz et al. (2017), figure 1; Xiao et al. (2018), section 2.

    Examples:
        >>> from dltheory.signalprop import critical_line
        >>> line = critical_line("tanh", [0.01, 0.05])
        >>> line.sigma_w2.round(4), line.q_star.round(4)
        (array([1.4242, 1.761 ]), array([0.2733, 0.57  ]))
    """
    kernel = _kernel(activation)
    sb2 = check_positive("sigma_b2", sigma_b2, allow_zero=True)
    sw2, q = _critical(kernel, sb2)
    return CriticalLine(sw2, sb2, q)


# ------------------------------------------------------------------------------------ phase diagram


@dataclass(frozen=True)
class PhaseDiagram:
    """Fixed-point quantities on a grid, from :func:`phase_diagram`.

    2-D arrays are indexed ``[i, j]`` for ``(sigma_w2[i], sigma_b2[j])``. Points without a finite fixed point
    have ``q_star = inf`` and NaN in the other fields.

    Attributes:
        activation: the activation's name.
        sigma_w2: the sigma_w2 grid (1-D).
        sigma_b2: the sigma_b2 grid (1-D).
        q_star: q* on the grid.
        c_star: c* on the grid.
        chi_1: chi_1 on the grid.
        chi_c: chi_c on the grid.
        xi_q: xi_q on the grid.
        xi_c: xi_c on the grid.
    """

    activation: str
    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    q_star: np.ndarray
    c_star: np.ndarray
    chi_1: np.ndarray
    chi_c: np.ndarray
    xi_q: np.ndarray
    xi_c: np.ndarray

    def phase(self, tol: float = CRITICAL_TOL) -> np.ndarray:
        """String array "ordered" / "critical" / "chaotic" ("unbounded" without a finite fixed point).

        Args:
            tol: half-width of the critical band around chi_1 = 1.

        Returns:
            A string array of the grid's shape.
        """
        return classify_phase(self.chi_1, tol, bounded=np.isfinite(self.q_star))


def phase_diagram(
    activation: ActivationLike,
    sigma_w2_grid: object,
    sigma_b2_grid: object,
    *,
    series_order: int = SERIES_ORDER,
) -> PhaseDiagram:
    """q*, c*, chi_1, chi_c, xi_q and xi_c on the grid ``sigma_w2_grid x sigma_b2_grid`` in one call.

    The chaotic-phase correlation maps use the Hermite (dual-activation) series, so the whole diagram costs
    one-dimensional quadratures plus polynomial evaluations.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_w2_grid: 1-D grid of weight variances (> 0).
        sigma_b2_grid: 1-D grid of bias variances (>= 0).
        series_order: number of Hermite terms of the c-map (default 200).

    Returns:
        A :class:`PhaseDiagram` with 2-D arrays of shape ``(len(sigma_w2_grid), len(sigma_b2_grid))``.

    References:
        Poole et al. (2016), figure 3; Schoenholz et al. (2017), figure 1.

    Examples:
        >>> import numpy as np
        >>> from dltheory.signalprop import phase_diagram
        >>> pd = phase_diagram("tanh", np.linspace(0.5, 4, 5), np.linspace(0, 0.3, 4))
        >>> pd.xi_c.shape
        (5, 4)
        >>> pd.phase()[:, 1].tolist()
        ['ordered', 'ordered', 'chaotic', 'chaotic', 'chaotic']
    """
    kernel = _kernel(activation)
    w = check_positive("sigma_w2_grid", sigma_w2_grid).reshape(-1)
    b = check_positive("sigma_b2_grid", sigma_b2_grid, allow_zero=True).reshape(-1)
    ww, bb = np.meshgrid(w, b, indexing="ij")
    fp = fixed_point(kernel, ww, bb, diverged="inf", series_order=series_order)
    return PhaseDiagram(
        kernel.activation.name, w, b, fp.q_star, fp.c_star, fp.chi_1, fp.chi_c, fp.xi_q, fp.xi_c
    )
