"""No regulariser reproduces depth (Arora, Cohen & Hazan 2018, section 5): the end-to-end update field
has a symmetric Jacobian for N = 1, 2 and an asymmetric one for N >= 3 (linear loss, grad L(0) != 0)."""

from __future__ import annotations

import numpy as np
import pytest

from dltheory.deeplinear import (
    field_jacobian,
    is_gradient_field,
    jacobian_asymmetry,
    linear_loss_asymmetry,
    linear_loss_curl_flux,
    loop_integral,
)

A = np.array([[1.0, -0.5, 0.25]])  # constant gradient of the linear loss L(w) = A . w


def linear_grad(w: np.ndarray) -> np.ndarray:
    return A.copy()


def points(count: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((1, 3)) for _ in range(count)]


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_jacobian_symmetric_only_for_depth_one_and_two(depth):
    asymmetries = [jacobian_asymmetry(p, linear_grad, depth) for p in points()]
    if depth <= 2:
        assert max(asymmetries) < 1e-7
        assert is_gradient_field(linear_grad, depth, points())
    else:
        assert min(asymmetries) > 0.05
        assert not is_gradient_field(linear_grad, depth, points())


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_finite_difference_asymmetry_matches_closed_form(depth):
    for p in points(2):
        jac = field_jacobian(p, linear_grad, depth)
        exact = linear_loss_asymmetry(p.ravel(), A.ravel(), depth)
        np.testing.assert_allclose(jac - jac.T, exact, atol=1e-7 * max(1.0, np.abs(jac).max()))


def test_quadratic_loss_depth_one_is_a_gradient_field():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 10))
    y = rng.standard_normal((2, 10))

    def grad(w):
        return (w @ x - y) @ x.T / 10

    assert is_gradient_field(grad, 1, [rng.standard_normal((2, 3)) for _ in range(2)])
    assert not is_gradient_field(grad, 3, [rng.standard_normal((2, 3)) for _ in range(2)])


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_closed_loop_integral_vanishes_only_for_gradient_fields(depth):
    u, v = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    center = np.array([0.2, 1.0, 0.0])  # the disk avoids the origin, where the field is not smooth
    value = loop_integral(linear_grad, depth, center[None, :], u[None, :], v[None, :], 0.5, points=128)
    flux = linear_loss_curl_flux(A, depth, center, u, v, 0.5)  # area integral of the closed-form curl
    if depth <= 2:
        assert abs(value) < 1e-10
    else:
        assert abs(value) > 0.01
        np.testing.assert_allclose(value, flux, rtol=1e-6)


def test_jacobian_refused_where_the_field_is_not_differentiable():
    with pytest.raises(ValueError, match="not differentiable where the weight loses rank"):
        field_jacobian(np.zeros((1, 3)), linear_grad, 2)
    with pytest.raises(ValueError, match="not differentiable at w = 0"):
        linear_loss_asymmetry(np.zeros(3), A.ravel(), 2)
    with pytest.raises(ValueError, match="must not be parallel"):
        loop_integral(linear_grad, 3, np.ones((1, 3)), A, 2 * A, 0.1)
