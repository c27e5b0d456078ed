"""Activation registry: values against torch's reference implementations, derivatives against finite
differences, user callables (complex step / finite differences), bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dltheory.core.activations import ACTIVATIONS, get_activation

X = np.array([-2.7, -1.3, -0.6, -0.11, 0.07, 0.4, 0.95, 1.6, 3.1])


def _central(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


TORCH_REFERENCE = {
    "tanh": torch.tanh,
    "hard_tanh": torch.nn.functional.hardtanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "selu": torch.nn.functional.selu,
    "gelu": torch.nn.functional.gelu,
    "silu": torch.nn.functional.silu,
    "erf": torch.erf,
}


@pytest.mark.parametrize("name", sorted(TORCH_REFERENCE))
def test_values_match_torch(name):
    act = get_activation(name)
    expected = TORCH_REFERENCE[name](torch.tensor(X, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(act.fn(X), expected, rtol=1e-14, atol=1e-15)


def test_leaky_relu_and_swish_parameters():
    leaky = get_activation("leaky_relu", slope=0.2)
    expected = torch.nn.functional.leaky_relu(torch.tensor(X), 0.2).numpy()
    np.testing.assert_allclose(leaky.fn(X), expected, rtol=1e-15)
    swish = get_activation("swish", beta=2.0)
    np.testing.assert_allclose(swish.fn(X), X / (1 + np.exp(-2 * X)), rtol=1e-14)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_derivatives_match_finite_differences(name):
    act = get_activation(name)
    away = X[np.all(np.abs(X[:, None] - np.array(act.kinks or (99.0,))[None, :]) > 1e-3, axis=1)]
    np.testing.assert_allclose(act.deriv(away), _central(act.fn, away), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(act.deriv2(away), _central(act.deriv, away), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_fused_value_and_derivative_agree(name):
    act = get_activation(name)
    value, slope = act.values_and_derivs(X)
    np.testing.assert_allclose(value, act.fn(X), rtol=1e-15)
    np.testing.assert_allclose(slope, act.deriv(X), rtol=1e-14, atol=1e-15)


def test_odd_parity_is_true():
    for name in ACTIVATIONS:
        act = get_activation(name)
        if act.parity == "odd":
            np.testing.assert_allclose(act.fn(-X), -act.fn(X), rtol=1e-15, atol=1e-16)


def test_callable_uses_complex_step_when_possible():
    act = get_activation(lambda x: np.sin(x) * np.tanh(x), name="sintanh")
    assert act.derivative_method == "complex-step"
    exact = np.cos(X) * np.tanh(X) + np.sin(X) * (1 - np.tanh(X) ** 2)
    np.testing.assert_allclose(act.deriv(X), exact, rtol=1e-13, atol=1e-15)
    second = (
        -np.sin(X) * np.tanh(X)
        + 2 * np.cos(X) * (1 - np.tanh(X) ** 2)
        - 2 * np.sin(X) * np.tanh(X) * (1 - np.tanh(X) ** 2)
    )
    np.testing.assert_allclose(act.deriv2(X), second, rtol=1e-7, atol=1e-8)


def test_callable_with_abs_falls_back_to_finite_differences():
    # complex step is wrong for abs (|x + ih| is real): the probe check must catch it
    act = get_activation(lambda x: np.abs(x) + 0.5 * x)
    assert act.derivative_method == "finite-difference"
    np.testing.assert_allclose(act.deriv(X), np.sign(X) + 0.5, rtol=1e-8)


def test_user_derivatives_are_used():
    act = get_activation(np.tanh, deriv=lambda x: 1 - np.tanh(x) ** 2, parity="odd")
    assert act.derivative_method == "user"
    assert act.parity == "odd"


def test_errors():
    with pytest.raises(ValueError, match="activation must be one of"):
        get_activation("tanhh")
    with pytest.raises(ValueError, match="unknown parameters"):
        get_activation("tanh", slope=0.1)
    with pytest.raises(TypeError, match="vectorised"):
        get_activation(lambda x: float(np.sum(x)))
    with pytest.raises(TypeError, match="activation must be a name"):
        get_activation(3.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="slope must be finite"):
        get_activation("leaky_relu", slope=float("nan"))
