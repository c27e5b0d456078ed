"""arora-lp-regression: the tiny profile end to end, the per-copy learning-rate trick, resuming."""

from __future__ import annotations

import dataclasses

import matplotlib.image
import numpy as np
import pytest
import torch

from dltheory.experiments import arora_lp_regression as exp
from dltheory.experiments.base import config_to_dict
from dltheory.runner.runs import RunDir
from support import has_dataset

pytestmark = pytest.mark.skipif(
    not has_dataset("gas-sensor-drift", ("gas_sensor_drift.csv.gz",)), reason="gas-sensor data not available"
)


def test_tiny_profile_produces_claims_and_figures(tmp_path):
    config = exp.PROFILES["tiny"]
    result = exp.run(config, RunDir(tmp_path / "run", config_to_dict(config)))
    assert result.claims and all(c.name for c in result.claims)
    assert any("1316 rows" in note and "2565" in note for note in result.notes)
    width_claims = [c for c in result.claims if "follows the scalar-width trajectory" in c.name]
    assert width_claims and all(c.agree for c in width_claims)  # end-to-end dynamics depend on depth only
    paths = exp.plot(result, tmp_path)
    assert len(paths) == 3
    for path in paths:
        assert matplotlib.image.imread(path).shape[2] in (3, 4)


def small_block(methods, iterations=30, checkpoint=None, checkpoint_every=0):
    x, y = exp.load_ethanol("standardize")
    config = dataclasses.replace(
        exp.PROFILES["tiny"], iterations=iterations, checkpoint_every=checkpoint_every
    )
    return exp.train_block(x, y, 4, methods, "balanced", 0.01, np.array([1.0]), config, checkpoint)


@pytest.mark.parametrize(
    ("optimizer", "depth", "lrs"),
    [
        ("gd", 2, (1e-3, 3e-2)),
        ("adagrad", 1, (1e-2, 0.3)),
        ("adadelta", 1, (0.1, 3.0)),
        ("adam", 1, (1e-3, 0.1)),
    ],
)
def test_copies_trained_together_equal_separate_runs(optimizer, depth, lrs):
    together = small_block([exp.Method("m", optimizer, depth, 1, lrs)])
    for index, lr in enumerate(lrs):
        alone = small_block([exp.Method("m", optimizer, depth, 1, (lr,))])
        np.testing.assert_allclose(
            np.asarray(together["history"][index]), np.asarray(alone["history"][0]), rtol=1e-10
        )


def test_block_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    methods = [exp.Method("gd", "gd", 2, 1, (1e-3, 1e-2))]
    reference = small_block(methods, iterations=20)

    class Interrupted(torch.optim.SGD):
        calls = 0

        def step(self, closure=None):
            Interrupted.calls += 1
            if Interrupted.calls > 13:
                raise KeyboardInterrupt
            return super().step(closure)

    checkpoint = tmp_path / "block.pt"
    monkeypatch.setitem(exp.OPTIMIZERS, "gd", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        small_block(methods, iterations=20, checkpoint=checkpoint, checkpoint_every=5)
    assert torch.load(checkpoint, weights_only=False)["iteration"] == 10
    monkeypatch.setitem(exp.OPTIMIZERS, "gd", torch.optim.SGD)
    resumed = small_block(methods, iterations=20, checkpoint=checkpoint, checkpoint_every=5)
    np.testing.assert_allclose(np.asarray(resumed["history"]), np.asarray(reference["history"]), rtol=1e-12)


def test_bad_config_is_refused(tmp_path):
    config = dataclasses.replace(exp.PROFILES["tiny"], preprocessing="whiten")
    with pytest.raises(ValueError, match="preprocessing must be one of"):
        exp.run(config, RunDir(tmp_path / "run", config_to_dict(config)))
