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
sigma_b2`` (the diagonal of ``Sigma^{l+1} = A_v * C(Sigma^l)`` in THEORY.md section 1, exact in expectation
over the weights; padding, stride and dilation are those of the layer; for ``nn.Linear`` the sum over taps
is the mean over features). The predicted ``q^l`` is the mean of ``Q_a^l(p)`` over inputs and positions and
``c^l = sum_p Q_ab(p) / sqrt(sum_p Q_a(p) sum_p Q_b(p))`` averaged over pairs, which is what the hooks
measure. The backward pass shrinks or grows the squared pre-activation gradient per link by
``chi^l = sigma_w2^{l+1} mean_{a,p} E[phi'(h_a^l(p))^2]`` (Schoenholz et al. 2017, eq. 5, at the layer's own
variance instead of q*), which is chi_1 once q^l has reached q*.

Gaussian expectations come from :mod:`dltheory.signalprop.kernels` (closed forms for the ReLU family and
erf, quadrature otherwise). For smooth activations the correlated expectation uses the Hermite (Mehler)
series ``sum_{k <= K} a_k(q_1) a_k(q_2) c^k`` of :func:`dltheory.core.gaussian.hermite_coefficients`, with
K = 64 for variances up to 4 and K = 256 up to 16 (measured maximum error 5e-6 and 1.4e-6 relative to
``sqrt(E[phi(u_1)^2] E[phi(u_2)^2])`` for tanh, checked against the 2-D quadrature in the tests), because it
is ~50x faster on the per-position maps of convolutions; larger variances use the 2-D quadrature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dltheory.core.activations import Activation
from dltheory.core.gaussian import hermite_coefficients
from dltheory.nn.diagnose_trace import LayerTrace, Link
from dltheory.signalprop import critical_sigma_w2, fixed_point
from dltheory.signalprop.kernels import dual_kernel

#: (largest variance, series order) of the Hermite-series tiers for smooth activations; 2-D quadrature above
SERIES_TIERS = ((4.0, 64), (16.0, 256))
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


class GaussianMaps:
    """E[phi^2], E[phi'^2] at variance q and E[phi(u_1) phi(u_2)] for correlated Gaussians, vectorised."""

    def __init__(self, activation: Activation):
        self.activation = activation
        self.kernel = dual_kernel(activation)

    def moments(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m, _, d = self.kernel.moments(np.asarray(q, dtype=np.float64))
        return m, d

    def cross(self, q1: np.ndarray, q2: np.ndarray, c: np.ndarray) -> np.ndarray:
        q1, q2, c = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (q1, q2, c)))
        if self.kernel.closed_form or self.activation.kinks:
            return np.asarray(self.kernel.cross(q1, q2, c)[0])
        out = np.empty(q1.shape)
        largest = np.maximum(q1, q2)
        done = np.zeros(q1.shape, dtype=bool)
        for q_max, order in SERIES_TIERS:
            tier = ~done & (largest <= q_max)
            if np.any(tier):
                a1 = hermite_coefficients(self.activation, q1[tier], order)
                a2 = hermite_coefficients(self.activation, q2[tier], order)
                out[tier] = np.sum(a1 * a2 * c[tier][:, None] ** np.arange(order + 1), axis=-1)
                done |= tier
        if np.any(~done):
            out[~done] = self.kernel.cross(q1[~done], q2[~done], c[~done])[0]
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


def _spread(module: Any, maps: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """``sum_b v_b M(p + b)`` over the layer's own taps, stride, dilation and padding."""
    ndim = profile.ndim
    conv = (F.conv1d, F.conv2d, F.conv3d)[ndim - 1]
    t = torch.from_numpy(np.ascontiguousarray(maps)).unsqueeze(1)
    kernel = torch.from_numpy(np.ascontiguousarray(profile)).reshape((1, 1) + profile.shape)
    padding = module.padding
    if module.padding_mode != "zeros":
        t = F.pad(t, module._reversed_padding_repeated_twice, mode=module.padding_mode)
        padding = 0
    out = conv(t, kernel, None, module.stride, padding, module.dilation)
    return out[:, 0].numpy()


def _apply_layer(trace: LayerTrace, params: LayerParams, maps: np.ndarray) -> np.ndarray:
    if params.profile is None:
        return params.sigma_w2 * maps + params.sigma_b2
    return params.sigma_w2 * _spread(trace.module, maps, params.profile) + params.sigma_b2


# ------------------------------------------------------------------------------------ segments


@dataclass
class SegmentPrediction:
    """Mean-field curves along layers ``start..stop`` (inclusive); ``chi[i]`` belongs to the link
    ``start + i -> start + i + 1``. ``stopped`` names the layer where the prediction had to stop (a
    variance that is no longer finite), if any."""

    start: int
    stop: int
    q: np.ndarray
    c: np.ndarray
    chi: np.ndarray
    stopped: str | None = None


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
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = np.clip(cross / np.sqrt(diag[pair_a] * diag[pair_b]), -1.0, 1.0)
            m_cross = maps.cross(diag[pair_a], diag[pair_b], np.nan_to_num(corr))
        positions = _positions(trace)
        diag = _apply_layer(trace, p, _adapt(np.asarray(m_diag), positions))
        cross = _apply_layer(trace, p, _adapt(np.asarray(m_cross), positions))
        if not (np.all(np.isfinite(diag)) and np.all(np.isfinite(cross))):
            return SegmentPrediction(start, stop, q, c, chi, stopped=trace.name)
        q[i - start] = float(diag.mean())
        flat_d = diag.reshape(diag.shape[0], -1).sum(axis=1)
        flat_x = cross.reshape(cross.shape[0], -1).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            c[i - start] = float(np.mean(flat_x / np.sqrt(flat_d[pair_a] * flat_d[pair_b])))
    return SegmentPrediction(start, stop, q, c, chi)


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
