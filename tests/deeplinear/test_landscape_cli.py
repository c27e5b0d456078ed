"""``dltheory certify``: JSON and table output on saved weights and data, clear errors."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from dltheory.cli import app


def _files(tmp_path, weights):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    Y = X @ rng.normal(size=(4, 3))
    np.savez(tmp_path / "data.npz", X=X, Y=Y)
    np.savez(tmp_path / "w.npz", **{f"W{k + 1}": w for k, w in enumerate(weights)})
    return tmp_path / "w.npz", tmp_path / "data.npz"


def test_certify_zero_weights_reports_a_saddle_as_json(tmp_path):
    # eleven layers: W10 and W11 must come after W9 (natural order of names)
    weights = [np.zeros((5, 4))] + [np.zeros((5, 5)) for _ in range(9)] + [np.zeros((3, 5))]
    w, d = _files(tmp_path, weights)
    result = CliRunner().invoke(app, ["certify", str(w), "--data", str(d), "--json", "--hessian", "none"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["verdict"] == "saddle"
    assert payload["widths"] == [4] + [5] * 10 + [3]
    assert "end_to_end" not in payload


def test_certify_table_and_errors(tmp_path):
    w, d = _files(tmp_path, [np.ones((5, 4)), np.ones((3, 5))])
    result = CliRunner().invoke(app, ["certify", str(w), "--data", str(d)])
    assert result.exit_code == 0, result.output
    assert "not_critical" in result.output
    bad, _ = _files(tmp_path, [np.ones((5, 4)), np.ones((3, 6))])
    result = CliRunner().invoke(app, ["certify", str(bad), "--data", str(d)])
    assert result.exit_code == 2
    assert "weights[1]" in result.output
