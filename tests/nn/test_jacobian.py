"""Jacobian singular values: exact against known operators, Lanczos against exact, Hutchinson moments
against exact, and empirical spectra of critically initialised networks against free-probability theory."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dltheory.nn.init import conv_operator_singular_values, critical_init_
from dltheory.nn.jacobian import (
    full_jacobian,
    jacobian_lanczos,
    jacobian_moments,
    jacobian_singular_values,
)
from dltheory.signalprop import critical_sigma_w2, q_star
from dltheory.signalprop.spectrum import jacobian_spectrum_moments


def _mlp(widths: list[int], activation: type[nn.Module] = nn.Tanh) -> nn.Sequential:
    layers: list[nn.Module] = []
    for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), activation()]
    return nn.Sequential(*layers).double()


@pytest.mark.parametrize(("n_in", "n_out"), [(7, 4), (4, 7)])
def test_linear_model_singular_values(n_in, n_out):
    gen = torch.Generator().manual_seed(0)
    layer = nn.Linear(n_in, n_out, bias=True).double()
    x = torch.randn(1, n_in, generator=gen, dtype=torch.float64)
    assert full_jacobian(layer, x).shape == (n_out, n_in)
    expected = torch.linalg.svdvals(layer.weight.detach())
    np.testing.assert_allclose(jacobian_singular_values(layer, x).numpy(), expected.numpy(), rtol=1e-12)


def test_circular_convolution_jacobian_is_the_fft_operator():
    """The Jacobian of a circular nn.Conv2d is its operator: two independent computations agree."""
    gen = torch.Generator().manual_seed(1)
    conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular").double()
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen, dtype=torch.float64))
    x = torch.randn(1, 3, 5, 4, generator=gen, dtype=torch.float64)
    np.testing.assert_allclose(
        jacobian_singular_values(conv, x).numpy(),
        conv_operator_singular_values(conv.weight, (5, 4)).numpy(),
        rtol=1e-10,
    )


@pytest.mark.parametrize("widths", [[240] * 7, [200, 240, 240, 240, 220]])
def test_lanczos_matches_exact_at_both_ends(widths):
    gen = torch.Generator().manual_seed(2)
    model = _mlp(widths)
    critical_init_(model, "tanh", q_star=0.05, weights="orthogonal", generator=gen)
    x = 0.2 * torch.randn(1, widths[0], generator=gen, dtype=torch.float64)
    exact = jacobian_singular_values(model, x)
    top, bottom = exact[0].item(), exact[-1].item()
    result = jacobian_lanczos(model, x, 3, which="both", tol=1e-7, block=8, generator=gen)
    assert result.converged and result.products == 2 * result.dimension
    np.testing.assert_allclose(result.values[:3].numpy(), exact[:3].numpy(), rtol=1e-9)
    np.testing.assert_allclose(result.values[3:].numpy() ** 2, exact[-3:].numpy() ** 2, atol=1e-9 * top**2)
    largest = jacobian_singular_values(model, x, 2, which="largest", method="lanczos", generator=gen)
    smallest = jacobian_singular_values(model, x, 1, which="smallest", method="lanczos", generator=gen)
    assert largest.tolist() == pytest.approx(exact[:2].tolist(), rel=1e-7)
    assert smallest.item() == pytest.approx(bottom, rel=1e-5)
    assert (
        jacobian_singular_values(model, x, 2, which="smallest").tolist() == exact[-2:].tolist()
    )  # auto: exact


def test_lanczos_warns_when_not_converged():
    gen = torch.Generator().manual_seed(3)
    model = _mlp([50, 50, 50])
    x = torch.randn(1, 50, generator=gen, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        jacobian_singular_values(model, x, 2, method="lanczos", max_iter=1, block=2, generator=gen)


def test_hutchinson_moments_match_exact():
    gen = torch.Generator().manual_seed(4)
    model = _mlp([120] * 5)
    critical_init_(model, "tanh", sigma_b2=0.05, weights="gaussian", generator=gen)
    x = torch.randn(1, 120, generator=gen, dtype=torch.float64)
    squared = jacobian_singular_values(model, x) ** 2
    est = jacobian_moments(model, x, probes=200, generator=gen)
    assert est.size == 120
    assert abs(est.mean - squared.mean().item()) < 4 * est.mean_stderr
    assert abs(est.second_moment - squared.pow(2).mean().item()) < 4 * est.second_moment_stderr


# ------------------------------------------------------------------------------------ theory


def _fixed_point_input(shape, q, gen):
    """phi(h) with h ~ N(0, q*): the next pre-activations then have variance q* (the fixed point)."""
    return torch.tanh(math.sqrt(q) * torch.randn(shape, generator=gen, dtype=torch.float64))


def assert_matches_theory(
    samples: list[float], predicted: float, sigmas: float = 4.0, bias: float = 0.03
) -> None:
    """The mean over independent networks is within ``sigmas`` standard errors (plus a finite-width bias
    allowance of ``bias`` relative) of the infinite-width prediction."""
    values = np.asarray(samples)
    stderr = values.std(ddof=1) / math.sqrt(values.size)
    assert abs(values.mean() - predicted) <= sigmas * stderr + bias * abs(predicted), (
        values.mean(),
        stderr,
        predicted,
    )


def _moments_over_networks(build, input_shape, networks, weights, gen):
    sw2 = float(critical_sigma_w2("tanh", 0.05))
    q = float(q_star("tanh", sw2, 0.05))
    means, variances = [], []
    for _ in range(networks):
        model = build()
        critical_init_(model, "tanh", sigma_b2=0.05, weights=weights, generator=gen)
        squared = jacobian_singular_values(model, _fixed_point_input(input_shape, q, gen)) ** 2
        means.append(squared.mean().item())
        variances.append(squared.var(unbiased=False).item())
    return means, variances


@pytest.mark.parametrize(("weights", "networks"), [("orthogonal", 6), ("gaussian", 12)])
def test_fully_connected_spectrum_matches_free_probability(weights, networks):
    """Width 300, depth 8, tanh at the critical point sigma_b2 = 0.05: over independent networks, the mean
    and the variance of the squared singular values match chi_1^L = 1 and L (mu2/mu1^2 - 1 - s1) within
    4 standard errors + 3 % (per network the variance fluctuates by ~13 % (orthogonal), ~35 % (Gaussian))."""
    gen = torch.Generator().manual_seed(5)
    means, variances = _moments_over_networks(lambda: _mlp([300] * 9), (1, 300), networks, weights, gen)
    theory = jacobian_spectrum_moments("tanh", float(critical_sigma_w2("tanh", 0.05)), 0.05, 8, weights)
    assert_matches_theory(means, float(theory.mean))
    assert_matches_theory(variances, float(theory.variance))


def test_delta_orthogonal_cnn_spectrum_matches_orthogonal_theory():
    """A circular tanh CNN (128 channels, 2x2 map, depth 6) with delta-orthogonal kernels at criticality has
    the spectrum of the orthogonal fully connected network (Xiao et al. 2018, section 3), and not that
    of Gaussian weights (whose variance is 4x larger here)."""

    def build() -> nn.Module:
        layers: list[nn.Module] = []
        for _ in range(6):
            layers += [nn.Conv2d(128, 128, 3, padding=1, padding_mode="circular"), nn.Tanh()]
        return nn.Sequential(*layers).double()

    gen = torch.Generator().manual_seed(6)
    means, variances = _moments_over_networks(build, (1, 128, 2, 2), 4, "delta_orthogonal", gen)
    sw2 = float(critical_sigma_w2("tanh", 0.05))
    theory = jacobian_spectrum_moments("tanh", sw2, 0.05, 6, "orthogonal")
    assert_matches_theory(means, float(theory.mean))
    assert_matches_theory(variances, float(theory.variance))
    gaussian = jacobian_spectrum_moments("tanh", sw2, 0.05, 6, "gaussian")
    assert max(variances) < 0.5 * float(gaussian.variance)


def test_errors():
    model = _mlp([4, 4])
    x = torch.zeros(1, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="needs k"):
        jacobian_singular_values(model, x, method="lanczos")
    with pytest.raises(ValueError, match="method must be one of"):
        jacobian_singular_values(model, x, method="arpack")
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        jacobian_singular_values(model, x, 0)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        jacobian_singular_values(model, [1.0, 2.0])
    with pytest.raises(ValueError, match="probes"):
        jacobian_moments(model, x, probes=1)
