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


def _synthetic_cells(edge_product: float) -> list[dict[str, float]]:
    """Accuracy 0.95 well inside the trainable region, chance (0.1) beyond it, with a smooth fall in
    log(sigma_w2 L) centred where sigma_w2 L = edge_product."""
    sw2 = np.geomspace(0.025, 3.2, 8)
    cells = []
    for depth in (4, 8, 16, 32, 64, 128):
        for s in sw2:
            fall = 1 / (1 + np.exp(-3 * (np.log(s * depth) - np.log(edge_product))))
            cells.append({"depth": depth, "sigma_w2": float(s), "accuracy": float(0.95 - 0.85 * fall)})
    return cells


def test_trainability_edges_follow_sigma_w2_L_const():
    """Cells whose accuracy is a function of sigma_w2 L: the edges lie on sigma_w2 L = const, slope -1;
    depths whose fall lies outside the grid have no edge."""
    cells = _synthetic_cells(edge_product=40.0)
    edges = exp._trainability_edges(cells)
    assert sorted(edges) == [8, 16, 32, 64, 128]  # at 4 blocks the grid ends before the fall
    products = [d * e for d, e in edges.items()]
    assert np.ptp(np.log(products)) < 0.15  # on one line sigma_w2 L = const, up to interpolation
    assert exp._edge_slope(edges) == pytest.approx(-1.0, abs=0.05)


def test_no_edge_means_no_slope():
    flat = [{"depth": d, "sigma_w2": s, "accuracy": 0.9} for d in (4, 8) for s in (0.1, 0.2)]
    assert exp._trainability_edges(flat) == {}
    assert np.isnan(exp._edge_slope({}))
