"""laurent-counterexample: the tiny profile end to end, its certificates, the figure, resuming."""

from __future__ import annotations

import matplotlib.image

from dltheory.experiments import laurent_counterexample as exp
from dltheory.experiments.base import config_to_dict
from dltheory.runner.runs import RunDir


def test_tiny_profile_certifies_the_counterexample_and_plots(tmp_path):
    config = exp.PROFILES["tiny"]
    run_dir = RunDir(tmp_path / "run", config_to_dict(config))
    result = exp.run(config, run_dir)
    by_name = {c.name: c for c in result.claims}
    assert by_name["non-smooth f: w1 = 0, w2 = (1, 0) certified a local minimum"].agree
    assert by_name["w1 = 1, w2 = (0, 1) certified a global minimum"].agree
    assert by_name[f"Huber-smoothed f (delta = {config.smoothing}): the bad point becomes a saddle"].agree
    assert all(c.agree for c in result.claims), [c for c in result.claims if not c.agree]
    assert min(result.data["nonsmooth_values"]) >= -1.0 - 1e-9
    paths = exp.plot(result, tmp_path)
    assert len(paths) == 1 and matplotlib.image.imread(paths[0]).shape[2] in (3, 4)
    # resuming reads the checkpoints instead of recomputing
    again = exp.run(config, RunDir(tmp_path / "run", config_to_dict(config), resume=True))
    assert again.data == result.data
    assert len(run_dir.metrics()) == 3
