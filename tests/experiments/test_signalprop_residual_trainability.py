"""signalprop-residual-trainability: the tiny profile end to end (grid, theory contours, diagnose before /
after on a ResNet and a pre-LN MLP stack) and resuming."""

from __future__ import annotations

import dataclasses

import matplotlib.image
import numpy as np
import pytest

from dltheory.experiments import signalprop_residual_trainability as exp
from dltheory.experiments.base import config_to_dict
from dltheory.experiments.registry import get
from dltheory.runner.runs import RunDir
from support import MNIST_FILES, has_dataset


def test_registered_and_theory_grid_is_monotone_in_sigma_w2():
    assert get("signalprop-residual-trainability").paper == "yang"
    theory = exp._theory_grid(exp.PROFILES["quick"], 1.0)
    log_g = np.array(theory["log_growth"])  # [depth, sigma_w2]
    assert log_g.shape == (len(theory["depths"]), len(theory["sigma_w2"]))
    assert np.all(np.diff(log_g[-1]) > 0) and np.all(np.diff(log_g[:, -1]) > 0)


@pytest.mark.skipif(not has_dataset("mnist", MNIST_FILES), reason="MNIST not available")
def test_tiny_profile_end_to_end_and_resumes(tmp_path):
    config = exp.PROFILES["tiny"]
    run_dir = RunDir(tmp_path / "run", config_to_dict(config))
    result = exp.run(config, run_dir)
    assert len(result.data["cells"]) == len(config.sigma_w2) * len(config.depths)
    cells = result.data["cells"]
    assert all(0.0 <= cell["accuracy"] <= 1.0 for cell in cells)
    for cell in cells:  # each network at lr_fraction of its own stability limit
        limit = 2 * (1 + config.momentum) / cell["lambda_max"]
        assert cell["lr"] == pytest.approx(min(config.lr_max, config.lr_fraction * limit), rel=1e-12)
    by_key = {(c["depth"], c["sigma_w2"]): c["lambda_max"] for c in cells}
    assert by_key[(4, 3.2)] > by_key[(2, 3.2)] and by_key[(4, 3.2)] > by_key[(4, 0.2)]
    assert [p["family"] for p in result.data["pairs"]] == ["resnet", "preln"]
    for pair in result.data["pairs"]:
        assert pair["growth_before"] > 1 and pair["verdict_before"] in ("stable", "exploding")
    (path,) = exp.plot(result, run_dir.figures)
    assert matplotlib.image.imread(path).shape[0] > 400
    again = exp.run(config, RunDir(tmp_path / "run", config_to_dict(config), resume=True))
    assert [c.to_dict() for c in again.claims] == [c.to_dict() for c in result.claims]


@pytest.mark.skipif(not has_dataset("mnist", MNIST_FILES), reason="MNIST not available")
def test_a_fixed_learning_rate_is_used_as_given(tmp_path):
    config = dataclasses.replace(exp.PROFILES["tiny"], lr=0.01, depths=(2,), sigma_w2=(0.2,))
    result = exp.run(config, RunDir(tmp_path / "run", config_to_dict(config)))
    (cell,) = result.data["cells"]
    assert cell["lr"] == 0.01 and cell["lambda_max"] is None
    assert all(p["lr_before"] == p["lr_after"] == 0.01 for p in result.data["pairs"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lr_fraction", 0.0),
        ("lr_fraction", 1.5),
        ("lr_max", 0.0),
        ("momentum", 1.0),
        ("lr", -0.1),
        ("curvature_batch", 0),
    ],
)
def test_bad_configuration_is_named(tmp_path, field, value):
    config = dataclasses.replace(exp.PROFILES["tiny"], **{field: value})
    with pytest.raises(ValueError, match=field):
        exp.run(config, RunDir(tmp_path / "run", config_to_dict(config)))
