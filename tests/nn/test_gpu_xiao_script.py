"""benchmarks/gpu_xiao.py (the self-contained GPU paper profile) agrees with the library; CPU smoke run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from dltheory.nn.convstack import reference_conv_stack
from dltheory.signalprop.spectrum import critical_point_for_q_star
from support import MNIST_FILES, has_dataset

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_xiao.py"


@pytest.fixture(scope="module")
def gpu_xiao():
    spec = importlib.util.spec_from_file_location("gpu_xiao", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("q_star", [0.02, 0.5])
def test_critical_point_matches_the_mean_field_library(gpu_xiao, q_star):
    sw2, sb2 = gpu_xiao.critical_point_for_q_star(q_star)
    ref_sw2, ref_sb2 = critical_point_for_q_star("tanh", q_star)
    assert sw2 == pytest.approx(float(ref_sw2), rel=1e-9)
    assert sb2 == pytest.approx(float(ref_sb2), rel=1e-9, abs=1e-15)


def test_stack_gradients_match_plain_autograd(gpu_xiao):
    g = torch.Generator().manual_seed(0)
    w = (0.3 * torch.randn(7, 4, 4, 3, 3, generator=g, dtype=torch.float64)).requires_grad_()
    b = (0.1 * torch.randn(7, 4, generator=g, dtype=torch.float64)).requires_grad_()
    x = torch.randn(3, 4, 5, 6, generator=g, dtype=torch.float64).requires_grad_()
    probe = torch.randn(3, 4, 5, 6, generator=g, dtype=torch.float64)
    ours = gpu_xiao.Stack.apply(x, w, b)
    ref = reference_conv_stack(x, w, b)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    for a, c in zip(
        torch.autograd.grad((ours * probe).sum(), [x, w, b]),
        torch.autograd.grad((ref * probe).sum(), [x, w, b]),
        strict=True,
    ):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not has_dataset("mnist", MNIST_FILES), reason="MNIST not available")
def test_smoke_run_writes_results(gpu_xiao, tmp_path):
    assert gpu_xiao.main([str(tmp_path), "--smoke"]) == 0
    report = json.loads((tmp_path / "gpu_xiao.json").read_text())
    assert set(report["runs"]) == {"4", "8"}
    for run in report["runs"].values():
        assert run["status"] == "completed" and run["steps"] == 3 and 0 <= run["test_accuracy"] <= 1


def test_evaluation_path_equals_the_training_forward(gpu_xiao):
    sw2, sb2 = gpu_xiao.critical_point_for_q_star(0.1)
    model = gpu_xiao.VanillaCNN(
        5, 4, sw2, sb2, torch.Generator().manual_seed(0), torch.device("cpu")
    ).double()
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        evaluated = model(x)
    torch.testing.assert_close(evaluated, model(x).detach(), rtol=1e-12, atol=1e-12)
