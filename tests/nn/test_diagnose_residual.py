"""dltheory.diagnose on residual and normalised networks: the torch.fx graph is followed, stream q, c and
gradients match the residual mean field, the verdict is about the stack's growth, the recommended branch
scale brings the measured growth within the target, and what is not covered is named."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from torch import nn

from dltheory.core.io import to_json
from dltheory.nn.diagnose import DiagnoseError, diagnose
from dltheory.nn.diagnose._graph import GraphRecorder, linear_weight_grad_norm, trace
from dltheory.nn.resnets import ResidualMLP, ResNet
from dltheory.signalprop import residual_propagation


def _inputs(batch: int, dim: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, dim, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "block, norm, position, activation",
    [("reduced", None, "pre", "tanh"), ("mlp", "layer", "pre", "gelu"), ("two_layer", "rms", "pre", "relu")],
)
def test_stream_statistics_follow_the_residual_mean_field(block, norm, position, activation):
    """Width 1000, 16 blocks, 32 inputs (16 pairs), one network: at every stream site q within 5% and c
    within 0.05 of the graph prediction, the measured end-to-end gradient growth within 10%. (One network's
    pair correlations drift together, all pairs sharing its weights, by up to ~0.04 here; the 0.03
    tolerance of the theory is checked over several networks in tests/signalprop/test_residual.py.)"""
    g = torch.Generator().manual_seed(3)
    sw2 = 2.0 if activation == "relu" else 1.0
    model = ResidualMLP(
        1000,
        1000,
        16,
        activation=activation,
        block=block,
        norm=norm,
        norm_position=position,
        sigma_w2=sw2,
        sigma_b2=0.05,
        alpha=0.7,
        generator=g,
    )
    report = diagnose(model, _inputs(32, 1000, 4), jacobian=False)
    res = report.residual
    assert report.mode == "graph" and res is not None and res.blocks == 16
    assert report.covered_links == len(report.links)
    assert np.max(np.abs(res.q / res.q_pred - 1)) < 0.05
    assert np.max(np.abs(res.c - res.c_pred)) < 0.05
    assert res.growth / res.growth_pred == pytest.approx(1.0, abs=0.10)
    assert res.verdict == ("exploding" if res.growth > 10 else "stable")


def test_graph_prediction_of_a_uniform_stack_is_the_residual_recursion():
    """ResidualMLP with exactly unit weight variance per layer, no biases, an identity embedding and inputs
    of equal norm: the stream q and gradient growth predicted along the graph equal residual_propagation
    (up to the table accuracy of the fast Gaussian maps, 1e-4)."""
    g = torch.Generator().manual_seed(5)
    model = ResidualMLP(64, 64, 12, alpha=0.8, generator=g)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.mul_((1.0 / (m.weight.square().mean() * m.in_features)).sqrt())
        model.embed.weight.copy_(torch.eye(64))  # every input enters the stack with the same q
    x = _inputs(8, 64, 6)
    x = x / x.norm(dim=1, keepdim=True) * 8.0
    report = diagnose(model, x, jacobian=False)
    res = report.residual
    theory = residual_propagation("tanh", 1.0, 0.0, 12, float(res.q_pred[0]), alpha=0.8, correlations=False)
    np.testing.assert_allclose(res.q_pred, theory.q, rtol=1e-4)
    np.testing.assert_allclose(res.grad_sq_pred / res.grad_sq_pred[-1], theory.grad_growth, rtol=1e-4)
    assert res.cumulative_pred[12] == pytest.approx(float(theory.end_to_end), rel=1e-4)
    # past the model: copies of the last block, until the growth passes 100x
    assert len(res.cumulative_pred) > 13 and res.depth_100x > 12
    for factor, depth in ((10, res.depth_10x), (100, res.depth_100x)):
        assert res.cumulative_pred[depth] >= factor > res.cumulative_pred[depth - 1]


@pytest.mark.parametrize(
    "kwargs", [{"block": "reduced"}, {"block": "mlp", "norm": "layer", "activation": "gelu"}]
)
def test_recommendation_brings_the_measured_growth_within_target(kwargs):
    g = torch.Generator().manual_seed(7)
    model = ResidualMLP(256, 256, 40, sigma_w2=1.5, generator=g, **kwargs)
    x = _inputs(32, 256, 8)
    before = diagnose(model, x, jacobian=False)
    assert before.phase == "exploding" and before.residual.growth > 10
    rec = before.recommendation
    assert rec.kind == "branch_scale" and 0 < rec.branch_multiplier < 1
    assert rec.predicted_growth == pytest.approx(2.0, rel=0.01)
    assert len(rec.targets) == 40 and all(
        name.endswith(".branch.1") or name.endswith(".branch.2") for name in rec.targets
    )
    fresh = ResidualMLP(256, 256, 40, sigma_w2=1.5, generator=torch.Generator().manual_seed(7), **kwargs)
    rec.apply(fresh)
    rec.apply(fresh)  # idempotent: targets are absolute variances
    after = diagnose(fresh, x, jacobian=False)
    assert after.phase == "stable"
    assert 1.0 < after.residual.growth <= 10.0
    assert after.residual.growth == pytest.approx(2.0, rel=0.25)
    assert json.loads(to_json(after.to_dict()))["residual"]["verdict"] == "stable"


def test_conv_resnet_is_followed_through_its_blocks():
    """A small circular-padded ReLU ResNet (128 channels, 6 blocks, 8x8 inputs): every block is found, the
    pooling is named as not covered, and q at the stream sites is within 15% (finite channel count: a
    smooth signal sees each convolution as one 128 x 128 matrix, ~sqrt(2 / 128) = 12% per layer)."""
    g = torch.Generator().manual_seed(9)
    model = ResNet(3, 128, depth=6, alpha=0.5, generator=g)
    report = diagnose(model, torch.randn(16, 3, 8, 8, generator=g), jacobian=False)
    res = report.residual
    assert res.blocks == 6 and res.block == "h + act(relu) -> dense -> act(relu) -> dense -> x0.5"
    assert np.max(np.abs(res.q / res.q_pred - 1)) < 0.15
    assert any("mean" in note and "not covered" in note for note in report.notes)
    assert all(layer.kind == "conv2d" for layer in report.layers[:-1])


class _BatchNormBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc, self.bn = nn.Linear(width, width), nn.BatchNorm1d(width)

    def forward(self, h):
        return h + self.fc(torch.tanh(self.bn(h)))


class _AttentionBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, 2, batch_first=True)

    def forward(self, h):
        return h + self.attn(h, h, h, need_weights=False)[0]


def test_uncovered_modules_are_named_and_strict_mode_raises():
    width = 32
    bn = nn.Sequential(nn.Linear(width, width), *(_BatchNormBlock(width) for _ in range(3)))
    report = diagnose(bn, _inputs(16, width, 1))
    assert any("BatchNorm" in note and "not covered" in note for note in report.notes)
    assert report.residual is None or report.residual.blocks < 3
    with pytest.raises(DiagnoseError, match=r"strict=True.*bn \(BatchNorm1d\)"):
        diagnose(bn, _inputs(16, width, 1), strict=True)
    attention = nn.Sequential(nn.Linear(width, width), _AttentionBlock(width), nn.Linear(width, 4)).eval()
    x = torch.randn(4, 5, width, generator=torch.Generator().manual_seed(2))
    with pytest.raises(DiagnoseError, match="attention mixes positions"):
        diagnose(attention, x, strict=True)


class _Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.fcs = nn.ModuleList([nn.Linear(32, 32) for _ in range(4)])

    def forward(self, x):
        for fc in self.fcs:
            x = x + fc(torch.tanh(x)) if x.sum() > -1e9 else x  # data-dependent branch: fx cannot trace
        return x


def test_untraceable_residual_model_falls_back_to_hooks_and_says_why():
    report = diagnose(_Untraceable(), _inputs(16, 32, 0))
    assert report.mode == "chain" and report.residual is None and report.phase is None
    assert any("could not be traced" in note for note in report.notes)
    assert np.all(np.isfinite(report.q)) and np.all(np.isfinite(report.chi_1))  # still measured


def test_residual_report_plots_stream_and_growth(tmp_path):
    g = torch.Generator().manual_seed(11)
    report = diagnose(ResidualMLP(32, 64, 10, generator=g), _inputs(16, 32, 12))
    path = tmp_path / "residual.png"
    report.plot(path)
    assert mpimg.imread(path).shape[0] > 300
    summary = report.summary()
    assert summary["residual_blocks"] == 10 and summary["gradient_growth_measured"] > 1


def test_growth_target_is_validated():
    model = ResidualMLP(8, 8, 2)
    with pytest.raises(ValueError, match="growth_target must be > 1"):
        diagnose(model, _inputs(4, 8, 0), growth_target=0.5)


class _Scalings(nn.Module):
    """A residual block followed by scalings by constants, an eval-mode dropout and a reshape."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.branch, self.drop = nn.Linear(8, 16), nn.Linear(16, 16), nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = h + self.branch(torch.tanh(h)) * 0.5
        h = self.drop(-h / 3.0)
        return h.reshape(h.shape[0], 4, 4)


class _Outputs(torch.fx.Interpreter):
    """Runs a traced graph and keeps a copy of every node's output."""

    outputs: dict[str, torch.Tensor]

    def run_node(self, n: torch.fx.Node):  # type: ignore[no-untyped-def]
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            self.outputs[n.name] = result.detach().clone()
        return result


@pytest.mark.parametrize("pairs", [[(0, 1), (2, 3), (4, 5)], [(0, 5), (3, 1), (2, 7)]])
def test_graph_records_are_the_statistics_of_each_tensor(pairs):
    """Every recorded node's q per input, pair correlations and maps equal a direct float64 computation on
    the tensor it produced: also for the scalings and the eval-mode dropout, whose statistics the recorder
    derives from their input's without touching the tensor, and for strided (default) and arbitrary
    pairs. Derived and measured records must differ only by rounding: a derivation that used the wrong
    input, scale or shape would be off by far more than 1e-6."""
    model = _Scalings().eval()
    traced = trace(model)
    assert traced is not None
    pair_a, pair_b = (torch.tensor([p[i] for p in pairs]) for i in (0, 1))
    x = _inputs(8, 8, 13)
    recorder = GraphRecorder(traced, 8, pair_a, pair_b)
    recorder.run(x)
    copies = _Outputs(traced.root, graph=traced.graph)
    copies.outputs = {}
    copies.run(x)
    kinds = {r.node.kind for r in recorder.records}
    assert {"scale", "pass", "add", "dense", "act"} <= kinds
    for record in recorder.records:
        t = copies.outputs[record.name].to(torch.float64)
        flat = t.reshape(8, -1)
        sq = flat.square().sum(dim=1)
        dots = (flat[pair_a] * flat[pair_b]).sum(dim=1)
        diag = t.square().mean(dim=-1)
        cross = (t[pair_a] * t[pair_b]).mean(dim=-1)
        scale = (diag[pair_a] * diag[pair_b]).sqrt().numpy()
        # to the float32 rounding of the tensors (a derived scaling is s^2 times its input's in float64; pair
        # products are taken in the tensor's dtype and summed in float64)
        np.testing.assert_allclose(record.q_samples, (sq / flat.shape[1]).numpy(), rtol=1e-6)
        np.testing.assert_allclose(record.diag, diag.numpy(), rtol=1e-6)
        np.testing.assert_allclose(
            record.c_pairs, (dots / (sq[pair_a] * sq[pair_b]).sqrt()).numpy(), atol=1e-6
        )
        assert np.max(np.abs(record.cross - cross.numpy()) / scale) < 1e-6


def test_diagnose_restores_the_garbage_collector():
    """diagnose pauses Python's cyclic collector while it runs and restores its state, also on error."""
    import gc

    model = ResidualMLP(8, 8, 2)
    assert gc.isenabled()
    diagnose(model, _inputs(4, 8, 0))
    assert gc.isenabled()
    with pytest.raises(DiagnoseError):
        diagnose(model, _inputs(4, 5, 0))  # wrong input width: the model raises
    assert gc.isenabled()
    gc.disable()
    try:
        diagnose(model, _inputs(4, 8, 0))
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("rows, fan_in, fan_out", [(16, 32, 24), (64, 4, 3), (6, 5, 7)])
def test_linear_weight_grad_norm_is_the_norm_of_g_transpose_x(rows, fan_in, fan_out):
    """||g^T x||_F from the Gram matrices (rows^2 <= fan_in fan_out) or directly: both equal the float64
    norm of the weight gradient (float32 products: 1e-5)."""
    g = torch.Generator().manual_seed(rows)
    x = torch.randn(rows // 2, 2, fan_in, generator=g)  # a position axis: rows are batch x positions
    grad = torch.randn(rows // 2, 2, fan_out, generator=g)
    exact = float((grad.double().reshape(-1, fan_out).T @ x.double().reshape(-1, fan_in)).norm())
    assert linear_weight_grad_norm(x, grad) == pytest.approx(exact, rel=1e-5)


class _SharedBranch(nn.Module):
    """A residual stack whose blocks reuse one Linear (its weight gradient sums over the calls) beside
    single-call Linears and a Linear applied to a parameter (not computed from the input)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(21)
        self.embed, self.shared, self.last = nn.Linear(12, 16), nn.Linear(16, 16), nn.Linear(16, 16)
        self.offset = nn.Parameter(torch.randn(1, 16, generator=g))
        self.from_param = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for _ in range(3):
            h = h + self.shared(torch.tanh(h))
        h = h + self.from_param(self.offset.expand(x.shape[0], 16))
        return h + self.last(torch.tanh(h))


@pytest.mark.parametrize("model", [ResidualMLP(12, 32, 6, sigma_b2=0.1), _SharedBranch()])
def test_graph_mode_weight_gradient_norms_match_autograd(model):
    """report.grad_norms (per layer call: the norm of its module's whole weight gradient) equal the norms
    autograd gives for the diagnosis' read-out ``sum_b <f(x_b), v_b>``, whether they come from the hooks on
    single-call Linear outputs or from the backward pass (shared and input-independent layers)."""
    x = _inputs(16, 12, 22)
    report = diagnose(model, x, jacobian=False)
    assert report.mode == "graph"
    out = model(x)
    direction = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    grads = torch.autograd.grad((out * direction.to(out.dtype)).sum(), [m.weight for m in layers])
    norms = {id(m): float(gr.double().norm()) for m, gr in zip(layers, grads, strict=True)}
    expected = [norms[id(model.get_submodule(layer.name.split("#")[0]))] for layer in report.layers]
    assert len(expected) >= len(layers)
    np.testing.assert_allclose(report.grad_norms, expected, rtol=1e-5)
    # which norms came from the hooks: every Linear of the ResidualMLP; of _SharedBranch only the two that
    # are called once on signals computed from the input
    traced = trace(model)
    assert traced is not None
    recorder = GraphRecorder(traced, 16, torch.tensor([0]), torch.tensor([1]))
    recorder.run(x)
    hooked = {name for name, m in model.named_modules() if m in recorder.weight_grads}
    linears = {name for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert hooked == ({"embed", "last"} if isinstance(model, _SharedBranch) else linears)


@pytest.mark.parametrize("residual", [True, False])
def test_report_times_its_phases(residual):
    """report.timings: positive seconds for tracing, the forward and backward passes and the theory, which
    add up to no more than the total (the rest is bookkeeping between them); also in to_dict."""
    model = (
        ResidualMLP(8, 16, 4)
        if residual
        else nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))
    )
    report = diagnose(model, _inputs(8, 8, 1))
    assert report.mode == ("graph" if residual else "chain")
    parts = ("trace", "forward", "backward", "theory")
    assert set(report.timings) == {*parts, "total"}
    assert all(report.timings[p] > 0 for p in parts)
    assert sum(report.timings[p] for p in parts) <= report.timings["total"]
    assert report.to_dict()["timings"] == report.timings


class _TokenResidual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(40, 16)
        self.branch, self.head = nn.Linear(16, 16), nn.Linear(16, 4)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens).mean(dim=1)
        h = h + self.branch(torch.tanh(h))
        return self.head(torch.tanh(h))


def test_graph_mode_weight_gradient_norms_with_integer_inputs():
    """Token ids have no gradient: the backward pass then forms the weight gradients itself (no hooks),
    and their norms still match autograd's."""
    torch.manual_seed(0)
    model = _TokenResidual()
    tokens = torch.randint(0, 40, (8, 5), generator=torch.Generator().manual_seed(1))
    report = diagnose(model, tokens)
    assert report.mode == "graph" and report.jacobian is None
    out = model(tokens)
    direction = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    weights = [model.branch.weight, model.head.weight]
    grads = torch.autograd.grad((out * direction.to(out.dtype)).sum(), weights)
    np.testing.assert_allclose(report.grad_norms, [float(g.double().norm()) for g in grads], rtol=1e-5)
