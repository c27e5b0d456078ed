"""liao-early-stopping: the tiny profile end to end."""

from __future__ import annotations

import matplotlib.image
from threadpoolctl import threadpool_limits

from dltheory.experiments import liao_early_stopping as exp
from dltheory.experiments.base import config_to_dict
from dltheory.runner.runs import RunDir


def test_tiny_profile_agrees_and_plots(tmp_path):
    config = exp.PROFILES["tiny"]
    run_dir = RunDir(tmp_path / "run", config_to_dict(config))
    with threadpool_limits(limits=1):
        result = exp.run(config, run_dir)
    assert len(result.claims) == len(config.sigma2) + 3
    assert result.verdict == "agree", [c for c in result.claims if c.agree is False]
    times = [row["theory_time"] for row in result.data["rows"]]
    assert times == sorted(times)
    (path,) = exp.plot(result, run_dir.figures)
    assert matplotlib.image.imread(path).shape[2] in (3, 4)
