"""arora-no-regularizer: the tiny profile end to end."""

from __future__ import annotations

import matplotlib.image

from dltheory.experiments import arora_no_regularizer as exp
from dltheory.experiments.base import config_to_dict
from dltheory.runner.runs import RunDir


def test_tiny_profile_agrees_with_theory_and_plots(tmp_path):
    config = exp.PROFILES["tiny"]
    run_dir = RunDir(tmp_path / "run", config_to_dict(config))
    result = exp.run(config, run_dir)
    assert len(result.claims) == 11  # 2 per depth + a near-origin claim for N = 2, 3, 4
    assert result.verdict == "agree", [c for c in result.claims if not c.agree]
    loops = {d: result.data[f"N{d}"]["loop_measured"] for d in config.depths}
    assert max(abs(v) for d in (1, 2) for v in loops[d]) < 1e-12
    assert min(abs(v) for d in (3, 4) for v in loops[d]) > 1e-4
    (path,) = exp.plot(result, run_dir.figures)
    assert matplotlib.image.imread(path).shape[2] in (3, 4)
