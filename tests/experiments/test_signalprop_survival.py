"""signalprop-survival: tiny profile end to end on real MNIST (theory vs network at initialisation)."""

from __future__ import annotations

import json

import matplotlib.image
import pytest

from dltheory.experiments import signalprop_survival as exp
from dltheory.experiments.base import Result, config_to_dict
from dltheory.runner.runs import RunDir
from support import MNIST_FILES, has_dataset

pytestmark = pytest.mark.skipif(not has_dataset("mnist", MNIST_FILES), reason="MNIST not available")


def test_tiny_profile_predicts_the_delta_orthogonal_survival(tmp_path):
    config = exp.PROFILES["tiny"]
    run_dir = RunDir(tmp_path / "run", config_to_dict(config))
    result = exp.run(config, run_dir)
    cells = result.data["cells"]
    assert len(cells) == len(config.channels) * 2 * len(config.q_stars)
    for key, cell in cells.items():
        assert len(cell["measured"]) == len(config.depths) and cell["pairs"] > 10
        assert (cell["predicted"] is None) == key.startswith("gaussian")
        if cell["predicted"] is not None:  # within the experiment's stated tolerance at this depth
            gaps = [abs(m - p) for m, p in zip(cell["measured"], cell["predicted"], strict=True)]
            assert max(gaps) <= config.tolerance
    assert result.verdict == "agree"
    payload = json.loads(json.dumps(result.to_dict()))
    (path,) = exp.plot(Result.from_dict(payload), run_dir.figures)
    assert matplotlib.image.imread(path).shape[2] in (3, 4)
