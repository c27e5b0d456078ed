"""signalprop-diagnostics: the tiny profile end to end, and resuming from stored configurations."""

from __future__ import annotations

import matplotlib.image
import pytest

from dltheory.experiments import signalprop_diagnostics as exp
from dltheory.experiments.base import config_to_dict
from dltheory.experiments.registry import get
from dltheory.runner.runs import RunDir
from support import MNIST_FILES, has_dataset


def test_registered_with_profiles():
    experiment = get("signalprop-diagnostics")
    assert experiment.paper == "xiao" and set(experiment.profiles) == {"tiny", "quick", "paper"}


@pytest.mark.skipif(not has_dataset("mnist", MNIST_FILES), reason="MNIST not available")
def test_tiny_profile_produces_claims_figure_and_resumes(tmp_path):
    config = exp.PROFILES["tiny"]
    run_dir = RunDir(tmp_path / "run", config_to_dict(config))
    result = exp.run(config, run_dir)
    names = [c["name"] for c in result.data["configs"]]
    assert names == [
        "mlp-ordered",
        "mlp-critical",
        "mlp-chaotic",
        "cnn-gaussian",
        "cnn-delta_orthogonal",
        "relu-he",
    ]
    verdicts = {c.name: c for c in result.claims if c.name.endswith("phase verdict")}
    assert verdicts["mlp-ordered: phase verdict"].agree and verdicts["mlp-chaotic: phase verdict"].agree
    for config_outcome in result.data["configs"]:
        assert config_outcome["after"]["phase"] == "critical" or config_outcome["family"] == "cnn"
        assert 0.0 <= config_outcome["accuracy_before"] <= 1.0
    # every tanh MLP gets the same recommendation: trained once after re-initialisation
    after = {c["accuracy_after"] for c in result.data["configs"] if c["family"] == "mlp"}
    assert len(after) == 1
    (path,) = exp.plot(result, run_dir.figures)
    assert matplotlib.image.imread(path).shape[2] in (3, 4)
    # a second run reads the stored configurations instead of recomputing them
    again = exp.run(config, RunDir(tmp_path / "run", config_to_dict(config), resume=True))
    assert [c.to_dict() for c in again.claims] == [c.to_dict() for c in result.claims]
