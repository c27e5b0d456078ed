"""Is the end-to-end update of a deep linear network a gradient field? (Arora, Cohen & Hazan 2018, sec. 5)

Gradient flow on a depth-N network moves the end-to-end matrix with velocity ``-F(W)``,
``F(W) = P_W(grad L(W))`` (see :mod:`dltheory.deeplinear.dynamics`). If some regulariser R made
``F = grad(L + R)``, the Jacobian of F (the Hessian of L + R) would be symmetric everywhere and the line
integral of F around every closed loop would vanish. The paper's section 5 theorem: for N >= 3 and a loss with
``grad L(0) != 0`` this fails near the origin, so no regulariser reproduces the effect of depth.

For a linear loss (constant gradient ``a``) on a single-output network the antisymmetric part is exact:

    J - J^T = -((N - 1)(N - 2) / N) ||w||^{1 - 2/N} (a w_hat^T - w_hat a^T)

(our derivation from the single-output rule; zero for N = 1, 2: at N = 2 the field is
``grad(||w|| a.w)``). See :func:`linear_loss_asymmetry`. The numerical diagnostics below work for any
loss and any matrix shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from scipy import integrate

from dltheory.core.validation import as_float_array, check_int, check_positive
from dltheory.deeplinear.dynamics import check_depth, check_weight_matrix, end_to_end_direction

GradFn = Callable[[np.ndarray], np.ndarray]


def update_field(weight: Any, grad_fn: GradFn, depth: int) -> np.ndarray:
    """``F(W) = sum_j [W W^T]^{(j-1)/N} grad_fn(W) [W^T W]^{(N-j)/N}``; gradient flow is ``dW/dt = -F(W)``."""
    w = check_weight_matrix("weight", weight)
    return end_to_end_direction(w, grad_fn(w), depth)


def field_jacobian(weight: Any, grad_fn: GradFn, depth: int, *, step: float | None = None) -> np.ndarray:
    """Jacobian ``dvec F / dvec W`` (row-major vec, shape ``(mn, mn)``) by central differences.

    ``step`` defaults to ``1e-5 * ||W||_F`` (``1e-5`` at W = 0; error O(step^2)). For N >= 2 the field is not
    differentiable where W loses rank (fractional powers of zero singular values), so points whose
    smallest singular value is below ``100 * step`` are refused with ValueError.
    """
    w = check_weight_matrix("weight", weight)
    n = check_depth(depth)
    scale = float(np.linalg.norm(w))
    h = (1e-5 * scale if scale > 0 else 1e-5) if step is None else float(check_positive("step", step))
    if n >= 2:
        smallest = float(np.linalg.svd(w, compute_uv=False).min())
        if smallest < 100 * h:
            raise ValueError(
                f"the depth-{n} update field is not differentiable where the weight loses rank; smallest "
                f"singular value {smallest:.3g} < 100 * step = {100 * h:.3g} "
                "(move away from W = 0 or reduce step)"
            )
    size = w.size
    jac = np.empty((size, size))
    for index in range(size):
        delta = np.zeros(size)
        delta[index] = h
        shift = delta.reshape(w.shape)
        plus = update_field(w + shift, grad_fn, n)
        minus = update_field(w - shift, grad_fn, n)
        jac[:, index] = (plus - minus).ravel() / (2 * h)
    return jac


def jacobian_asymmetry(weight: Any, grad_fn: GradFn, depth: int, *, step: float | None = None) -> float:
    """``||J - J^T||_F / ||J||_F`` of the update field at ``weight`` (0 for a gradient field, up to the
    O(step^2) finite-difference error; 0 is also returned where J vanishes)."""
    jac = field_jacobian(weight, grad_fn, depth, step=step)
    norm = float(np.linalg.norm(jac))
    return float(np.linalg.norm(jac - jac.T)) / norm if norm > 0 else 0.0


def is_gradient_field(grad_fn: GradFn, depth: int, points: Iterable[Any], *, tol: float = 1e-6) -> bool:
    """True when the update field's Jacobian is symmetric (relative asymmetry <= ``tol``) at every point.

    A necessary condition for ``F = grad(L + R)`` with a smooth R; a False answer proves that no such
    regulariser exists (Arora et al. 2018, section 5), a True answer at finitely many points proves nothing.
    """
    bound = float(check_positive("tol", tol))
    return all(jacobian_asymmetry(p, grad_fn, depth) <= bound for p in points)


def loop_integral(
    grad_fn: GradFn,
    depth: int,
    center: Any,
    direction_u: Any,
    direction_v: Any,
    radius: float,
    *,
    points: int = 256,
) -> float:
    """``oint F(W) . dW`` around the circle ``W(theta) = center + radius (cos(theta) U + sin(theta) V)``.

    ``U`` and ``V`` (shapes of ``center``) are orthonormalised (Gram-Schmidt); the loop runs from U towards
    V. The trapezoidal rule with ``points`` nodes converges exponentially for smooth periodic integrands.
    A gradient field gives 0; by Stokes' theorem the value equals the flux of the curl
    ``v^T (J - J^T) u`` through the disk.
    """
    c = check_weight_matrix("center", center)
    u = as_float_array("direction_u", direction_u).reshape(c.shape)
    v = as_float_array("direction_v", direction_v).reshape(c.shape)
    rho = float(check_positive("radius", radius))
    count = check_int("points", points, minimum=8)
    u_norm = float(np.linalg.norm(u))
    if u_norm == 0:
        raise ValueError("direction_u must be non-zero")
    u = u / u_norm
    v = v - np.sum(u * v) * u
    v_norm = float(np.linalg.norm(v))
    if v_norm < 1e-12:
        raise ValueError("direction_v must not be parallel to direction_u")
    v = v / v_norm
    total = 0.0
    for theta in np.arange(count) * (2 * np.pi / count):
        position = c + rho * (np.cos(theta) * u + np.sin(theta) * v)
        tangent = rho * (-np.sin(theta) * u + np.cos(theta) * v)
        total += float(np.sum(update_field(position, grad_fn, depth) * tangent))
    return total * 2 * np.pi / count


def linear_loss_asymmetry(weight: Any, gradient: Any, depth: int) -> np.ndarray:
    """Exact ``J - J^T`` of the single-output update field for a linear loss ``L(w) = a . w`` (constant
    gradient ``a``): ``-((N-1)(N-2)/N) ||w||^{1-2/N} (a w_hat^T - w_hat a^T)`` (our derivation from
    Arora et al. 2018, section 4 single-output rule). ``weight`` and ``gradient`` are vectors ``(n,)``;
    returns ``(n, n)``."""
    w = as_float_array("weight", weight).ravel()
    a = as_float_array("gradient", gradient).ravel()
    if a.shape != w.shape:
        raise ValueError(f"gradient must have {w.size} entries like weight, got {a.size}")
    n = check_depth(depth)
    norm = float(np.linalg.norm(w))
    if norm == 0:
        if n == 2:
            raise ValueError("the depth-2 update field ||w|| (a + Pr_w a) is not differentiable at w = 0")
        return np.zeros((w.size, w.size))  # N = 1: J = 0 (constant field); N >= 3: F = O(||w||^{4/3}), J = 0
    direction = w / norm
    coefficient = -((n - 1) * (n - 2) / n) * norm ** (1.0 - 2.0 / n)
    return coefficient * (np.outer(a, direction) - np.outer(direction, a))


def linear_loss_curl_flux(
    gradient: Any, depth: int, center: Any, direction_u: Any, direction_v: Any, radius: float
) -> float:
    """Flux of the curl ``v^T (J - J^T) u`` of the single-output update field for a linear loss through the
    disk ``center + r (cos(theta) U + sin(theta) V)``, ``r <= radius``, from :func:`linear_loss_asymmetry`
    by adaptive 2-D quadrature (relative accuracy ~1e-10). By Stokes' theorem this is the value of
    :func:`loop_integral` around the disk's boundary; it is non-zero for N >= 3 unless the disk is
    symmetric about the plane spanned by ``a`` and the origin."""
    c = as_float_array("center", center).ravel()
    u = as_float_array("direction_u", direction_u).ravel()
    v = as_float_array("direction_v", direction_v).ravel()
    rho = float(check_positive("radius", radius))
    u = u / np.linalg.norm(u)
    v = v - (u @ v) * u
    v = v / np.linalg.norm(v)

    def curl(r: float, theta: float) -> float:
        point = c + r * (np.cos(theta) * u + np.sin(theta) * v)
        return float(v @ linear_loss_asymmetry(point, gradient, depth) @ u) * r

    value, _ = integrate.dblquad(curl, 0.0, 2 * np.pi, 0.0, rho, epsabs=1e-12, epsrel=1e-10)
    return float(value)
