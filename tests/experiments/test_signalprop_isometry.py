"""signalprop-isometry: the tiny profile end to end (claims, figures) and resuming from its checkpoints."""

from __future__ import annotations

import matplotlib.image

from dltheory.experiments import signalprop_isometry as exp
from dltheory.experiments.base import config_to_dict
from dltheory.experiments.registry import get
from dltheory.runner.runs import RunDir


def test_tiny_profile_claims_figures_and_resume(tmp_path):
    assert get("signalprop-isometry") is exp.EXPERIMENT
    config = exp.PROFILES["tiny"]
    run_dir = RunDir(tmp_path / "run", config_to_dict(config))
    result = exp.run(config, run_dir)
    cases = result.data["cases"]
    assert len(cases) == 4 * len(config.depths) + 2 * len(config.cnn_depths)
    assert len(result.claims) == len(cases) + 3
    assert all(isinstance(c.agree, bool) for c in result.claims[:-1])
    isometry = next(c for c in result.claims if "variance ratio" in c.name)
    assert isometry.agree and isometry.measured > 50  # orthogonal tanh is far more concentrated than Gaussian
    for case in cases:
        assert len(case["histogram"]["grid"]) == len(case["theory_log10_density"]) == config.density_points
    assert len(list(run_dir.checkpoints.glob("*.json"))) == len(cases)
    resumed = exp.run(config, RunDir(tmp_path / "run", config_to_dict(config), resume=True))
    assert resumed.data["cases"][0]["variance"] == cases[0]["variance"]
    paths = exp.plot(result, run_dir.figures)
    assert len(paths) == 3
    for path in paths:
        assert matplotlib.image.imread(path).shape[2] in (3, 4)
