"""dltheory.diagnose: measured signal propagation vs mean-field theory, verdicts, recommendations, coverage
notes for models the theory does not describe, and errors for bad input."""

from __future__ import annotations

import copy
import json
import math

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dltheory
from dltheory.core.io import to_json
from dltheory.nn.diagnose import DiagnoseError, diagnose
from dltheory.nn.diagnose._adapters import unrolled
from dltheory.nn.diagnose._theory import conv_geometry
from dltheory.nn.init import delta_orthogonal_
from dltheory.signalprop import critical_sigma_w2
from dltheory.signalprop.layerwise import spread

SB2 = 0.05
TANH_CRITICAL = float(critical_sigma_w2("tanh", SB2))  # 1.7610 (anchor in docs/xiao/theory.md)
PHASES = {"ordered": 1.0, "critical": TANH_CRITICAL, "chaotic": 3.0}


def tanh_mlp(
    depth: int,
    width: int,
    sigma_w2: float,
    sigma_b2: float,
    generator: torch.Generator,
    d_in: int | None = None,
    act: type[nn.Module] = nn.Tanh,
) -> nn.Sequential:
    """depth Linear layers N(0, sigma_w2 / fan_in), biases N(0, sigma_b2), ``act`` between them."""
    layers: list[nn.Module] = []
    for l in range(depth):
        lin = nn.Linear(d_in if (l == 0 and d_in) else width, width)
        with torch.no_grad():
            lin.weight.normal_(0.0, math.sqrt(sigma_w2 / lin.in_features), generator=generator)
            lin.bias.normal_(0.0, math.sqrt(sigma_b2), generator=generator)
        layers += [lin, act()]
    return nn.Sequential(*layers[:-1])


def correlated_inputs(batch: int, dim: int, generator: torch.Generator, rho: float = 0.6) -> torch.Tensor:
    x = torch.randn(batch, dim, generator=generator)
    x[1::2] = rho * x[0::2] + math.sqrt(1 - rho**2) * x[1::2]
    return x


# ------------------------------------------------------------------------------------ theory vs Monte Carlo


@pytest.mark.parametrize("phase", list(PHASES))
def test_wide_tanh_mlp_follows_the_mean_field_maps(phase):
    """Width 800, 12 layers, mean over 3 random nets. Finite-width fluctuation of q^l is ~sqrt(2/N) per net
    (the realised weights' quadratic form), so 3 nets give ~3% std; tolerances: q 10% relative, c 0.05."""
    width, nets = 800, 3
    g = torch.Generator().manual_seed(11)
    x = correlated_inputs(32, width, g)
    q, c, q_pred, c_pred = [], [], [], []
    for _ in range(nets):
        report = diagnose(tanh_mlp(12, width, PHASES[phase], SB2, g), x, jacobian=False)
        q.append(report.q)
        c.append(report.c)
        q_pred.append(report.predicted.q)
        c_pred.append(report.predicted.c)
    q_dev = np.max(np.abs(np.mean(q, 0) / np.mean(q_pred, 0) - 1))
    c_dev = np.max(np.abs(np.mean(c, 0) - np.mean(c_pred, 0)))
    assert q_dev < 0.10, (phase, q_dev)
    assert c_dev < 0.05, (phase, c_dev)
    assert report.covered_links == len(report.links) == 11


@pytest.mark.parametrize("phase", list(PHASES))
def test_phase_verdict_in_all_three_phases(phase):
    g = torch.Generator().manual_seed(3)
    model = tanh_mlp(40, 300, PHASES[phase], SB2, g)
    report = diagnose(model, torch.randn(32, 300, generator=g))
    assert report.phase == phase
    theory = report.predicted.theory
    assert theory is not None and theory.activation == "tanh"
    assert theory.phase == ("critical" if phase == "critical" else phase)
    # measured gradient growth on the settled layers vs the fixed point's chi_1 (finite width: 4%)
    assert abs(report.chi_1_bulk - theory.chi_1) < 0.04
    assert abs(theory.sigma_b2 - SB2) < 0.02


def test_relu_he_init_is_critical_and_predicted_exactly():
    g = torch.Generator().manual_seed(4)
    model = tanh_mlp(30, 300, 2.0, 0.0, g, act=nn.ReLU)
    report = diagnose(model, torch.randn(32, 300, generator=g))
    assert report.phase == "critical"
    assert report.predicted.theory.activation == "relu"
    # ReLU: chi^l = sigma_w2 / 2 at every q, so every predicted link is the layer's own sigma_w2 / 2
    expected = np.array([layer.sigma_w2 / 2 for layer in report.layers[1:]])
    np.testing.assert_allclose(report.predicted.chi_1, expected, rtol=1e-12)
    assert report.recommendation.sigma_w2 == pytest.approx(2.0) and report.recommendation.sigma_b2 == 0.0


@pytest.mark.parametrize("sigma_w2", [1 / 3, 4.0])
def test_following_the_recommendation_makes_a_deep_net_critical(sigma_w2):
    """1/3 is PyTorch's default nn.Linear weight variance x fan-in (deeply ordered); 4 is chaotic."""
    g = torch.Generator().manual_seed(5)
    model = tanh_mlp(50, 256, sigma_w2, SB2, g)
    x = torch.randn(32, 256, generator=g)
    before = diagnose(model, x)
    assert before.phase != "critical" and abs(before.chi_1_bulk - 1) > 0.2
    rec = before.recommendation
    assert rec.sigma_w2 == pytest.approx(float(critical_sigma_w2("tanh", rec.sigma_b2)))
    assert "critical_init_(model, 'tanh'" in rec.call
    rec.apply(model, generator=g)
    after = diagnose(model, x)
    assert after.phase == "critical"
    assert abs(after.chi_1_bulk - 1.0) < 0.05
    assert after.predicted.theory.chi_1 == pytest.approx(1.0, abs=0.02)


# ------------------------------------------------------------------------------------ convolutions


def _conv_net(depth, channels, sigma_w2, init, g):
    layers: list[nn.Module] = []
    for _ in range(depth):
        conv = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="circular")
        with torch.no_grad():
            if init == "delta":
                delta_orthogonal_(conv.weight, math.sqrt(sigma_w2), generator=g)
            else:
                conv.weight.normal_(0.0, math.sqrt(sigma_w2 / (9 * channels)), generator=g)
            conv.bias.normal_(0.0, math.sqrt(SB2), generator=g)
        layers += [conv, nn.Tanh()]
    return nn.Sequential(*layers[:-1])


@pytest.mark.parametrize("init", ["gaussian", "delta"])
def test_circular_conv_stack_follows_the_per_position_maps(init):
    """256 channels, 6 layers, mean of 2 nets. A spatially smooth signal sees a convolution as one c x c
    matrix, so q^l fluctuates by ~sqrt(2/c) = 9% per net (6% for 2); tolerances q 10%, c 0.05 (measured
    deviations <= 3% and 0.02 over seeds)."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(8, 256, 8, 8, generator=g)
    x[1::2] = 0.6 * x[0::2] + 0.8 * x[1::2]
    reports = [diagnose(_conv_net(6, 256, TANH_CRITICAL, init, g), x, jacobian=False) for _ in range(2)]
    q = np.mean([r.q for r in reports], 0) / np.mean([r.predicted.q for r in reports], 0)
    c = np.mean([r.c for r in reports], 0) - np.mean([r.predicted.c for r in reports], 0)
    assert np.max(np.abs(q - 1)) < 0.10
    assert np.max(np.abs(c)) < 0.05
    assert reports[0].covered_links == 5
    assert all(layer.kind == "conv2d" for layer in reports[0].layers)


def test_one_conv_layer_prediction_is_the_exact_expectation_over_weights():
    """Weights +-a with random signs have a flat tap profile and sigma_w2 = 9 c a^2 exactly; the expected
    pre-activation variance per position is then sigma_w2 times the zero-padded 3x3 window mean of the
    channel-mean squared input (avg_pool2d with count_include_pad), plus sigma_b2, at stride 2."""
    g = torch.Generator().manual_seed(7)
    c_in, a = 4, 0.2
    conv = nn.Conv2d(c_in, 8, 3, stride=2, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(a * (2 * torch.randint(0, 2, conv.weight.shape, generator=g) - 1))
    model = nn.Sequential(conv, nn.Tanh(), nn.Conv2d(8, 8, 1))
    x = torch.randn(6, c_in, 9, 9, generator=g).double()
    report = diagnose(model.double(), x, jacobian=False)
    magnitude = float(conv.weight.detach().abs().max())  # a rounded to float32
    window = F.avg_pool2d(x.square().mean(1, keepdim=True), 3, stride=2, padding=1, count_include_pad=True)
    expected = float((9 * c_in * magnitude**2) * window.mean())
    assert report.predicted.q[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular"),
        nn.Conv2d(1, 1, 3, stride=2, padding=1),
        nn.Conv2d(1, 1, (3, 5), padding="same", dilation=(1, 2), padding_mode="reflect"),
        nn.Conv2d(1, 1, 4, stride=3, padding=2, padding_mode="replicate"),
        nn.Conv1d(1, 1, 5, padding=2, padding_mode="circular"),
        nn.Conv3d(1, 1, 3, stride=(1, 2, 1), padding=0),
    ],
)
def test_spatial_spread_is_the_layers_own_convolution(conv):
    """``sum_b v_b M(s p + d b)`` equals the layer itself applied to M with the profile as its kernel."""
    rng = np.random.default_rng(0)
    profile = rng.uniform(0.1, 1.0, conv.kernel_size)
    profile /= profile.sum()
    maps = rng.uniform(0.0, 2.0, (3, *([9] * (conv.weight.dim() - 2))))
    reference = conv.double()
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(profile).reshape(conv.weight.shape))
        expected = reference._conv_forward(torch.from_numpy(maps).unsqueeze(1), reference.weight, None)
    np.testing.assert_allclose(spread(maps, profile, conv_geometry(conv)), expected[:, 0].numpy(), rtol=1e-12)


def test_kinked_activation_on_large_maps_is_predicted_with_spatial_means():
    g = torch.Generator().manual_seed(15)
    layers: list[nn.Module] = []
    for _ in range(4):
        layers += [nn.Conv2d(32, 32, 3, padding=1), nn.Hardtanh()]
    x = torch.randn(32, 32, 8, 8, generator=g)
    report = diagnose(nn.Sequential(*layers[:-1]), x, jacobian=False)
    assert [layer.activation for layer in report.layers[:-1]] == ["hard_tanh"] * 3
    assert any("spatial mean" in note for note in report.notes)
    assert np.all(np.isfinite(report.predicted.c)) and np.max(np.abs(report.c - report.predicted.c)) < 0.1


def test_vanilla_cnn_is_unrolled_and_recommendation_resets_it():
    g = torch.Generator().manual_seed(8)
    model = dltheory.nn.VanillaCNN(
        depth=12, channels=16, init="gaussian", sigma_w2=1.0, sigma_b2=SB2, generator=g
    )
    x = torch.randn(8, 1, 16, 16, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(unrolled(model)(x), model(x), rtol=1e-5, atol=1e-6)
    report = diagnose(model, x)
    assert len(report.layers) == 12 + 4  # stem (3), stack, head
    assert any("unrolled" in note for note in report.notes)
    assert report.phase == "ordered"
    report.recommendation.apply(model, generator=g)
    assert model.sigma_w2 == pytest.approx(report.recommendation.sigma_w2)
    assert model.init == "delta_orthogonal"
    assert diagnose(model, x).chi_1_bulk == pytest.approx(1.0, abs=0.1)


# ------------------------------------------------------------------------------------ coverage


def test_batch_norm_breaks_coverage_and_buffers_are_restored():
    width = 64
    layers: list[nn.Module] = [nn.Linear(width, width)]
    for _ in range(4):
        layers += [nn.BatchNorm1d(width), nn.Tanh(), nn.Linear(width, width)]
    model = nn.Sequential(*layers)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = diagnose(model, torch.randn(16, width))
    assert report.phase is None
    assert all(link["kind"] == "normalisation" for link in report.links)
    assert any("BatchNorm1d" in note for note in report.notes)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])
    assert all(p.grad is None for p in model.parameters())


def test_unknown_activation_is_measured_not_predicted():
    g = torch.Generator().manual_seed(9)
    model = tanh_mlp(5, 64, 1.0, 0.0, g, act=nn.Softplus)
    report = diagnose(model, torch.randn(16, 64))
    assert report.phase is None
    assert all(link["kind"] == "unknown-activation" for link in report.links)
    assert any("unknown activation" in note and "Softplus" in note for note in report.notes)
    # each layer is its own run: only the one-step prediction from its measured input exists
    assert len(report.segments) == 5 and np.all(np.isnan(report.predicted.chi_1))


def test_mixed_model_is_judged_on_its_longest_covered_run():
    g = torch.Generator().manual_seed(10)
    head = tanh_mlp(3, 128, 1.0, SB2, g)
    body = tanh_mlp(20, 128, TANH_CRITICAL, SB2, g)
    model = nn.Sequential(head, nn.BatchNorm1d(128), nn.Tanh(), body)
    report = diagnose(model, torch.randn(32, 128, generator=g))
    assert report.main_segment == (3, 22)
    assert report.phase == "critical"
    assert sum(1 for link in report.links if not link["covered"]) == 1


class _Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.fcs = nn.ModuleList([nn.Linear(32, 32) for _ in range(4)])

    def forward(self, x):
        for fc in self.fcs[:-1]:
            x = F.leaky_relu(fc(x), 0.2)
        return self.fcs[-1](x)


def test_functional_and_inplace_activations_are_recognised():
    report = diagnose(_Functional(), torch.randn(8, 32))
    assert [layer.activation for layer in report.layers] == ["leaky_relu"] * 3 + [None]
    assert report.recommendation.activation.params["slope"] == pytest.approx(0.2)

    plain_net = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    in_place_net = copy.deepcopy(plain_net)
    for module in in_place_net:
        if isinstance(module, nn.ReLU):
            module.inplace = True
    x = torch.randn(8, 16)
    in_place, plain = diagnose(in_place_net, x), diagnose(plain_net, x)
    # the gradient hook sees the pre-activation gradient even though ReLU overwrote the tensor
    np.testing.assert_allclose(in_place.grad_sq, plain.grad_sq, rtol=1e-6)
    np.testing.assert_allclose(in_place.q, plain.q, rtol=1e-6)
    assert [layer.activation for layer in in_place.layers] == ["relu", "relu", None]


class _TokenModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 64)
        self.body = nn.Sequential(
            nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 3)
        )

    def forward(self, tokens):
        return self.body(self.embed(tokens).mean(dim=1))


def test_integer_inputs_are_passed_through_without_a_jacobian():
    tokens = torch.randint(0, 50, (8, 5), generator=torch.Generator().manual_seed(0))
    report = diagnose(_TokenModel(), tokens)
    assert report.jacobian is None and len(report.layers) == 3
    assert np.all(np.isfinite(report.grad_norms)) and report.covered_links == 2
    assert any("embed" in note for note in report.notes)  # parameters outside Linear / Conv


# ------------------------------------------------------------------------------------ Jacobian, output


def test_jacobian_mean_matches_exact_trace_and_theory():
    g = torch.Generator().manual_seed(12)
    model = tanh_mlp(6, 48, TANH_CRITICAL, SB2, g, d_in=20)
    x = torch.randn(64, 20, generator=g)
    report = diagnose(model, x)
    exact = np.mean(
        [float(torch.autograd.functional.jacobian(model, x[b]).square().sum()) / 20 for b in range(64)]
    )
    stats = report.jacobian
    assert abs(stats.mean_sq - exact) < 4 * stats.mean_sq_stderr
    assert stats.predicted_mean_sq == pytest.approx(exact, rel=0.3)  # mean field at width 48, depth 6


def test_spectrum_mode_uses_the_matrix_free_jacobian():
    g = torch.Generator().manual_seed(13)
    model = tanh_mlp(4, 32, TANH_CRITICAL, SB2, g)
    x = torch.randn(4, 32, generator=g)
    report = diagnose(model, x, jacobian="spectrum", jacobian_k=3)
    exact = torch.linalg.svdvals(torch.autograd.functional.jacobian(model, x[0]).double())
    values = np.array(report.jacobian.singular_values)
    np.testing.assert_allclose(values[:3], exact[:3].numpy(), rtol=1e-4)
    # the smallest are at float32 round-off of the largest (the Jacobian is computed in float32)
    np.testing.assert_allclose(values[3:], exact[-3:].numpy(), atol=1e-6 * float(exact[0]))
    assert diagnose(model, x, jacobian=False).jacobian is None


def test_to_dict_is_json_and_plot_writes_a_png(tmp_path):
    g = torch.Generator().manual_seed(14)
    model = nn.Sequential(tanh_mlp(6, 32, 1.0, SB2, g), nn.BatchNorm1d(32), tanh_mlp(4, 32, 1.0, SB2, g))
    report = dltheory.diagnose(model, torch.randn(8, 32, generator=g))  # the package-level entry point
    assert dltheory.diagnose is diagnose
    payload = json.loads(to_json(report.to_dict()))
    assert payload["phase"] == report.phase and len(payload["q"]) == 10
    assert payload["predicted"]["theory"]["activation"] == "tanh"
    path = tmp_path / "diag.png"
    report.plot(path)
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 300


# ------------------------------------------------------------------------------------ errors


def test_bad_inputs_give_clear_errors():
    model = tanh_mlp(3, 16, 1.0, SB2, torch.Generator().manual_seed(0))
    with pytest.raises(DiagnoseError, match=r"shape \(8, 15\).*mat1 and mat2"):
        diagnose(model, torch.randn(8, 15))
    with pytest.raises(ValueError, match="batch of at least 2"):
        diagnose(model, torch.randn(1, 16))
    with pytest.raises(ValueError, match="finite"):
        diagnose(model, torch.full((4, 16), float("nan")))
    with pytest.raises(TypeError, match="inputs must be a torch.Tensor"):
        diagnose(model, [[0.0] * 16] * 4)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        diagnose(lambda x: x, torch.randn(4, 16))
    with pytest.raises(ValueError, match="pairs"):
        diagnose(model, torch.randn(4, 16), pairs=[(0, 0)])
    with pytest.raises(ValueError, match="pairs=3 disjoint pairs need at least 6"):
        diagnose(model, torch.randn(4, 16), pairs=3)
    with pytest.raises(ValueError, match="jacobian must be one of"):
        diagnose(model, torch.randn(4, 16), jacobian="full")
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv"):
        diagnose(nn.Tanh(), torch.randn(4, 16))


class _Raises(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        raise RuntimeError("custom failure inside forward")


class _Tuple(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x), x


def test_model_that_raises_or_returns_no_batch_gives_clear_error():
    with pytest.raises(DiagnoseError, match="_Raises raised RuntimeError.*custom failure"):
        diagnose(_Raises(), torch.randn(4, 4))
    with pytest.raises(DiagnoseError, match="returned tuple"):
        diagnose(_Tuple(), torch.randn(4, 4))
