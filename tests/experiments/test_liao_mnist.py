"""liao-mnist: the tiny profile end to end on real MNIST (skipped when MNIST is not available)."""

from __future__ import annotations

import matplotlib.image
import pytest
from threadpoolctl import threadpool_limits

from dltheory.data import DataNotFoundError
from dltheory.experiments import liao_mnist as exp
from dltheory.experiments.base import config_to_dict
from dltheory.runner.runs import RunDir
from support import MNIST_FILES, has_dataset


@pytest.mark.skipif(not has_dataset("mnist", MNIST_FILES), reason="MNIST not on the data search path")
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


def test_missing_dataset_fails_before_computing_anything(tmp_path, isolated_cache, monkeypatch):
    """No data, no result: the one data path (search path, download, clear error) names the files and
    folders, and nothing is computed for the data sets that are there."""
    monkeypatch.setenv("DLTHEORY_OFFLINE", "1")
    config = exp.PROFILES["tiny"]
    run_dir = RunDir(tmp_path / "run", config_to_dict(config))
    with pytest.raises(DataNotFoundError, match=r"'mnist' not found; looked in: .*mnist.*train-images"):
        exp.run(config, run_dir)
    assert not run_dir.metrics_file.exists()
