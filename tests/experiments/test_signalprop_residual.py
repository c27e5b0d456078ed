"""signalprop-residual: registered under Yang & Schoenholz; the tiny profile end to end (Monte Carlo vs
recursion claims, the figure) and resuming from stored cases."""

from __future__ import annotations

import matplotlib.image

from dltheory.experiments import signalprop_residual as exp
from dltheory.experiments.base import config_to_dict
from dltheory.experiments.registry import get
from dltheory.runner.runs import RunDir


def test_registered_with_profiles():
    experiment = get("signalprop-residual")
    assert experiment.paper == "yang" and set(experiment.profiles) == {"tiny", "quick", "paper"}
    assert experiment.config("paper").width >= 500 and experiment.config("paper").depth >= 500


def test_tiny_profile_compares_monte_carlo_with_the_recursions_and_resumes(tmp_path):
    config = exp.PROFILES["tiny"]
    run_dir = RunDir(tmp_path / "run", config_to_dict(config))
    result = exp.run(config, run_dir)
    names = [case["name"] for case in result.data["cases"]]
    assert (
        "mlp-tanh-reduced-none" in names
        and "mlp-relu-reduced-layer" in names
        and "cnn-relu-two_layer-none" in names
    )
    judged = [c for c in result.claims if c.agree is not None]
    assert len(judged) == 3 * len(names) and all(c.agree for c in judged)
    tanh = next(case for case in result.data["cases"] if case["name"] == "mlp-tanh-reduced-none")
    assert tanh["q_theory"][0] == tanh["q"][0] and len(tanh["growth"]) == config.depth + 1
    (path,) = exp.plot(result, run_dir.figures)
    assert matplotlib.image.imread(path).shape[0] > 500
    again = exp.run(config, RunDir(tmp_path / "run", config_to_dict(config), resume=True))
    assert [c.to_dict() for c in again.claims] == [c.to_dict() for c in result.claims]
