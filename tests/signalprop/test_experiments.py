"""End-to-end runs of the signal-propagation experiments on their tiny profiles."""

from __future__ import annotations

import matplotlib.image
import pytest

from dltheory.experiments.base import config_to_dict
from dltheory.experiments.registry import get
from dltheory.runner.runs import RunDir


@pytest.mark.parametrize("name", ["signalprop-phase-diagram", "signalprop-conv-modes"])
def test_tiny_profile_runs_and_plots(tmp_path, name):
    experiment = get(name)
    config = experiment.config("tiny")
    result = experiment.run(config, RunDir(tmp_path / "r", config_to_dict(config)))
    assert result.experiment == name and result.claims
    assert all(claim.agree is not False for claim in result.claims), [c for c in result.claims if not c.agree]
    paths = experiment.plot(result, tmp_path / "figures")
    for path in paths:
        assert matplotlib.image.imread(path).shape[0] > 100
