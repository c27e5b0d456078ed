"""laurent-minima: the tiny profile end to end (wide nets certified global, every converged point
classified), the figure, resuming from the per-cell checkpoints, bad configuration."""

from __future__ import annotations

import dataclasses

import matplotlib.image
import pytest

from dltheory.experiments import laurent_minima as exp
from dltheory.experiments.base import config_to_dict
from dltheory.runner.runs import RunDir


def test_tiny_profile_certifies_restarts_and_plots(tmp_path):
    config = exp.PROFILES["tiny"]
    run_dir = RunDir(tmp_path / "run", config_to_dict(config))
    result = exp.run(config, run_dir)
    wide = [c for c in result.claims if ", wide " in c.name]
    assert len(wide) == len(config.losses) and all(c.agree for c in wide)
    assert result.claims[-1].agree  # every converged restart classified
    cells = result.data["cells"]
    assert len(cells) == 2 * len(config.losses)
    for cell in cells:
        assert all(g >= -1e-9 for g in cell["gaps"])
    paths = exp.plot(result, tmp_path)
    assert len(paths) == 1 and matplotlib.image.imread(paths[0]).shape[2] in (3, 4)
    again = exp.run(config, RunDir(tmp_path / "run", config_to_dict(config), resume=True))
    assert again.data == result.data
    assert len(run_dir.metrics()) == len(cells)


def test_unknown_loss_is_refused(tmp_path):
    config = dataclasses.replace(exp.PROFILES["tiny"], losses=("mse",))
    with pytest.raises(ValueError, match="losses must be among"):
        exp.run(config, RunDir(tmp_path / "run", config_to_dict(config)))
