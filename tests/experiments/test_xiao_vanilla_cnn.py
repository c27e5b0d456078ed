"""xiao-depth, xiao-init, xiao-trainability, xiao-recipe: tiny profiles end to end, resume, divergence."""

from __future__ import annotations

import dataclasses
import json

import matplotlib.image
import numpy as np
import pytest

from dltheory.experiments import xiao_depth, xiao_init, xiao_recipe, xiao_trainability
from dltheory.experiments.base import Result, config_to_dict
from dltheory.nn.models import critical_point
from dltheory.runner.runs import RunDir
from dltheory.signalprop import settled_survival
from support import MNIST_FILES, has_dataset

pytestmark = pytest.mark.skipif(not has_dataset("mnist", MNIST_FILES), reason="MNIST not available")


def _run(module, tmp_path, config=None):
    config = config or module.PROFILES["tiny"]
    run_dir = RunDir(tmp_path / "run", config_to_dict(config), resume=True)
    result = module.run(config, run_dir)
    json.dumps(result.to_dict())  # JSON-able
    paths = module.plot(Result.from_dict(json.loads(json.dumps(result.to_dict()))), run_dir.figures)
    assert paths
    for path in paths:
        assert matplotlib.image.imread(path).shape[2] in (3, 4)
    return result, run_dir


def test_xiao_depth_tiny_records_curves_per_depth_and_resumes(tmp_path):
    result, run_dir = _run(xiao_depth, tmp_path)
    config = xiao_depth.PROFILES["tiny"]
    assert result.status == "completed"
    assert len(result.claims) == len(config.depths) + 1
    for depth in config.depths:
        run = result.data["runs"][str(depth)]
        assert run["steps_done"] == config.steps
        assert len(run["eval_step"]) >= 1 and 0.0 <= run["final_test_accuracy"] <= 1.0
    again, _ = _run(xiao_depth, tmp_path)  # resumed from the checkpoints: identical numbers
    assert again.data["runs"] == result.data["runs"]


def test_xiao_init_tiny_compares_four_initialisations(tmp_path):
    result, _ = _run(xiao_init, tmp_path)
    labels = list(result.data["runs"])
    assert labels[:3] == ["delta-orthogonal, critical", "block-orthogonal, critical", "Gaussian, critical"]
    assert len(labels) == 4 and len(result.claims) == 4
    critical = result.data["runs"]["delta-orthogonal, critical"]
    off = result.data["runs"][labels[3]]
    assert critical["six_xi_c"] > 1e6  # xi_c diverges at the critical point
    sw2, sb2 = critical_point("tanh", q_star=xiao_init.PROFILES["tiny"].q_star)
    assert critical["sigma_w2"] == pytest.approx(sw2, rel=1e-9)  # the tiny profile sets q* = 0.1
    assert off["six_xi_c"] < 200  # and is finite off it


def test_xiao_trainability_tiny_runs_a_sweep_and_records_divergence(tmp_path):
    config = xiao_trainability.PROFILES["tiny"]
    # an absurd learning rate makes some cells diverge: they must be recorded, not crash the sweep
    from dataclasses import replace

    wild = replace(config, optimizer="sgd", lr=1e38, warmup_steps=0)
    result, run_dir = _run(xiao_trainability, tmp_path, wild)
    cells = list((run_dir.path / "sweep" / "cells").glob("*.json"))
    assert len(cells) == 2 * len(config.sigma_w2s) * len(config.depths)
    statuses = {s for m in result.data["maps"].values() for row in m["status"] for s in row}
    assert statuses <= {"completed", "diverged"}
    assert "diverged" in statuses
    six_xi_c = np.asarray(result.data["six_xi_c"])
    assert six_xi_c.shape == (len(config.sigma_w2s),) and np.all(six_xi_c > 0)


def test_xiao_recipe_tiny_trains_every_setting(tmp_path):
    result, _ = _run(xiao_recipe, tmp_path)
    runs = result.data["runs"]
    assert "recipe (baseline)" in runs and "SGD 0.9, lr 1e-3, uniform (demo)" in runs
    assert {r["factor"] for r in runs.values()} >= {"baseline", "width", "q*", "stack rate", "warm-up"}
    steps = xiao_recipe.PROFILES["tiny"].steps
    assert all(s["steps_done"] == steps for r in runs.values() for s in r["seeds"].values())
    assert len(result.claims) == 3
    assert all(len(r["accuracies"]) == 1 for r in runs.values())


def test_xiao_depth_paper_features_baseline_budget_theory_q_star_full_test_set(tmp_path):
    config = dataclasses.replace(
        xiao_depth.PROFILES["tiny"],
        depths=(2, 12),
        q_star_target=0.99,
        baseline_init="gaussian",
        scale_head_lr=True,
        steps=10**6,  # only the wall-clock budget can end these runs
        budget_s=2.0,
        monitor_size=32,
        evaluations=1000,
    )
    result, run_dir = _run(xiao_depth, tmp_path, config)
    runs = result.data["runs"]
    assert list(runs) == ["2", "12", "12-gaussian"]
    q_star = result.data["q_star"]
    assert float(settled_survival("tanh", 12, q_star, 0.5)) == pytest.approx(0.99, abs=2e-3)
    for run in runs.values():
        assert run["stopped_by_budget"] and 1 <= run["steps_done"] < 10**6
        assert run["step_mode"] == "eager"  # CPU
        assert len(run["gradient_norms_init"]) == len(run["gradient_layers"])
        # the final accuracy is measured on all test images, not the monitored subset
        n = config.test_size
        assert run["final_test_accuracy"] * n == pytest.approx(round(run["final_test_accuracy"] * n))
    deep, base = runs["12"], runs["12-gaussian"]
    assert deep["sigma_w2"] == base["sigma_w2"]  # same critical point
    assert any("beats gaussian" in claim.name for claim in result.claims)
    partial = json.loads((run_dir.path / "partial.json").read_text())
    assert set(partial["runs"]) == set(runs)
