"""Mean-field maps for a chain of *given* layers, each with its own parameters (numpy, float64).

The fixed-point theory of :mod:`dltheory.signalprop.meanfield` describes a network whose layers all share
(sigma_w2, sigma_b2). A real model does not: its first layer sees data, its read-out is initialised
differently, its convolutions pad, stride and dilate. This module iterates the same maps layer by layer,
with each layer's own parameters, starting from measured input statistics; it is what
:func:`dltheory.diagnose` predicts a model's q^l, c^l and gradient growth with.

A layer is described by :class:`ChainLayer`: ``sigma_w2 = fan_in E[W^2]``, ``sigma_b2 = E[b^2]``, and for
a convolution its kernel variance profile ``v_b`` (sum 1 over the taps b) and :class:`ConvGeometry`. Per
input ``a`` and spatial position ``p`` the pre-activation variance follows

    Q_a^{l+1}(p) = sigma_w2 sum_b v_b E[phi(h_a^l(s p + d b))^2] + sigma_b2

and for a pair (a, b) of inputs the covariance at equal positions

    Q_ab^{l+1}(p) = sigma_w2 sum_b v_b E[phi(h_a^l(s p + d b)) phi(h_b^l(s p + d b))] + sigma_b2,

with stride s, dilation d and the layer's padding (the diagonal of ``Sigma^{l+1} = A_v * C(Sigma^l)`` of
the convolutional mean field, Xiao et al. 2018, section 2; exact in expectation over the weights). For a
dense layer the sum over taps is the mean over features. The predicted ``q^l`` is the mean of
``Q_a^l(p)`` over inputs and positions and ``c^l = sum_p Q_ab(p) / sqrt(sum_p Q_a(p) sum_p Q_b(p))``
averaged over pairs. The squared gradient with respect to the pre-activations changes per link by

    chi^l = sigma_w2^{l+1} mean_{a,p} E[phi'(h_a^l(p))^2]

(Schoenholz et al. 2017, eq. 5, at the layer's own variance instead of q*), which is chi_1 once q^l has
reached q*.

Gaussian expectations come from :mod:`dltheory.signalprop.kernels` (closed forms for the ReLU family and
erf, quadrature otherwise). For smooth activations at variances 1e-8 <= q <= 16, :class:`GaussianMaps`
reads them from cubic splines in log q through exact values on 2,048 points, and the correlated
expectation is the Hermite (Mehler) series ``sum_{k <= 256} a_k(q_1) a_k(q_2) c^k`` with interpolated
coefficients (maximum error 2e-6 relative to ``sqrt(E[phi(u_1)^2] E[phi(u_2)^2])`` for tanh, checked against
2-D quadrature in the tests): the per-position maps of a convolution need thousands of values per layer.
Kinked activations without a closed form (hard tanh, SELU) need 2-D quadrature; on large maps their
correlated expectation is evaluated at the spatial mean of each pair's statistics (the result says so).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.interpolate import CubicSpline

from dltheory.core.activations import Activation, get_activation
from dltheory.core.gaussian import hermite_coefficients
from dltheory.core.validation import check_choice
from dltheory.signalprop.kernels import dual_kernel

#: variances at which the Gaussian moments and Hermite coefficients of smooth activations are tabulated
TABLE_Q = np.geomspace(1e-8, 16.0, 2048)
#: order of the Hermite (Mehler) series of the correlated expectation
TABLE_ORDER = 256
#: bound on the dropped tail of the Mehler series, relative to sqrt(E[phi(u_1)^2] E[phi(u_2)^2]): the
#: series stops early when every |c| is small enough (:func:`series_order`)
SERIES_TAIL = 1e-15
#: above this many (pair, position) values a slow activation's cross term uses spatial means per pair
SLOW_POINTS = 256
#: torch-style padding modes and the numpy ``np.pad`` modes that implement them
PAD_MODES = {"zeros": "constant", "circular": "wrap", "reflect": "reflect", "replicate": "edge"}


# ------------------------------------------------------------------------------------ Gaussian maps

#: breakpoints in x (where phi(x) changes fastest for saturating activations) and in z (the Gaussian's
#: own scale) of the piecewise Gauss-Legendre rule used at large variances
_SPLIT_X = np.array([-6.0, -2.0, 0.0, 2.0, 6.0])
_SPLIT_Z = np.array([-5.0, -3.0, -1.5, 1.5, 3.0, 5.0])
_SPLIT_LIMIT = 9.5
#: Gauss-Legendre nodes per piece: 8 gives <= 2e-6 absolute error for tanh at 10 <= q <= 5000 (the fast
#: rule of :class:`GaussianMaps`), 16 gives <= 4e-9 (the theory of :mod:`dltheory.signalprop.residual`)
FAST_NODES = 8
ACCURATE_NODES = 16


@lru_cache(maxsize=8)
def _legendre(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(nodes)


def _gauss_legendre_pieces(breaks: np.ndarray, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    t, w = _legendre(nodes)
    lo, hi = breaks[..., :-1, None], breaks[..., 1:, None]
    half = 0.5 * (hi - lo)
    z = lo + half * (t + 1.0)
    weights = half * w * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    shape = breaks.shape[:-1] + (-1,)
    return z.reshape(shape), weights.reshape(shape)


def _breaks(x_points: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """Sorted breakpoints [-L, x_points (clipped), extra, L] along a new last axis."""
    limit = _SPLIT_LIMIT
    inner = np.clip(np.nan_to_num(x_points, nan=limit, posinf=limit, neginf=-limit), -limit, limit)
    shape = inner.shape[:-1]
    parts = [
        np.full(shape + (1,), -limit),
        inner,
        np.broadcast_to(extra, shape + extra.shape),
        np.full(shape + (1,), limit),
    ]
    return np.sort(np.concatenate(parts, axis=-1), axis=-1)


def split_moments(
    activation: str | Activation, q: object, *, nodes: int = ACCURATE_NODES
) -> tuple[np.ndarray, np.ndarray]:
    """``(E[phi(sqrt(q) z)^2], E[phi'(sqrt(q) z)^2])`` by the piecewise Gauss-Legendre rule of
    :func:`split_cross` (1-D): cheap and accurate at any variance, for smooth activations.

    Examples:
        >>> m, d = split_moments("tanh", [1e6])
        >>> round(float(m[0]), 4), round(float(d[0] * 1e3), 4)  # 1 - O(q^-1/2); (4/3) / sqrt(2 pi q)
        (0.9992, 0.532)
    """
    act = get_activation(activation)
    q_arr = np.asarray(q, dtype=np.float64)
    a = np.sqrt(q_arr.reshape(-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        z, w = _gauss_legendre_pieces(_breaks(_SPLIT_X[None, :] / a[:, None], _SPLIT_Z), nodes)
    value, slope = act.values_and_derivs(a[:, None] * z)
    m = np.sum(w * value * value, axis=1).reshape(q_arr.shape)
    d = np.sum(w * slope * slope, axis=1).reshape(q_arr.shape)
    return m, d


def split_cross(
    activation: str | Activation, q1: object, q2: object, c: object, *, nodes: int = ACCURATE_NODES
) -> np.ndarray:
    """``E[phi(u_1) phi(u_2)]`` for ``u_1 = sqrt(q1) z_1``, ``u_2 = sqrt(q2) (c z_1 + sqrt(1 - c^2) z_2)``
    by piecewise Gauss-Legendre quadrature that stays cheap at large variances.

    The trapezoid rule of :mod:`dltheory.core.gaussian` needs a step ~1 / sqrt(q) in z for a saturating
    activation (thousands of nodes per axis at q ~ 1000, seconds per point in 2-D). Here both axes are
    split where ``u`` crosses x = 0, +-2, +-6 (where tanh-like functions bend) and at z = +-1.5, +-3, +-5
    (the Gaussian's own scale), with ``nodes`` Gauss-Legendre nodes per piece: every piece is analytic,
    so the rule converges geometrically at any q. Accuracy for tanh at 10 <= q <= 5000, all c, against
    48-node composite quadrature: 2e-6 (8 nodes), 4e-9 (16 nodes). Intended for smooth activations.

    Args:
        activation: name or Activation.
        q1: variance of the first input (> 0), broadcast with ``c``.
        q2: variance of the second input (> 0), broadcast with ``c``.
        c: correlations in [-1, 1].
        nodes: Gauss-Legendre nodes per piece.

    Returns:
        Array of the broadcast shape.

    Examples:
        >>> round(float(split_cross("tanh", 1e4, 1e4, 0.0)), 12)  # odd phi, independent inputs
        0.0
        >>> v = float(split_cross("tanh", 1e6, 1e6, 0.5))  # -> (2 / pi) arcsin(0.5) = 1 / 3 as q grows
        >>> abs(v - 1 / 3) < 1e-3
        True
    """
    act = get_activation(activation)
    q1a, q2a, ca = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (q1, q2, c)))
    shape = q1a.shape
    a1, a2, cc = np.sqrt(q1a.reshape(-1)), np.sqrt(q2a.reshape(-1)), np.clip(ca.reshape(-1), -1.0, 1.0)
    s = np.sqrt(np.maximum(0.0, 1.0 - cc * cc))
    with np.errstate(divide="ignore", invalid="ignore"):
        z1, w1 = _gauss_legendre_pieces(_breaks(_SPLIT_X[None, :] / a1[:, None], _SPLIT_Z), nodes)
        offset = (a2 * cc)[:, None] * z1
        scale = (a2 * s)[:, None, None]
        z2_points = (_SPLIT_X[None, None, :] - offset[:, :, None]) / scale
    z2, w2 = _gauss_legendre_pieces(_breaks(z2_points, _SPLIT_Z), nodes)
    inner = np.sum(w2 * act.fn(offset[:, :, None] + scale * z2), axis=2)
    out = np.sum(w1 * act.fn(a1[:, None] * z1) * inner, axis=1)
    return out.reshape(shape)


@dataclass(frozen=True)
class _Tables:
    moments: CubicSpline
    hermite: CubicSpline


@lru_cache(maxsize=16)
def _tables(name: str, params: tuple[tuple[str, float], ...]) -> _Tables:
    options: dict[str, Any] = dict(params)
    activation = get_activation(name, **options)
    kernel = dual_kernel(activation)
    log_q = np.log(TABLE_Q)
    m, _, d = kernel.moments(TABLE_Q)
    coefficients = hermite_coefficients(activation, TABLE_Q, TABLE_ORDER)
    return _Tables(
        CubicSpline(log_q, np.stack([m, d], axis=-1), axis=0), CubicSpline(log_q, coefficients, axis=0)
    )


def series_order(c: np.ndarray, tail: float = SERIES_TAIL) -> int:
    """The order K at which the Mehler series ``E[phi(u_1) phi(u_2)] = sum_k a_k(q_1) a_k(q_2) c^k`` can
    stop: by Cauchy-Schwarz and Parseval (``sum_k a_k(q)^2 = E[phi(sqrt(q) z)^2]``) the terms after K sum to
    at most ``|c|^(K+1) sqrt(E[phi(u_1)^2] E[phi(u_2)^2])``, so K is the smallest order with
    ``max |c|^(K+1) <= tail`` (:data:`TABLE_ORDER` at most)."""
    largest = float(np.max(np.abs(c))) if c.size else 0.0
    if largest <= 0.0:
        return 0
    if not largest < 1.0:  # also NaN
        return TABLE_ORDER
    return min(TABLE_ORDER, max(0, math.ceil(math.log(tail) / math.log(largest)) - 1))


def _powers(c: np.ndarray, order: int) -> np.ndarray:
    """``c[:, None] ** arange(order + 1)`` by repeated multiplication (``pow`` costs ten times more)."""
    powers = np.empty((c.size, order + 1))
    powers[:, 0] = 1.0
    powers[:, 1:] = c[:, None]
    return np.multiply.accumulate(powers, axis=1)


def _spline_prefix(spline: CubicSpline, x: np.ndarray, columns: int) -> np.ndarray:
    """The first ``columns`` components of a vector-valued cubic spline at points ``x`` inside its breaks
    (the same piecewise cubics scipy evaluates, without computing the other components)."""
    breaks = spline.x
    piece = np.clip(np.searchsorted(breaks, x, side="right") - 1, 0, breaks.size - 2)
    dx = (x - breaks[piece])[:, None]
    c = spline.c[:, piece, :columns]
    return ((c[0] * dx + c[1]) * dx + c[2]) * dx + c[3]


class GaussianMaps:
    """Vectorised ``E[phi(sqrt(q) z)^2]``, ``E[phi'(sqrt(q) z)^2]`` and ``E[phi(u_1) phi(u_2)]`` for
    ``(u_1, u_2)`` Gaussian with variances q_1, q_2 and correlation c.

    For smooth registry activations, values at ``TABLE_Q[0] <= q <= TABLE_Q[-1]`` come from cubic splines
    in log q through exact values on :data:`TABLE_Q` (built once per activation and process), and the
    correlated expectation from the Hermite series of order :data:`TABLE_ORDER` with spline-interpolated
    coefficients (stopped early when every |c| is small: :func:`series_order`); at other variances they use
    the piecewise Gauss-Legendre rules :func:`split_moments` and :func:`split_cross` (8 nodes per piece for
    the latter: 2e-6 absolute for tanh); kinked activations and closed forms use
    :mod:`dltheory.signalprop.kernels` directly. ``slow`` marks activations whose correlated expectation
    needs 2-D quadrature (kinks without a closed form: hard tanh, SELU), about 1-2 ms per point.

    Args:
        activation: name or :class:`~dltheory.core.activations.Activation`.

    Examples:
        >>> maps = GaussianMaps("relu")
        >>> m, d = maps.moments(np.array([2.0]))
        >>> float(m[0]), float(d[0])  # E[relu(u)^2] = q / 2, E[relu'(u)^2] = 1 / 2
        (1.0, 0.5)
        >>> round(float(maps.cross(1.0, 1.0, 0.0)), 6)  # E[relu(u1)] E[relu(u2)] = 1 / (2 pi)
        0.159155
    """

    def __init__(self, activation: str | Activation):
        activation = get_activation(activation)
        self.activation = activation
        self.kernel = dual_kernel(activation)
        smooth = not activation.kinks and activation.derivative_method == "exact"
        self.tables = _tables(activation.name, tuple(sorted(activation.params.items()))) if smooth else None
        self.slow = bool(activation.kinks) and not self.kernel.closed_form

    def _in_table(self, q: np.ndarray) -> np.ndarray:
        return (q >= TABLE_Q[0]) & (q <= TABLE_Q[-1])

    def moments(self, q: object) -> tuple[np.ndarray, np.ndarray]:
        """``(E[phi(sqrt(q) z)^2], E[phi'(sqrt(q) z)^2])`` elementwise over ``q``."""
        q = np.asarray(q, dtype=np.float64)
        if self.tables is None or self.kernel.closed_form:
            m, _, d = self.kernel.moments(q)
            return np.asarray(m), np.asarray(d)
        m, d = np.empty(q.shape), np.empty(q.shape)
        inside = self._in_table(q)
        values = self.tables.moments(np.log(q[inside]))
        m[inside], d[inside] = values[..., 0], values[..., 1]
        if np.any(~inside):
            m[~inside], d[~inside] = split_moments(self.activation, q[~inside])
        return m, d

    def cross(self, q1: object, q2: object, c: object) -> np.ndarray:
        """``E[phi(u_1) phi(u_2)]`` elementwise over the broadcast of ``q1``, ``q2``, ``c``."""
        q1, q2, c = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (q1, q2, c)))
        if self.tables is None or self.kernel.closed_form:
            return np.asarray(self.kernel.cross(q1, q2, c)[0])
        out = np.empty(q1.shape)
        inside = self._in_table(q1) & self._in_table(q2)
        c_in = c[inside]
        order = series_order(c_in)
        points = np.log(np.concatenate([q1[inside], q2[inside]]))
        if order < TABLE_ORDER // 4:  # a short prefix: evaluating only its columns is cheaper than scipy's
            coefficients = _spline_prefix(self.tables.hermite, points, order + 1)
        else:
            coefficients = self.tables.hermite(points)[:, : order + 1]
        a1, a2 = coefficients[: c_in.size], coefficients[c_in.size :]
        out[inside] = np.sum(a1 * a2 * _powers(c_in, order), axis=-1)
        if np.any(~inside):
            out[~inside] = split_cross(
                self.activation, q1[~inside], q2[~inside], c[~inside], nodes=FAST_NODES
            )
        return out


# ------------------------------------------------------------------------------------ layers


@dataclass(frozen=True)
class ConvGeometry:
    """How a convolution walks over its input: per spatial axis the stride, dilation and (before, after)
    padding, and the padding mode (``"zeros"``, ``"circular"``, ``"reflect"`` or ``"replicate"``)."""

    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    padding_mode: str = "zeros"

    def __post_init__(self) -> None:
        check_choice("padding_mode", self.padding_mode, list(PAD_MODES))
        if not len(self.stride) == len(self.dilation) == len(self.padding):
            raise ValueError(
                f"stride, dilation and padding must have one entry per spatial axis, got {self.stride}, "
                f"{self.dilation}, {self.padding}"
            )


@dataclass(frozen=True)
class ChainLayer:
    """One layer of a chain: ``sigma_w2 = fan_in E[W^2]``, ``sigma_b2 = E[b^2]``; for a convolution the
    kernel variance profile (array over the taps, sum 1) and its geometry; ``positions``: the spatial (or
    sequence) shape of the layer's input, the axes that are neither batch nor feature."""

    sigma_w2: float
    sigma_b2: float
    positions: tuple[int, ...] = ()
    profile: np.ndarray | None = None
    geometry: ConvGeometry | None = None

    def __post_init__(self) -> None:
        if (self.profile is None) != (self.geometry is None):
            raise ValueError("a convolution needs both profile and geometry (a dense layer neither)")


def spread(maps: np.ndarray, profile: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """``sum_b v_b M(s p + d b)`` over the taps b of a convolution with stride s, dilation d, padding.

    Args:
        maps: ``[rows, *positions]`` per-position values (e.g. second moments per input).
        profile: kernel variance profile over the taps, ``[*kernel_size]``.
        geometry: the convolution's stride, dilation, padding and padding mode.

    Returns:
        ``[rows, *output_positions]``: the layer's own convolution of ``maps`` with ``profile`` as kernel.

    Examples:
        >>> geometry = ConvGeometry((1,), (1,), ((1, 1),), "circular")
        >>> spread(np.array([[0.0, 3.0, 0.0]]), np.full(3, 1 / 3), geometry).tolist()
        [[1.0, 1.0, 1.0]]
    """
    widths = list(geometry.padding)
    padded = np.pad(maps, [(0, 0), *widths], mode=PAD_MODES[geometry.padding_mode])  # type: ignore[call-overload]
    stride, dilation = geometry.stride, geometry.dilation
    sizes = [
        (padded.shape[1 + axis] - dilation[axis] * (profile.shape[axis] - 1) - 1) // stride[axis] + 1
        for axis in range(profile.ndim)
    ]
    out = np.zeros((maps.shape[0], *sizes))
    for tap in np.ndindex(*profile.shape):
        window = tuple(
            slice(dilation[a] * tap[a], dilation[a] * tap[a] + stride[a] * (sizes[a] - 1) + 1, stride[a])
            for a in range(profile.ndim)
        )
        out += profile[tap] * padded[(slice(None), *window)]
    return out


def apply_layer(layer: ChainLayer, maps: np.ndarray) -> np.ndarray:
    """``sigma_w2 (spread of) maps + sigma_b2``: second moments of a layer's output from its input's."""
    if layer.profile is None or layer.geometry is None:
        return layer.sigma_w2 * maps + layer.sigma_b2
    return layer.sigma_w2 * spread(maps, layer.profile, layer.geometry) + layer.sigma_b2


def adapt_positions(maps: np.ndarray, positions: tuple[int, ...]) -> np.ndarray:
    """Maps over the previous layer's positions, as the next layer sees them: kept when the positions
    agree, else averaged (channels are exchangeable in the mean field) and spread evenly (e.g. a
    flatten)."""
    if maps.shape[1:] == positions:
        return maps
    mean = maps.reshape(maps.shape[0], -1).mean(axis=1)
    return np.broadcast_to(mean.reshape((-1,) + (1,) * len(positions)), (maps.shape[0],) + positions).copy()


def _spatial_mean(maps: np.ndarray) -> np.ndarray:
    return maps.reshape(maps.shape[0], -1).mean(axis=1).reshape((-1,) + (1,) * (maps.ndim - 1))


# ------------------------------------------------------------------------------------ chains


@dataclass
class ChainPrediction:
    """Mean-field curves along a chain of n layers: ``q[i]``, ``c[i]`` of layer i's output, ``chi[i]`` of
    the link i -> i + 1. ``stopped`` is the index of the layer where the prediction had to stop (a
    variance that is no longer finite), if any; ``approximated`` is True when a slow activation's
    correlated expectation was taken at the spatial mean of each pair's statistics."""

    q: np.ndarray
    c: np.ndarray
    chi: np.ndarray
    stopped: int | None = None
    approximated: bool = False


def propagate_chain(
    layers: Sequence[ChainLayer],
    activations: Sequence[str | Activation],
    input_q: np.ndarray,
    input_cross: np.ndarray,
    pair_a: np.ndarray,
    pair_b: np.ndarray,
) -> ChainPrediction:
    """Iterate the per-layer mean-field maps along ``layers`` joined by ``activations``.

    Args:
        layers: the n layers in order.
        activations: the n - 1 elementwise activations between consecutive layers.
        input_q: ``[inputs, *positions]`` mean square (over features) of the first layer's input.
        input_cross: ``[pairs, *positions]`` mean product of the inputs of each pair.
        pair_a: index of each pair's first input into ``input_q``'s first axis.
        pair_b: index of each pair's second input into ``input_q``'s first axis.

    Returns:
        :class:`ChainPrediction` (see the module docstring for the equations).

    References:
        Poole et al. 2016, eqs. 3-5; Schoenholz et al. 2017, eq. 5; Xiao et al. 2018, section 2.

    Examples:
        Two tanh layers at sigma_w2 = 1.5 from inputs of unit variance and correlation 0.5:

        >>> layer = ChainLayer(1.5, 0.0)
        >>> out = propagate_chain([layer, layer], ["tanh"], np.ones(2), np.array([0.5]), [0], [1])
        >>> round(float(out.q[0]), 6), round(float(out.c[0]), 6)
        (1.5, 0.5)
        >>> round(float(out.chi[0]), 4)  # 1.5 E[tanh'(sqrt(1.5) z)^2]
        0.5923
    """
    n = len(layers)
    if len(activations) != max(n - 1, 0):
        raise ValueError(f"activations must have len(layers) - 1 = {n - 1} entries, got {len(activations)}")
    pair_a, pair_b = np.asarray(pair_a, dtype=np.int64), np.asarray(pair_b, dtype=np.int64)
    q, c = np.full(n, np.nan), np.full(n, np.nan)
    chi = np.full(max(n - 1, 0), np.nan)
    diag = cross = None
    approximated = False
    with np.errstate(over="ignore", invalid="ignore"):
        for i, layer in enumerate(layers):
            if i == 0:
                m_diag = np.asarray(input_q, dtype=np.float64)
                m_cross = np.asarray(input_cross, dtype=np.float64)
            else:
                assert diag is not None and cross is not None
                maps = GaussianMaps(activations[i - 1])
                m_diag, d = maps.moments(diag)
                chi[i - 1] = layer.sigma_w2 * float(np.mean(d))
                qa, qb, qab = diag[pair_a], diag[pair_b], cross
                if maps.slow and qab.size > SLOW_POINTS:
                    qa, qb, qab = (_spatial_mean(a) for a in (qa, qb, qab))
                    approximated = True
                with np.errstate(invalid="ignore", divide="ignore"):
                    corr = np.clip(qab / np.sqrt(qa * qb), -1.0, 1.0)
                m_cross = np.broadcast_to(maps.cross(qa, qb, np.nan_to_num(corr)), cross.shape)
            diag = apply_layer(layer, adapt_positions(np.asarray(m_diag), layer.positions))
            cross = apply_layer(layer, adapt_positions(np.asarray(m_cross), layer.positions))
            if not (np.all(np.isfinite(diag)) and np.all(np.isfinite(cross))):
                return ChainPrediction(q, c, chi, stopped=i, approximated=approximated)
            q[i] = float(diag.mean())
            flat_d = diag.reshape(diag.shape[0], -1).sum(axis=1)
            flat_x = cross.reshape(cross.shape[0], -1).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                c[i] = float(np.mean(flat_x / np.sqrt(flat_d[pair_a] * flat_d[pair_b])))
    return ChainPrediction(q, c, chi, approximated=approximated)


def segments(covered: Sequence[bool], n_layers: int) -> list[tuple[int, int]]:
    """Maximal runs of layers joined by covered links, as (first, last) index pairs.

    Args:
        covered: for each of the ``n_layers - 1`` links, whether the theory covers it.
        n_layers: number of layers.

    Examples:
        >>> segments([True, False, True, True], 5)
        [(0, 1), (2, 4)]
    """
    if len(covered) != max(n_layers - 1, 0):
        raise ValueError(f"covered must have n_layers - 1 = {n_layers - 1} entries, got {len(covered)}")
    out, start = [], 0
    for index, ok in enumerate(covered):
        if not ok:
            out.append((start, index))
            start = index + 1
    out.append((start, n_layers - 1))
    return out
