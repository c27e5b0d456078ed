"""arora-mnist: the tiny profile end to end (same function at the start, +15% parameters)."""

from __future__ import annotations

import copy

import matplotlib.image
import pytest
import torch

from dltheory.experiments import arora_mnist as exp
from dltheory.experiments.base import config_to_dict
from dltheory.nn import overparameterize
from dltheory.runner.runs import RunDir
from support import MNIST_FILES, has_dataset


def test_overparameterized_tutorial_net_starts_as_the_same_function():
    net = exp.TutorialConvNet().tutorial_init_(torch.Generator().manual_seed(0)).eval()
    deep = overparameterize(copy.deepcopy(net), 2).eval()
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(deep(x), net(x), atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(not has_dataset("mnist", MNIST_FILES), reason="MNIST not available")
def test_tiny_profile_produces_claims_and_figure(tmp_path):
    config = exp.PROFILES["tiny"]
    run_dir = RunDir(tmp_path / "run", config_to_dict(config))
    result = exp.run(config, run_dir)
    assert result.status == "completed"
    (params,) = [c for c in result.claims if "extra parameters" in c.name]
    assert params.agree  # 1,663,370 -> 1,925,614 (+15.8%)
    assert len(result.data["curves"]["original"]["eval_step"]) == 2
    (path,) = exp.plot(result, run_dir.figures)
    assert matplotlib.image.imread(path).shape[2] in (3, 4)
