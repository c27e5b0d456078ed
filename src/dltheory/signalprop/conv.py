"""Mean-field theory of deep convolutional networks with circular padding (Xiao et al. 2018, section 2.2
and appendix; numpy only).

Layer ``h^{l+1}_{j,a} = sum_i sum_b w_ij(b) phi(h^l_{i,a+b}) + bias_j`` with
``w_ij(b) ~ N(0, sigma_w2 v_b / C)`` over C input channels, a kernel *variance profile* v over the taps b
(sum_b v_b = 1) and circular padding.
Over infinitely many channels the covariance of the pre-activations across spatial positions obeys
(Xiao et al. 2018, eqs. 2.4-2.6)::

    Sigma^{l+1} = A_v * C(Sigma^l),
    C(Sigma)_{a,a'} = sigma_w2 E_{h ~ N(0, Sigma)}[phi(h_a) phi(h_a')] + sigma_b2,
    [A_v * S]_{a,a'} = sum_b v_b S_{a+b, a'+b}        (positions mod the spatial size).

The fixed point is the fully-connected one (q* on the diagonal, q* c* off it). Linearised around it,
A_v is diagonal in the Fourier basis over the *joint* position a (for every lag a' - a) with eigenvalues
``lambda_m = sum_b v_b exp(2 pi i m.b / n)`` (the discrete Fourier transform of v), so a perturbation of the
correlations in spatial mode m is multiplied by ``chi_c lambda_m`` per layer and one of the variances by
``chi_q lambda_m`` with ``chi_q = sigma_w2 dE[phi^2]/dq`` at q*. Per-mode depth scales:
``xi_{c,m} = -1 / log(chi_c |lambda_m|)``, ``xi_{q,m} = -1 / log(chi_q |lambda_m|)``. The delta profile
(all variance on the centre tap) has lambda_m = 1 for every m: every spatial mode propagates as far as the
fully-connected signal. Non-delta profiles damp the non-zero modes even at criticality.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from dltheory.core.validation import as_float_array, check_choice, check_int, check_positive
from dltheory.signalprop.meanfield import ActivationLike, _inverse_log, _kernel, covariance_map, fixed_point

PROFILE_KINDS = ("delta", "uniform")


def variance_profile(spec: str | Any, kernel_size: int = 3, ndim: int = 2) -> np.ndarray:
    """Kernel variance profile v over the taps, shape ``(kernel_size,) * ndim``, summing to 1.

    Args:
        spec: ``"delta"`` (all variance on the centre tap; ``kernel_size`` must be odd), ``"uniform"``
            (``v_b = 1 / kernel_size^ndim``, the ordinary Gaussian initialisation) or an array of non-negative
            weights with odd side lengths that sums to 1 (its shape then defines ``kernel_size`` and
            ``ndim``).
        kernel_size: number of taps along each dimension (named profiles only).
        ndim: number of spatial dimensions (named profiles only).

    Returns:
        The profile as a float64 array.

    Raises:
        ValueError: for an unknown name, an even ``kernel_size`` with ``"delta"``, negative weights or weights
            that do not sum to 1.

    References:
        Xiao et al. (2018), section 2.2.

    Examples:
        >>> from dltheory.signalprop import variance_profile
        >>> variance_profile("uniform", 3, ndim=1).round(4).tolist()
        [0.3333, 0.3333, 0.3333]
        >>> float(variance_profile("delta", 3, ndim=2)[1, 1])
        1.0
    """
    if isinstance(spec, str):
        check_choice("spec", spec, PROFILE_KINDS)
        size = check_int("kernel_size", kernel_size, minimum=1)
        dims = check_int("ndim", ndim, minimum=1)
        if size % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd (the centre tap is ambiguous for even sizes), got {size}"
            )
        shape = (size,) * dims
        if spec == "uniform":
            return np.full(shape, 1.0 / size**dims)
        profile = np.zeros(shape)
        profile[(size // 2,) * dims] = 1.0
        return profile
    profile = as_float_array("profile", spec)
    if profile.ndim == 0 or any(s % 2 == 0 for s in profile.shape):
        raise ValueError(f"profile must be an array with odd side lengths, got shape {profile.shape}")
    if np.any(profile < 0):
        raise ValueError("profile entries must be >= 0 (they are variances)")
    total = float(profile.sum())
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"profile must sum to 1 (pass v / v.sum()), got sum {total!r}")
    return profile


def _tap_offsets(profile: np.ndarray) -> list[tuple[tuple[int, ...], float]]:
    """(offset from the centre tap, weight) for every tap with non-zero variance."""
    centre = tuple(s // 2 for s in profile.shape)
    taps = []
    for index in itertools.product(*(range(s) for s in profile.shape)):
        weight = float(profile[index])
        if weight > 0:
            taps.append((tuple(i - c for i, c in zip(index, centre, strict=True)), weight))
    return taps


def _spatial(spatial_shape: Any, ndim: int) -> tuple[int, ...]:
    shape = (spatial_shape,) if isinstance(spatial_shape, int | np.integer) else tuple(spatial_shape)
    if len(shape) != ndim:
        raise ValueError(
            f"spatial_shape must have {ndim} entries (the profile's ndim), got {spatial_shape!r}"
        )
    return tuple(check_int("spatial_shape", int(s), minimum=1) for s in shape)


def mode_eigenvalues(profile: Any, spatial_shape: Any, kernel_size: int = 3) -> np.ndarray:
    """``lambda_m = sum_b v_b exp(2 pi i m.b / n)`` for every spatial frequency m of a periodic map.

    The linearised covariance map multiplies spatial mode m by ``chi_c lambda_m`` per layer.

    Args:
        profile: a profile name (``"delta"``, ``"uniform"``) or array, see :func:`variance_profile`.
        spatial_shape: the map's size ``n`` per dimension (an int for 1-D).
        kernel_size: taps per dimension for a named profile.

    Returns:
        Complex array of shape ``spatial_shape``: lambda_m for each frequency m (m = 0 first).

    References:
        Xiao et al. (2018), section 2.2. See docs/xiao/theory.md (spatial Fourier modes).

    Examples:
        >>> import numpy as np
        >>> from dltheory.signalprop import mode_eigenvalues
        >>> lam = mode_eigenvalues("uniform", (8, 8))   # uniform 3x3 on an 8x8 map
        >>> round(float(lam[0, 1].real), 4)              # (1 + 2 cos(pi/4)) / 3
        0.8047
        >>> bool(np.allclose(mode_eigenvalues("delta", (8, 8)), 1.0))
        True
    """
    if isinstance(profile, str):
        dims = 1 if isinstance(spatial_shape, int | np.integer) else len(tuple(spatial_shape))
        v = variance_profile(profile, kernel_size, dims)
    else:
        v = variance_profile(profile)
    shape = _spatial(spatial_shape, v.ndim)
    grids = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    out = np.zeros(shape, dtype=np.complex128)
    for offset, weight in _tap_offsets(v):
        phase = sum(2.0 * np.pi * g * b / n for g, b, n in zip(grids, offset, shape, strict=True))
        out += weight * np.exp(1j * phase)
    return out


def mode_depth_scales(
    activation: ActivationLike,
    sigma_w2: float,
    sigma_b2: float,
    profile: Any,
    spatial_shape: Any,
    kernel_size: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-mode depth scales ``(xi_q_m, xi_c_m)`` over the spatial frequencies.

    ``xi_{c,m} = -1 / log(chi_c |lambda_m|)`` and ``xi_{q,m} = -1 / log(chi_q |lambda_m|)`` with
    ``chi_q = sigma_w2 dE[phi^2]/dq`` at q*. At criticality only m = 0 is marginal (infinite depth scale),
    or every m for the delta profile.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_w2: weight variance (a scalar).
        sigma_b2: bias variance (a scalar).
        profile: kernel variance profile, see :func:`variance_profile`.
        spatial_shape: the map's size per dimension.
        kernel_size: taps per dimension for a named profile.

    Returns:
        ``(xi_q, xi_c)``, float arrays of shape ``spatial_shape`` (+inf where marginal).

    Raises:
        ValueError: for array-valued ``sigma_w2`` or ``sigma_b2``.

    References:
        Xiao et al. (2018), section 2.2.

    Examples:
        >>> from dltheory.signalprop import critical_sigma_w2, mode_depth_scales
        >>> sw2 = float(critical_sigma_w2("tanh", 0.05))
        >>> xi_q, xi_c = mode_depth_scales("tanh", sw2, 0.05, "uniform", (8, 8))
        >>> float(xi_c[0, 0]), round(float(xi_c[0, 1]), 1)   # m = 0 marginal; slowest other mode ~5 layers
        (inf, 4.6)
    """
    fp = fixed_point(activation, sigma_w2, sigma_b2)
    if fp.q_star.ndim != 0:
        raise ValueError("mode_depth_scales takes scalar sigma_w2 and sigma_b2")
    kernel = _kernel(activation)
    chi_q = float(sigma_w2) * float(kernel.moments(np.asarray(fp.q_star))[1])
    magnitude = np.abs(mode_eigenvalues(profile, spatial_shape, kernel_size))
    return _inverse_log(chi_q * magnitude), _inverse_log(float(fp.chi_c) * magnitude)


def conv_covariance_map(
    sigma: Any, profile: Any, activation: ActivationLike, sigma_w2: float, sigma_b2: float
) -> np.ndarray:
    """One layer of the spatial covariance map ``Sigma' = A_v * C(Sigma)``.

    ``C(Sigma) = sigma_w2 E_{h ~ N(0, Sigma)}[phi(h) phi(h)^T] + sigma_b2`` and
    ``[A_v * S]_{a,a'} = sum_b v_b S_{a+b, a'+b}`` with positions taken modulo the map (circular padding).

    Args:
        sigma: covariance over spatial positions, shape ``spatial_shape + spatial_shape`` (symmetric,
            non-negative diagonal).
        profile: kernel variance profile, see :func:`variance_profile`.
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_w2: weight variance, > 0.
        sigma_b2: bias variance, >= 0.

    Returns:
        The next layer's covariance, of the same shape as ``sigma``.

    Raises:
        ValueError: when ``sigma`` has the wrong shape, is not symmetric or has a negative variance.

    References:
        Xiao et al. (2018), eq. 2.5.

    Examples:
        >>> import numpy as np
        >>> from dltheory.signalprop import conv_covariance_map, variance_profile
        >>> sigma = 0.3 + 0.7 * np.eye(4)                 # 1-D map of 4 positions
        >>> out = conv_covariance_map(sigma, variance_profile("uniform", 3, ndim=1), "tanh", 1.5, 0.05)
        >>> round(float(out[0, 0]), 4), round(float(out[0, 1]), 4)
        (0.6414, 0.216)
    """
    v = variance_profile(profile)
    s: np.ndarray = as_float_array("Sigma", sigma)
    ndim = v.ndim
    if s.ndim != 2 * ndim or s.shape[:ndim] != s.shape[ndim:]:
        raise ValueError(
            f"Sigma must have shape spatial_shape + spatial_shape for a {ndim}-D profile, got {s.shape}"
        )
    check_positive("sigma_w2", sigma_w2)
    check_positive("sigma_b2", sigma_b2, allow_zero=True)
    n = int(np.prod(s.shape[:ndim]))
    flat = s.reshape(n, n)
    if not np.allclose(flat, flat.T, rtol=1e-10, atol=1e-12 * np.abs(flat).max(initial=1.0)):
        raise ValueError("Sigma must be symmetric")
    diag = np.diag(flat)
    if np.any(diag < 0):
        raise ValueError(f"Sigma must have a non-negative diagonal (variances), got min {diag.min()!r}")
    rows, cols = np.triu_indices(n)
    bound = np.sqrt(diag[rows] * diag[cols])
    q_ab = np.clip(flat[rows, cols], -bound, bound)
    new = covariance_map(activation, diag[rows], q_ab, diag[cols], sigma_w2, sigma_b2)[1]
    square = np.empty((n, n))
    square[rows, cols] = new
    square[cols, rows] = new
    mapped = square.reshape(s.shape)
    out = np.zeros_like(mapped)
    axes = tuple(range(2 * ndim))
    for offset, weight in _tap_offsets(v):
        shift = tuple(-b for b in offset) * 2
        out += weight * np.roll(mapped, shift, axis=axes)
    return out


def propagate_covariance(
    sigma: Any, profile: Any, activation: ActivationLike, sigma_w2: float, sigma_b2: float, depth: int
) -> np.ndarray:
    """Iterate :func:`conv_covariance_map` ``depth`` times.

    Args:
        sigma: input covariance, shape ``spatial_shape + spatial_shape``.
        profile: kernel variance profile, see :func:`variance_profile`.
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_w2: weight variance, > 0.
        sigma_b2: bias variance, >= 0.
        depth: number of layers, >= 0.

    Returns:
        The stack of covariances, shape ``(depth + 1, *sigma.shape)``; layer 0 is the input.

    Examples:
        >>> import numpy as np
        >>> from dltheory.signalprop import propagate_covariance
        >>> propagate_covariance(0.3 + 0.7 * np.eye(4), np.full(3, 1 / 3), "tanh", 1.5, 0.05, 10).shape
        (11, 4, 4)
    """
    layers = check_int("depth", depth, minimum=0)
    current = as_float_array("Sigma", sigma)
    out = [current]
    for _ in range(layers):
        current = conv_covariance_map(current, profile, activation, sigma_w2, sigma_b2)
        out.append(current)
    return np.stack(out)


def spatial_mode_power(sigma: Any, ndim: int) -> np.ndarray:
    """Fourier decomposition over the joint position of a spatial covariance.

    For each lag d and frequency m, ``|sum_a exp(-2 pi i m.a / n) Sigma_{a, a+d}|`` divided by the number of
    positions. Mode m = 0 is the translation-invariant part; the others carry position-dependent (spatial)
    information, which a uniform profile damps and a delta profile keeps.

    Args:
        sigma: covariance, shape ``spatial_shape + spatial_shape``.
        ndim: number of spatial dimensions.

    Returns:
        Array of shape ``spatial_shape + spatial_shape`` indexed (frequency m..., lag d...).

    Examples:
        >>> import numpy as np
        >>> from dltheory.signalprop import spatial_mode_power
        >>> float(spatial_mode_power(0.3 + 0.7 * np.eye(4), 1)[1:].max())   # translation invariant
        0.0
    """
    s = as_float_array("Sigma", sigma)
    dims = check_int("ndim", ndim, minimum=1)
    spatial = s.shape[:dims]
    n = int(np.prod(spatial))
    flat = s.reshape(n, n)
    index = np.arange(n).reshape(spatial)
    lagged = np.empty(spatial + spatial)
    for lag in itertools.product(*(range(k) for k in spatial)):
        partner = np.roll(index, tuple(-d for d in lag), axis=tuple(range(dims)))
        lagged[(Ellipsis,) + lag] = flat[index.reshape(-1), partner.reshape(-1)].reshape(spatial)
    spectrum = np.fft.fftn(lagged, axes=tuple(range(dims))) / n
    return np.abs(spectrum)
