"""liao-dynamics: the tiny profile end to end, and resuming from its checkpoints."""

from __future__ import annotations

import matplotlib.image
from threadpoolctl import threadpool_limits

from dltheory.experiments import liao_dynamics as exp
from dltheory.experiments.base import config_to_dict
from dltheory.runner.runs import RunDir


def test_tiny_profile_agrees_plots_and_resumes(tmp_path):
    config = exp.PROFILES["tiny"]
    run_dir = RunDir(tmp_path / "run", config_to_dict(config))
    with threadpool_limits(limits=1):
        result = exp.run(config, run_dir)
        assert len(result.claims) == 4 * len(config.settings)
        assert result.verdict == "agree", [c for c in result.claims if c.agree is False]
        assert len(list(run_dir.checkpoints.glob("*.npz"))) == 2 * (config.runs // config.batch)
        resumed = exp.run(config, RunDir(tmp_path / "run", config_to_dict(config), resume=True))
    assert resumed.data["settings"][0]["simulation"] == result.data["settings"][0]["simulation"]
    paths = exp.plot(result, run_dir.figures)
    assert len(paths) == 2
    for path in paths:
        assert matplotlib.image.imread(path).shape[2] in (3, 4)
