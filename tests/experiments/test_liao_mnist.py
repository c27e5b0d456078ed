"""liao-mnist: the tiny profile end to end on real MNIST (skipped when MNIST is not available)."""

from __future__ import annotations

import matplotlib.image
import pytest
from threadpoolctl import threadpool_limits

from dltheory.experiments import liao_mnist as exp
from dltheory.experiments.base import config_to_dict
from dltheory.runner.runs import RunDir


@pytest.mark.skipif(not exp._available("mnist"), reason="MNIST not on the data search path")
def test_tiny_profile_runs_on_real_mnist_and_plots(tmp_path):
    config = exp.PROFILES["tiny"]
    run_dir = RunDir(tmp_path / "run", config_to_dict(config))
    with threadpool_limits(limits=1):
        result = exp.run(config, run_dir)
    assert result.status == "completed"
    assert len(result.claims) == 3
    assert result.verdict == "agree", [c for c in result.claims if c.agree is False]
    panel = result.data["panels"][0]
    assert panel["counts"] == [1200, 1200] and panel["p"] == 784
    (path,) = exp.plot(result, run_dir.figures)
    assert matplotlib.image.imread(path).shape[2] in (3, 4)


def test_missing_dataset_is_skipped_not_faked(tmp_path, monkeypatch):
    monkeypatch.setattr(exp, "_available", lambda dataset: False)
    config = exp.PROFILES["tiny"]
    result = exp.run(config, RunDir(tmp_path / "run", config_to_dict(config)))
    assert result.status == "failed" and result.claims == []
    assert any("skipped" in note for note in result.notes)
    assert exp.plot(result, tmp_path) == []
