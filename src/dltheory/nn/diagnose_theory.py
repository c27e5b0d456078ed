"""Mean-field predictions for the layers of a traced model (used by :func:`dltheory.nn.diagnose.diagnose`).

A *segment* is a run of layers in which each layer takes a known elementwise activation of the previous
layer's output (see :func:`dltheory.nn.diagnose_trace.analyse_links`). Along a segment the mean-field
covariance maps (Poole et al. 2016, eqs. 3-5; Xiao et al. 2018, section 2 for convolutions) are iterated,
starting from the measured statistics of the segment's first input, with each layer's own parameters
inferred from its weights:

- ``sigma_w2 = fan_in * mean(W^2)``, ``sigma_b2 = mean(b^2)`` (0 without bias);
- for a convolution the kernel variance profile ``v_b = mean_{out,in} W[:, :, b]^2 / sum_b' (...)``.

Per input ``a`` and spatial position ``p`` the pre-activation variance follows
``Q_a^{l+1}(p) = sigma_w2 sum_b v_b E[phi(h_a^l(p + b))^2] + sigma_b2`` and, for a pair (a, b), the
covariance at equal positions ``Q_ab^{l+1}(p) = sigma_w2 sum_b v_b E[phi(h_a^l(p + b)) phi(h_b^l(p + b))] +
sigma_b2`` (the diagonal of ``Sigma^{l+1} = A_v * C(Sigma^l)`` in docs/xiao/theory.md, exact in expectation
over the weights; padding, stride and dilation are those of the layer; for ``nn.Linear`` the sum over taps
is the mean over features). The predicted ``q^l`` is the mean of ``Q_a^l(p)`` over inputs and positions and
``c^l = sum_p Q_ab(p) / sqrt(sum_p Q_a(p) sum_p Q_b(p))`` averaged over pairs, which is what the hooks
measure. The backward pass shrinks or grows the squared pre-activation gradient per link by
``chi^l = sigma_w2^{l+1} mean_{a,p} E[phi'(h_a^l(p))^2]`` (Schoenholz et al. 2017, eq. 5, at the layer's own
variance instead of q*), which is chi_1 once q^l has reached q*.

Gaussian expectations come from :mod:`dltheory.signalprop.kernels` (closed forms for the ReLU family and
erf, quadrature otherwise). For smooth activations at variances 1e-8 <= q <= 16 they are read from cubic
splines in log q through exact values on 2,048 points, and the correlated expectation is the Hermite
(Mehler) series ``sum_{k <= 256} a_k(q_1) a_k(q_2) c^k`` with the coefficients of
:func:`dltheory.core.gaussian.hermite_coefficients` interpolated the same way (maximum error 2e-6 relative
to ``sqrt(E[phi(u_1)^2] E[phi(u_2)^2])`` for tanh, checked against the 2-D quadrature in the tests): the
per-position maps of a convolution need thousands of values per layer. Kinked activations without a closed
form (hard tanh, SELU) need 2-D quadrature; on large maps their correlated expectation is evaluated at the
spatial mean of each pair's statistics (noted in the report).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from scipy.interpolate import CubicSpline
from torch import nn

from dltheory.core.activations import Activation, get_activation
from dltheory.core.gaussian import hermite_coefficients
from dltheory.nn.diagnose_trace import LayerTrace, Link
from dltheory.signalprop import critical_sigma_w2, fixed_point
from dltheory.signalprop.kernels import dual_kernel

#: variances at which the Gaussian moments and Hermite coefficients of smooth activations are tabulated
TABLE_Q = np.geomspace(1e-8, 16.0, 2048)
#: order of the Hermite (Mehler) series of the correlated expectation
TABLE_ORDER = 256
#: above this many (pair, position) values a slow activation's cross term uses spatial means per pair
SLOW_POINTS = 256
#: sigma_b2 recommended for bounded activations when the model has no bias variance: the authors' public
#: demo value (Xiao et al. 2018: sigma_w2 = 1.05, sigma_b2 = 2.01e-5 is on the tanh critical line)
DEFAULT_SIGMA_B2 = 2.01e-5


# ------------------------------------------------------------------------------------ layer parameters


@dataclass(frozen=True)
class LayerParams:
    """Mean-field parameters read off one layer's weights (see the module docstring)."""

    sigma_w2: float
    sigma_b2: float
    profile: np.ndarray | None


def layer_params(module: nn.Module) -> LayerParams:
    weight = torch.as_tensor(module.weight).detach().to(torch.float64)
    fan_in = int(weight.shape[1] * int(np.prod(weight.shape[2:], dtype=np.int64)))
    sigma_w2 = float(weight.square().mean()) * fan_in
    bias = getattr(module, "bias", None)
    sigma_b2 = float(bias.detach().to(torch.float64).square().mean()) if bias is not None else 0.0
    profile = None
    if weight.dim() > 2:
        taps = weight.square().mean(dim=(0, 1))
        total = float(taps.sum())
        profile = (taps / total).cpu().numpy() if total > 0 else np.full(taps.shape, 1.0 / taps.numel())
    return LayerParams(sigma_w2, sigma_b2, profile)


# ------------------------------------------------------------------------------------ Gaussian maps


@dataclass(frozen=True)
class _Tables:
    """Cubic splines in log q of E[phi^2], E[phi'^2] and the Hermite coefficients a_0..a_K on
    :data:`TABLE_Q`."""

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


class GaussianMaps:
    """E[phi^2], E[phi'^2] at variance q and E[phi(u_1) phi(u_2)] for correlated Gaussians, vectorised.

    For smooth registry activations values at ``TABLE_Q[0] <= q <= TABLE_Q[-1]`` come from cubic splines
    in log q through exact values on :data:`TABLE_Q` (built once per activation and process), and the
    correlated expectation from the Hermite series of order :data:`TABLE_ORDER` with spline-interpolated
    coefficients; other variances, kinked activations and closed forms use :mod:`dltheory.signalprop.kernels`
    directly. ``slow`` marks activations whose correlated expectation needs 2-D quadrature (kinks without a
    closed form: hard tanh, SELU), about 1-2 ms per point."""

    def __init__(self, activation: Activation):
        self.activation = activation
        self.kernel = dual_kernel(activation)
        smooth = not activation.kinks and activation.derivative_method == "exact"
        self.tables = _tables(activation.name, tuple(sorted(activation.params.items()))) if smooth else None
        self.slow = bool(activation.kinks) and not self.kernel.closed_form

    def _in_table(self, q: np.ndarray) -> np.ndarray:
        return (q >= TABLE_Q[0]) & (q <= TABLE_Q[-1])

    def moments(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(q, dtype=np.float64)
        if self.tables is None or self.kernel.closed_form:
            m, _, d = self.kernel.moments(q)
            return np.asarray(m), np.asarray(d)
        m, d = np.empty(q.shape), np.empty(q.shape)
        inside = self._in_table(q)
        values = self.tables.moments(np.log(q[inside]))
        m[inside], d[inside] = values[..., 0], values[..., 1]
        if np.any(~inside):
            m_out, _, d_out = self.kernel.moments(q[~inside])
            m[~inside], d[~inside] = m_out, d_out
        return m, d

    def cross(self, q1: np.ndarray, q2: np.ndarray, c: np.ndarray) -> np.ndarray:
        q1, q2, c = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (q1, q2, c)))
        if self.tables is None or self.kernel.closed_form:
            return np.asarray(self.kernel.cross(q1, q2, c)[0])
        out = np.empty(q1.shape)
        inside = self._in_table(q1) & self._in_table(q2)
        a1 = self.tables.hermite(np.log(q1[inside]))
        a2 = self.tables.hermite(np.log(q2[inside]))
        out[inside] = np.sum(a1 * a2 * c[inside][:, None] ** np.arange(TABLE_ORDER + 1), axis=-1)
        if np.any(~inside):
            out[~inside] = self.kernel.cross(q1[~inside], q2[~inside], c[~inside])[0]
        return out


def _positions(trace: LayerTrace) -> tuple[int, ...]:
    """Spatial (or sequence) positions of a layer's input: the axes that are neither batch nor feature."""
    if isinstance(trace.module, nn.Linear):
        return trace.input_shape[1:-1]
    return trace.input_shape[2:]


def _adapt(maps: np.ndarray, positions: tuple[int, ...]) -> np.ndarray:
    """Maps over the previous layer's positions, as seen by the next layer: kept when the positions agree,
    else averaged (channels are exchangeable in the mean field) and spread evenly (e.g. a flatten)."""
    if maps.shape[1:] == positions:
        return maps
    mean = maps.reshape(maps.shape[0], -1).mean(axis=1)
    return np.broadcast_to(mean.reshape((-1,) + (1,) * len(positions)), (maps.shape[0],) + positions).copy()


_NUMPY_PAD = {"zeros": "constant", "circular": "wrap", "reflect": "reflect", "replicate": "edge"}


def _pad_widths(module: Any) -> list[tuple[int, int]]:
    """(before, after) padding per spatial axis, as ``nn.ConvNd`` pads (``padding="same"`` puts the odd
    pixel after)."""
    kernel, dilation = module.kernel_size, module.dilation
    if isinstance(module.padding, str):
        if module.padding == "valid":
            return [(0, 0)] * len(kernel)
        totals = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
        return [(t // 2, t - t // 2) for t in totals]
    return [(p, p) for p in module.padding]


def _spread(module: Any, maps: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """``sum_b v_b M(s p + d b)`` over the layer's own taps b, stride s, dilation d and padding mode."""
    widths = _pad_widths(module)
    padded = np.pad(maps, [(0, 0), *widths], mode=_NUMPY_PAD[module.padding_mode])  # type: ignore[call-overload]
    stride, dilation = module.stride, module.dilation
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


def _apply_layer(trace: LayerTrace, params: LayerParams, maps: np.ndarray) -> np.ndarray:
    if params.profile is None:
        return params.sigma_w2 * maps + params.sigma_b2
    return params.sigma_w2 * _spread(trace.module, maps, params.profile) + params.sigma_b2


# ------------------------------------------------------------------------------------ segments


@dataclass
class SegmentPrediction:
    """Mean-field curves along layers ``start..stop`` (inclusive); ``chi[i]`` belongs to the link
    ``start + i -> start + i + 1``. ``stopped`` names the layer where the prediction had to stop (a
    variance that is no longer finite), if any; ``approximated`` is True when a slow activation's
    correlated expectation was taken at the spatial mean of each pair's statistics."""

    start: int
    stop: int
    q: np.ndarray
    c: np.ndarray
    chi: np.ndarray
    stopped: str | None = None
    approximated: bool = False


def segments(links: list[Link], n_layers: int) -> list[tuple[int, int]]:
    """Maximal runs of layers joined by covered links, as (first, last) index pairs."""
    out, start = [], 0
    for link in links:
        if not link.covered:
            out.append((start, link.index))
            start = link.index + 1
    out.append((start, n_layers - 1))
    return out


def predict_segment(
    traces: list[LayerTrace],
    params: list[LayerParams],
    links: list[Link],
    span: tuple[int, int],
    pair_a: np.ndarray,
    pair_b: np.ndarray,
) -> SegmentPrediction:
    """Iterate the mean-field maps over the layers of ``span`` (see the module docstring)."""
    start, stop = span
    n = stop - start + 1
    q = np.full(n, np.nan)
    c = np.full(n, np.nan)
    chi = np.full(max(n - 1, 0), np.nan)
    diag = cross = None
    approximated = False
    for i in range(start, stop + 1):
        trace, p = traces[i], params[i]
        if i == start:
            m_diag, m_cross = trace.input_q_map, trace.input_pair_map
        else:
            activation = links[i - 1].activation
            assert activation is not None and diag is not None and cross is not None
            maps = GaussianMaps(activation)
            m_diag, d = maps.moments(diag)
            chi[i - 1 - start] = p.sigma_w2 * float(np.mean(d))
            qa, qb, qab = diag[pair_a], diag[pair_b], cross
            if maps.slow and qab.size > SLOW_POINTS:
                qa, qb, qab = (_spatial_mean(a) for a in (qa, qb, qab))
                approximated = True
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = np.clip(qab / np.sqrt(qa * qb), -1.0, 1.0)
            m_cross = np.broadcast_to(maps.cross(qa, qb, np.nan_to_num(corr)), cross.shape)
        positions = _positions(trace)
        diag = _apply_layer(trace, p, _adapt(np.asarray(m_diag), positions))
        cross = _apply_layer(trace, p, _adapt(np.asarray(m_cross), positions))
        if not (np.all(np.isfinite(diag)) and np.all(np.isfinite(cross))):
            return SegmentPrediction(start, stop, q, c, chi, stopped=trace.name, approximated=approximated)
        q[i - start] = float(diag.mean())
        flat_d = diag.reshape(diag.shape[0], -1).sum(axis=1)
        flat_x = cross.reshape(cross.shape[0], -1).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            c[i - start] = float(np.mean(flat_x / np.sqrt(flat_d[pair_a] * flat_d[pair_b])))
    return SegmentPrediction(start, stop, q, c, chi, approximated=approximated)


def _spatial_mean(maps: np.ndarray) -> np.ndarray:
    """Per-row mean over the positions, kept as a broadcastable array."""
    return maps.reshape(maps.shape[0], -1).mean(axis=1).reshape((-1,) + (1,) * (maps.ndim - 1))


# ------------------------------------------------------------------------------------ fixed point


@dataclass(frozen=True)
class Theory:
    """Mean-field quantities at the bulk parameters of a segment (Schoenholz et al. 2017; Xiao et al.
    2018, section 2): fixed point q*, c*, chi_1, chi_c, depth scales xi_q, xi_c, and the phase."""

    activation: str
    activation_params: dict[str, float]
    sigma_w2: float
    sigma_b2: float
    q_star: float
    c_star: float
    chi_1: float
    chi_c: float
    xi_q: float
    xi_c: float
    phase: str
    bounded: bool


def classify(chi: float, tol: float) -> str:
    """ "ordered" (chi < 1 - tol), "critical" (|chi - 1| <= tol) or "chaotic" (chi > 1 + tol)."""
    if chi < 1.0 - tol:
        return "ordered"
    if chi > 1.0 + tol:
        return "chaotic"
    return "critical"


def theory_at(activation: Activation, sigma_w2: float, sigma_b2: float, tol: float) -> Theory:
    """:class:`Theory` at (sigma_w2, sigma_b2). Without a finite fixed point (the variance grows without
    bound, e.g. ReLU with sigma_w2 > 2) chi_1 is that of a positively homogeneous activation, where it does
    not depend on q, and NaN otherwise."""
    kernel = dual_kernel(activation)
    fp = fixed_point(kernel, sigma_w2, sigma_b2, diverged="inf")
    bounded = bool(np.isfinite(fp.q_star))
    chi1 = float(fp.chi_1)
    if not bounded and kernel.homogeneous_gain is not None:
        chi1 = sigma_w2 * kernel.homogeneous_gain
    phase = classify(chi1, tol) if np.isfinite(chi1) else "unbounded"
    return Theory(
        activation.name,
        dict(activation.params),
        float(sigma_w2),
        float(sigma_b2),
        float(fp.q_star),
        float(fp.c_star),
        chi1,
        float(fp.chi_c),
        float(fp.xi_q),
        float(fp.xi_c),
        phase,
        bounded,
    )


def critical_parameters(activation: Activation, sigma_b2: float) -> tuple[float, float] | None:
    """A point (sigma_w2, sigma_b2) on the critical line chi_1 = 1 to recommend, or None if the activation
    has none. Positively homogeneous activations (ReLU family, linear) are critical only at sigma_b2 = 0.
    Others get the small-q* end of the line, sigma_b2 = :data:`DEFAULT_SIGMA_B2`, where orthogonal
    weights make the Jacobian spectrum concentrate (dynamical isometry; Pennington et al. 2017, Xiao et al.
    2018), or failing that the model's own sigma_b2."""
    kernel = dual_kernel(activation)
    candidates = [0.0] if kernel.homogeneous_gain is not None else [DEFAULT_SIGMA_B2, sigma_b2]
    for target in candidates:
        try:
            return float(critical_sigma_w2(kernel, target)), float(target)
        except ValueError:
            continue
    return None
