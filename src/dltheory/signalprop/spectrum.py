"""Spectrum of the input-output Jacobian of a deep network at initialisation (free probability; numpy only).

Network: ``h^l = W^l phi(h^{l-1}) + b^l``, width N -> infinity, inputs on the fixed point (every
pre-activation has variance q*). Its Jacobian ``J = D_L W_L ... D_1 W_1`` with ``D_l = diag(phi'(h^l))``;
the squared singular values of J are the eigenvalues of ``J J^T``. Pennington, Schoenholz & Ganguli
(NeurIPS 2017, "Resurrecting the sigmoid", eqs. 7-16) and Pennington et al. (AISTATS 2018, "The emergence
of spectral universality"); Xiao et al. (ICML 2018, section 2.3) use the same results for delta-orthogonal
CNNs, whose Jacobian has the spectrum of the fully connected one.

- The D_l^2 and W_l W_l^T are asymptotically free, so S-transforms multiply:
  ``S_{JJ^T}(z) = S_{D^2}(z)^L S_{WW^T}(z)^L`` with ``S_{WW^T} = 1 / sigma_w2`` (orthogonal W) or
  ``1 / (sigma_w2 (1 + z))`` (Gaussian W, N(0, sigma_w2 / N) entries).
- Moments, with ``mu_k = E_z[phi'(sqrt(q*) z)^(2k)]``: mean squared singular value ``m1 = (sigma_w2
  mu_1)^L = chi_1^L``; variance ``m1^2 L (mu_2 / mu_1^2 - 1 - s_1)``, ``s_1 = 0`` (orthogonal) or ``-1``
  (Gaussian) (Pennington et al. 2017, eq. 16; from the additivity of ``m2 / m1^2 - 1`` under free
  multiplicative convolution).
- Density: with ``psi(t) = sum_k m_k t^k``, ``chi = psi^{-1}`` and ``S(z) = chi(z) (1 + z) / z``,
  ``G(w) = (1 + psi(1/w)) / w`` and ``rho(x) = -Im G(x + i0) / pi``. Writing ``z = psi_{D^2}(u)`` (so
  ``S_{D^2}(z) = u (1 + z) / z``), ``chi_{JJ^T}(z) = 1 / w`` becomes one equation in ``u``:
  orthogonal ``u^L (1 + z)^(L-1) z^(1-L) sigma_w2^(-L) = 1/w``, Gaussian ``u^L z^(1-L) (1 + z)^(-1)
  sigma_w2^(-L) = 1/w``. It is solved by Newton's method in log form, continued from far above the real
  axis (``w = x + i Y``, ``z ~ m1 / w``) down to ``w = x + i 1e-7 x`` and ``x + i 1e-8 x``, all grid
  points at once, and the two densities are extrapolated linearly to ``Im w = 0`` (this removes the
  O(Im w) Cauchy tails outside the support); every logarithm stays on its principal branch because u, z
  and 1 + z stay in the lower half-plane.
- ``psi_{D^2}(u) = E[lambda u / (1 - lambda u)]`` over ``lambda = phi'(sqrt(q*) z)^2``: exact for the
  piecewise-linear activations (ReLU family: atoms 1 and slope^2 with mass 1/2 each, so ``S_{D^2} =
  (z + 1)/(z + 1/2)`` for ReLU; hard tanh: atoms 1 and 0 with masses ``p = erf(1 / sqrt(2 q*))`` and
  ``1 - p``, ``S_{D^2} = (z + 1)/(z + p)``); for smooth activations (tanh, erf, ...) a composite
  Gauss-Legendre rule in z (768 nodes on [-9.5, 9.5], split at kinks) compressed to its 64-node Gauss
  rule (see :func:`derivative_law`) turns ``lambda`` into a discrete measure; this is accurate because
  ``u`` stays away from ``[1 / max lambda, inf)`` wherever the density is positive (``u`` real in
  ``(0, 1 / max lambda)`` at the upper edge), and is checked against Monte Carlo in the tests.
- An atom of D^2 at 0 (ReLU: 1/2, hard tanh: 1 - p) gives J J^T an atom at 0 of the same mass (the
  larger of the factors' atoms, Belinschi 2003), and orthogonal weights with a discrete D^2 law can add an
  atom at sigma_w2^L (hard tanh at small depth); :func:`jacobian_spectral_density` returns the continuous
  part, :func:`jacobian_spectrum_atoms` the point masses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.polynomial.legendre import leggauss
from scipy.special import erf

from dltheory.core.activations import Activation
from dltheory.core.gaussian import gaussian_expectation
from dltheory.core.validation import as_float_array, check_choice, check_int, check_positive
from dltheory.signalprop.kernels import DualKernel, dual_kernel

WEIGHTS = ("orthogonal", "gaussian")
_Z_LIMIT = 9.5
_PIECES = 48
_NODES_PER_PIECE = 16
_GAUSS_NODES = 64
_ETA_RATIO = 0.2
_ETA_FINAL = 1e-7
_RICHARDSON = 0.1
_NEWTON_TOL = 1e-13
_NEWTON_MAX = 60


def _activation(activation: Any) -> Activation:
    return dual_kernel(activation).activation


def _is_homogeneous(kernel: DualKernel) -> bool:
    """phi'(sqrt(q) z) has a law independent of q (ReLU family, linear)."""
    return kernel.homogeneous_gain is not None


# ------------------------------------------------------------------------------------ critical line


def critical_point_for_q_star(activation: Any, q_star: object) -> tuple[np.ndarray, np.ndarray]:
    """``(sigma_w2, sigma_b2)`` on the critical line chi_1 = 1 whose fixed point is ``q_star``.

    ``sigma_w2 = 1 / E[phi'(sqrt(q*) z)^2]`` and ``sigma_b2 = q* - sigma_w2 E[phi(sqrt(q*) z)^2]`` (the
    critical line parametrised by q*). Small q* pushes tanh networks towards dynamical isometry. For
    positively homogeneous activations (ReLU family, linear) every q* is a fixed point of the critical point
    ``sigma_w2 = 1 / E[phi'^2]``, ``sigma_b2 = 0``. Broadcasts over ``q_star``.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        q_star: the fixed point(s) wanted, >= 0.

    Returns:
        ``(sigma_w2, sigma_b2)``, arrays of the shape of ``q_star``.

    Raises:
        ValueError: where the required sigma_b2 would be negative (q* not reachable on the critical line).

    References:
        Pennington, Schoenholz & Ganguli (2017), section 4; Schoenholz et al. (2017), eq. 5.

    Examples:
        >>> from dltheory.signalprop import critical_point_for_q_star
        >>> sw2, sb2 = critical_point_for_q_star("tanh", 0.025)
        >>> round(float(sw2), 4), float(sb2)
        (1.0483, 1.81...e-05)
    """
    kernel = dual_kernel(activation)
    q = check_positive("q_star", q_star)
    if _is_homogeneous(kernel):
        gain = np.full(q.shape, kernel.homogeneous_gain)
        return 1.0 / gain, np.zeros(q.shape)
    m, _, d = kernel.moments(q)
    sw2 = 1.0 / d
    sb2 = q - sw2 * m
    if np.any(sb2 < -1e-12 * np.maximum(q, 1.0)):
        raise ValueError(
            f"q_star={q_star!r} is not on the critical line of activation {kernel.activation.name!r}: it "
            f"needs sigma_b2 = q* - E[phi^2]/E[phi'^2] = {np.min(sb2):.6g} < 0; allowed: q* where it is >= 0"
        )
    return sw2, np.maximum(sb2, 0.0)


# ------------------------------------------------------------------------------------ moments


@dataclass(frozen=True)
class SpectrumMoments:
    """Mean and variance of the squared singular values of J, from :func:`jacobian_spectrum_moments`.

    Attributes:
        mean: mean squared singular value ``chi_1^L``.
        variance: variance of the squared singular values.
        mu1: ``E[phi'(sqrt(q*) z)^2]``.
        mu2: ``E[phi'(sqrt(q*) z)^4]``.
        q_star: the fixed point used.
    """

    mean: np.ndarray
    variance: np.ndarray
    mu1: np.ndarray
    mu2: np.ndarray
    q_star: np.ndarray


def _resolve_q_star(
    kernel: DualKernel, sigma_w2: np.ndarray, sigma_b2: np.ndarray, q_star: object | None
) -> np.ndarray:
    if q_star is not None:
        return np.broadcast_to(check_positive("q_star", q_star, allow_zero=True), sigma_w2.shape)
    if _is_homogeneous(kernel):
        return np.ones(sigma_w2.shape)  # the law of phi' does not depend on q
    from dltheory.signalprop.meanfield import q_star as fixed_point_q

    return np.asarray(fixed_point_q(kernel, sigma_w2, sigma_b2), dtype=np.float64)


def derivative_moments(activation: Any, q: object, order: int) -> np.ndarray:
    """``mu_k = E_z[phi'(sqrt(q) z)^(2k)]`` for ``k = order``.

    Gaussian quadrature of :mod:`dltheory.core.gaussian`; exact piecewise rules for kinked activations.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        q: variance(s) of the pre-activation, >= 0.
        order: k >= 1.

    Returns:
        mu_k, an array of the shape of ``q``.

    Examples:
        >>> from dltheory.signalprop.spectrum import derivative_moments
        >>> float(derivative_moments("relu", 1.0, 2))
        0.5
    """
    act = _activation(activation)
    k = check_int("order", order, minimum=1)
    return gaussian_expectation(act, lambda x: act.deriv(x) ** (2 * k), q)


def jacobian_spectrum_moments(
    activation: Any,
    sigma_w2: object,
    sigma_b2: object,
    depth: object,
    weights: str = "orthogonal",
    *,
    q_star: object | None = None,
) -> SpectrumMoments:
    """Mean and variance of the squared singular values of the depth-L input-output Jacobian.

    ``mean = (sigma_w2 mu_1)^L = chi_1^L`` and ``variance = mean^2 L (mu_2 / mu_1^2 - 1 - s_1)`` with
    ``s_1 = 0`` for orthogonal and ``-1`` for Gaussian weights; at criticality ``L (mu_2/mu_1^2 - 1)``
    (orthogonal) and ``L mu_2/mu_1^2`` (Gaussian), see docs/xiao/theory.md.
    ``mu_k = E[phi'(sqrt(q*) z)^(2k)]`` at the fixed point unless ``q_star`` is given. Infinite width;
    inputs at the fixed point.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_w2: weight variance(s), > 0.
        sigma_b2: bias variance(s), >= 0.
        depth: number of layers L (broadcasts).
        weights: ``"orthogonal"`` or ``"gaussian"``.
        q_star: the fixed point to use instead of the one of ``(sigma_w2, sigma_b2)``.

    Returns:
        A :class:`SpectrumMoments` of arrays of the broadcast shape.

    References:
        Pennington, Schoenholz & Ganguli (2017), eqs. 15-16; Xiao et al. (2018), section 2.3.

    Examples:
        >>> from dltheory.signalprop import critical_point_for_q_star, jacobian_spectrum_moments
        >>> sw2, sb2 = critical_point_for_q_star("tanh", 0.025)
        >>> m = jacobian_spectrum_moments("tanh", sw2, sb2, [10, 100, 1000], "orthogonal")
        >>> m.mean.round(6).tolist(), m.variance.round(2).tolist()
        ([1.0, 1.0, 1.0], [0.04, 0.4, 4.0])
        >>> round(float(jacobian_spectrum_moments("tanh", sw2, sb2, 100, "gaussian").variance), 1)
        100.4
    """
    check_choice("weights", weights, WEIGHTS)
    kernel = dual_kernel(activation)
    sw2 = check_positive("sigma_w2", sigma_w2)
    sb2 = check_positive("sigma_b2", sigma_b2, allow_zero=True)
    layers = as_float_array("depth", depth)
    if np.any(layers < 0) or np.any(layers != np.round(layers)):
        raise ValueError(f"depth must be a non-negative integer (or array of them), got {depth!r}")
    sw2, sb2, layers = np.broadcast_arrays(sw2, sb2, layers)
    q = _resolve_q_star(kernel, sw2, sb2, q_star)
    mu1 = derivative_moments(kernel.activation, q, 1)
    mu2 = derivative_moments(kernel.activation, q, 2)
    s1 = 0.0 if weights == "orthogonal" else -1.0
    mean = (sw2 * mu1) ** layers
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(mu1 > 0, mu2 / mu1**2, np.inf)
    variance = mean**2 * layers * (ratio - 1.0 - s1)
    return SpectrumMoments(mean, variance, mu1, mu2, q)


# ------------------------------------------------------------------------------------ D^2 law


def derivative_law(activation: Any, q: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """The law of ``lambda = phi'(sqrt(q) z)^2``, z ~ N(0, 1), as ``(values, masses, exact)``.

    ``exact=True``: the law is discrete and these are its atoms: the ReLU family (``{1, slope^2}``, masses
    1/2), hard tanh (``{1, 0}``, masses ``p = erf(1/sqrt(2q))``, ``1 - p``), or any activation at q = 0.
    Otherwise (``exact=False``) a 64-node Gauss rule for the (continuous) law of lambda: the Gauss rule of
    the discrete measure given by a composite Gauss-Legendre rule in z (48 pieces of 16 nodes on
    [-9.5, 9.5], extra breaks at the kinks, half the range for odd phi), computed by the Stieltjes/Lanczos
    procedure (Golub & Welsch 1969). It reproduces the moments of lambda up to order 127 and, in the density
    solver, changes the tanh density by < 1e-7 relative to the full 768-node measure.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        q: variance of the pre-activation, >= 0.

    Returns:
        ``(values, masses, exact)``: atoms or nodes, their masses, and whether the law is exact.

    Examples:
        >>> from dltheory.signalprop.spectrum import derivative_law
        >>> values, masses, exact = derivative_law("relu", 1.0)
        >>> values.tolist(), masses.tolist(), exact
        ([0.0, 1.0], [0.5, 0.5], True)
    """
    kernel = dual_kernel(activation)
    act = kernel.activation
    q_val = float(check_positive("q", q, allow_zero=True))
    exact = act.derivative_method == "exact"
    if exact and act.name in ("relu", "leaky_relu", "linear"):
        slope = act.params.get("slope", 1.0 if act.name == "linear" else 0.0)
        return _merge_atoms(np.array([1.0, slope**2]), np.array([0.5, 0.5])) + (True,)
    if exact and act.name == "hard_tanh":
        p = 1.0 if q_val == 0 else float(erf(1.0 / math.sqrt(2.0 * q_val)))
        return _merge_atoms(np.array([1.0, 0.0]), np.array([p, 1.0 - p])) + (True,)
    if q_val == 0.0:
        return np.array([float(act.deriv(np.zeros(1))[0] ** 2)]), np.array([1.0]), True
    odd = act.parity == "odd"
    lo = 0.0 if odd else -_Z_LIMIT
    breaks = np.linspace(lo, _Z_LIMIT, _PIECES + 1)
    kinks = np.asarray(act.kinks, dtype=np.float64) / math.sqrt(q_val)
    breaks = np.unique(np.concatenate([breaks, kinks[(kinks > lo) & (kinks < _Z_LIMIT)]]))
    t, w = leggauss(_NODES_PER_PIECE)
    half = 0.5 * np.diff(breaks)[:, None]
    z = (breaks[:-1, None] + half * (t + 1.0)).ravel()
    mass = (half * w).ravel() * np.exp(-0.5 * z * z)
    values = act.deriv(math.sqrt(q_val) * z) ** 2
    nodes, weights = _gauss_rule(values, mass / mass.sum(), _GAUSS_NODES)
    return nodes, weights, False


def _merge_atoms(values: np.ndarray, masses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop empty atoms and merge equal values."""
    keep = masses > 0
    unique, inverse = np.unique(values[keep], return_inverse=True)
    return unique, np.bincount(inverse, weights=masses[keep])


def _gauss_rule(values: np.ndarray, masses: np.ndarray, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """n-node Gauss rule of the discrete measure sum_j masses_j delta(values_j): Lanczos on diag(values)
    from sqrt(masses) with full reorthogonalisation, then the eigen-decomposition of the Jacobi matrix."""
    n = min(nodes, values.size)
    basis = np.zeros((values.size, n))
    alpha, beta = np.zeros(n), np.zeros(n)
    basis[:, 0] = np.sqrt(masses)
    for k in range(n):
        v = values * basis[:, k]
        alpha[k] = basis[:, k] @ v
        for _ in range(2):
            v -= basis[:, : k + 1] @ (basis[:, : k + 1].T @ v)
        if k + 1 < n:
            beta[k] = np.linalg.norm(v)
            if beta[k] <= 1e-14 * max(1.0, abs(alpha[k])):
                n = k + 1
                break
            basis[:, k + 1] = v / beta[k]
    jacobi = np.diag(alpha[:n]) + np.diag(beta[: n - 1], 1) + np.diag(beta[: n - 1], -1)
    nodes_out, vectors = np.linalg.eigh(jacobi)
    return nodes_out, vectors[0] ** 2


# ------------------------------------------------------------------------------------ density


def _scalar_setup(
    activation: Any, sigma_w2: object, sigma_b2: object, depth: object, weights: str, q_star: object | None
) -> tuple[DualKernel, float, int, float]:
    check_choice("weights", weights, WEIGHTS)
    kernel = dual_kernel(activation)
    sw2 = check_positive("sigma_w2", sigma_w2)
    sb2 = check_positive("sigma_b2", sigma_b2, allow_zero=True)
    if sw2.ndim or sb2.ndim:
        raise ValueError(
            f"sigma_w2 and sigma_b2 must be scalars for a spectral density, got {sigma_w2!r}, {sigma_b2!r}"
        )
    layers = check_int("depth", depth, minimum=1)
    q = float(_resolve_q_star(kernel, sw2, sb2, q_star))
    return kernel, float(sw2), layers, q


def jacobian_spectrum_atoms(
    activation: Any,
    sigma_w2: object,
    sigma_b2: object,
    depth: object,
    weights: str = "orthogonal",
    *,
    q_star: object | None = None,
) -> list[tuple[float, float]]:
    """Point masses ``[(location, mass), ...]`` in the law of the squared singular values.

    They are not part of :func:`jacobian_spectral_density`. By Belinschi's theorem (2003) a free product
    ``mu_1 ... mu_n`` has an atom at ``a_1 ... a_n`` of mass ``sum_i mu_i({a_i}) - (n - 1)`` when that is
    positive, and at 0 the largest of the masses at 0. Here the factors are L copies of the law of ``D^2``
    and of ``W W^T`` (orthogonal: a single atom at sigma_w2; Gaussian: Marchenko-Pastur, no atom). Hence an
    atom at 0 of mass ``P(phi'^2 = 0)`` (1/2 for ReLU, ``1 - erf(1/sqrt(2 q*))`` for hard tanh) and, with
    orthogonal weights only, atoms at ``sigma_w2^L a^k b^(L-k)`` of mass ``1 - k (1 - P(a)) - (L - k)
    (1 - P(b))`` for atoms a, b of D^2: e.g. hard tanh has an atom at ``sigma_w2^L`` of mass ``1 - L (1 - p)``
    at small depth. Smooth activations: none.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_w2: weight variance (scalar), > 0.
        sigma_b2: bias variance (scalar), >= 0.
        depth: number of layers L.
        weights: ``"orthogonal"`` or ``"gaussian"``.
        q_star: the fixed point to use instead of the one of ``(sigma_w2, sigma_b2)``.

    Returns:
        Sorted list of ``(location, mass)`` pairs; empty for smooth activations.

    References:
        Belinschi (2003); Pennington, Schoenholz & Ganguli (2017).

    Examples:
        >>> from dltheory.signalprop import jacobian_spectrum_atoms
        >>> jacobian_spectrum_atoms("relu", 2.0, 0.0, 8, "orthogonal")   # half the values are exactly 0
        [(0.0, 0.5)]
        >>> jacobian_spectrum_atoms("tanh", 1.0483, 1.8e-05, 8)
        []
    """
    kernel, sw2, layers, q = _scalar_setup(activation, sigma_w2, sigma_b2, depth, weights, q_star)
    values, masses, exact = derivative_law(kernel.activation, q)
    if not exact:
        return []
    found: dict[float, float] = {}
    zero = float(np.sum(masses[values == 0.0]))
    if zero > 0:
        found[0.0] = zero
    if weights == "orthogonal":
        positive = [(float(v), float(m)) for v, m in zip(values, masses, strict=True) if v > 0]
        (a, pa), (b, pb) = positive[0], positive[-1]
        for k in range(layers + 1) if len(positive) == 2 else [layers]:
            mass = 1.0 - k * (1.0 - pa) - (layers - k) * (1.0 - pb)
            if mass > 1e-15:
                location = sw2**layers * a**k * b ** (layers - k)
                found[location] = found.get(location, 0.0) + mass
    return sorted(found.items())


def jacobian_spectral_density(
    activation: Any,
    sigma_w2: object,
    sigma_b2: object,
    depth: object,
    x: object,
    weights: str = "orthogonal",
    *,
    q_star: object | None = None,
) -> np.ndarray:
    """Density at ``x > 0`` of the squared singular values of the Jacobian (eigenvalues of J J^T).

    Free multiplicative convolution of L copies of the laws of ``D^2`` and ``W W^T`` (S-transform
    ``S_{D^2}^L S_{WW^T}^L``; solved as described in the module docstring). Only the continuous part: the
    point masses (:func:`jacobian_spectrum_atoms`) are excluded, so the density integrates to one minus
    their mass. The density of the singular values ``s`` themselves is ``2 s rho(s^2)``.

    Args:
        activation: activation name, :class:`~dltheory.core.activations.Activation` or callable.
        sigma_w2: weight variance (scalar), > 0.
        sigma_b2: bias variance (scalar), >= 0.
        depth: number of layers L.
        x: points (> 0) where the density is evaluated.
        weights: ``"orthogonal"`` or ``"gaussian"``.
        q_star: the fixed point to use instead of the one of ``(sigma_w2, sigma_b2)``.

    Returns:
        The density at ``x`` (same shape); NaN where Newton's method did not converge (not observed in the
        tests).

    Raises:
        ValueError: for ``x <= 0``, or orthogonal weights with a constant ``phi'`` (a linear network, or
            q* = 0: the spectrum is a point mass without density).

    References:
        Pennington, Schoenholz & Ganguli (2017), eqs. 10-13; Pennington, Schoenholz & Ganguli (2018).

    Examples:
        >>> import numpy as np
        >>> from dltheory.signalprop import jacobian_spectral_density
        >>> x = np.geomspace(1e-3, 10, 5)
        >>> rho = jacobian_spectral_density("relu", 2.0, 0.0, 8, x, "orthogonal")
        >>> rho.shape, bool(np.all(rho > 0))
        ((5,), True)
    """
    kernel, sw2, layers, q = _scalar_setup(activation, sigma_w2, sigma_b2, depth, weights, q_star)
    points = as_float_array("x", x)
    if np.any(points <= 0):
        raise ValueError(f"x must be > 0 (the atom at 0 is given by jacobian_spectrum_atoms), got {x!r}")
    values, masses, _ = derivative_law(kernel.activation, q)
    keep = masses > 0
    values, masses = values[keep], masses[keep]
    mu1 = float(masses @ values)
    if weights == "orthogonal" and np.ptp(values) == 0.0:
        raise ValueError(
            f"with orthogonal weights and constant phi'^2 = {values[0]:g} (activation "
            f"{kernel.activation.name!r}, q*={q:g}) the Jacobian is a multiple of an orthogonal matrix: all "
            f"squared singular values equal {(sw2 * values[0]) ** layers:g}, a point mass without density"
        )
    if mu1 == 0.0:
        raise ValueError(f"phi' vanishes almost surely at q*={q:g}; the Jacobian is zero")
    moments = jacobian_spectrum_moments(kernel.activation, sw2, 0.0, layers, weights, q_star=q)
    spread = math.sqrt(float(moments.mean) ** 2 + float(moments.variance))
    flat = points.reshape(-1)
    density = _solve_subordination(values, masses, mu1, sw2, layers, weights == "gaussian", flat, spread)
    return density.reshape(points.shape)


def _solve_subordination(
    values: np.ndarray,
    masses: np.ndarray,
    mu1: float,
    sw2: float,
    layers: int,
    gaussian: bool,
    x: np.ndarray,
    spread: float,
) -> np.ndarray:
    """The density at x: ``z = psi_{JJ^T}(1 / w)`` by Newton continuation in Im w down to ``eta = 1e-7 x``
    and ``1e-8 x`` (see the module docstring), ``rho_eta = -Im((1 + z) / w) / pi`` extrapolated to
    ``eta = 0``; 0 far below the spectrum (where ``1 + z`` underflows), NaN where Newton failed."""
    top = 100.0 * np.maximum(x, spread)
    bottom = _ETA_FINAL * x
    steps = int(math.ceil(np.max(np.log(top / bottom)) / -math.log(_ETA_RATIO)))
    log_sw2 = math.log(sw2)
    mean_j = mu1 * sw2  # per-layer mean; z ~ mean_j^L / w for large |w|
    w = x + 1j * top
    z0 = np.exp(layers * math.log(mean_j)) / w
    u = z0 / mu1
    lam = values[:, None]
    m = masses[:, None]

    def residual(u: np.ndarray, log_w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        denom = 1.0 - lam * u
        z = np.sum(m * lam * u / denom, axis=0)
        dz = np.sum(m * lam / denom**2, axis=0)
        log_z, log_1z = np.log(z), np.log1p(z)
        if gaussian:
            f = layers * np.log(u) - log_1z + (1 - layers) * log_z - layers * log_sw2 + log_w
            df = layers / u + (-1.0 / (1.0 + z) + (1 - layers) / z) * dz
        else:
            f = layers * np.log(u) + (layers - 1) * (log_1z - log_z) - layers * log_sw2 + log_w
            df = layers / u + (layers - 1) * (1.0 / (1.0 + z) - 1.0 / z) * dz
        return f, df, z

    for k in range(steps + 1):
        w = x + 1j * top * (bottom / top) ** (k / steps)
        u, _ = _damped_newton(residual, u, np.log(w), 1e-9)
    densities, failed = [], np.zeros(x.shape, dtype=bool)
    for eta in (bottom, bottom * _RICHARDSON):
        w = x + 1j * eta
        u, converged = _damped_newton(residual, u, np.log(w), _NEWTON_TOL)
        z = residual(u, np.log(w))[2]
        below = ~converged & (z.real < -1.0 + 1e-8)  # far below the spectrum: 1 + z underflows, rho = 0
        densities.append(np.where(below, 0.0, -np.imag((1.0 + z) / w) / math.pi))
        failed |= ~converged & ~below
    # Richardson extrapolation to Im w = 0 removes the O(eta) Cauchy tails (e.g. of the atom at 0)
    extrapolated = (densities[1] - _RICHARDSON * densities[0]) / (1.0 - _RICHARDSON)
    return np.where(failed, np.nan, np.maximum(extrapolated, 0.0))


def _damped_newton(
    residual: Any, u: np.ndarray, log_w: np.ndarray, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """Newton on ``F(u) = 0`` per grid point, halving steps that leave the lower half-plane or do not
    decrease ``|F|``."""
    u = u.copy()
    active = np.ones(u.shape, dtype=bool)
    for _ in range(_NEWTON_MAX):
        idx = np.nonzero(active)[0]
        if idx.size == 0:
            break
        f, df, _ = residual(u[idx], log_w[idx])
        step = -f / df
        size = np.abs(f)
        alpha = np.ones(idx.size)
        accepted = np.zeros(idx.size, dtype=bool)
        for _ in range(40):
            pending = ~accepted
            if not np.any(pending):
                break
            trial = u[idx] + alpha * step
            ok = trial.imag < 0
            f_new = np.full(idx.size, np.inf, dtype=np.complex128)
            if np.any(ok & pending):
                sel = np.nonzero(ok & pending)[0]
                f_new[sel] = residual(trial[sel], log_w[idx][sel])[0]
            good = pending & ok & (np.abs(f_new) < size * (1.0 - 1e-4 * alpha) + 1e-15)
            u[idx[good]] = trial[good]
            accepted |= good
            alpha = np.where(accepted, alpha, 0.5 * alpha)
        small = np.abs(alpha * step) <= tol * np.abs(u[idx])
        active[idx[small | ~accepted]] = False
    f, _, _ = residual(u, log_w)
    return u, np.abs(f) < 1e-8
