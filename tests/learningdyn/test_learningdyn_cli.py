"""``dltheory learning-curve``: JSON output equals the library's numbers; bad input exits with code 2."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dltheory.cli import app
from dltheory.learningdyn import GDTheory

runner = CliRunner()


def test_json_output_matches_the_library():
    result = runner.invoke(
        app,
        [
            "learning-curve",
            "--mu-norm2",
            "4",
            "--p",
            "256",
            "--n",
            "512",
            "--sigma2",
            "0.1",
            "--alpha",
            "0.01",
            "--step",
            "50",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    theory = GDTheory(4.0, 0.5, 0.1, 0.01, discrete=True)
    stop = theory.optimal_stopping()
    assert summary["optimal_stopping_time"] == stop.time
    assert summary["optimal_test_error"] == stop.error
    assert summary["least_squares_test_error"] == theory.least_squares_limit().test_error
    assert summary["best_possible_error"] == theory.best_possible_error()
    assert summary["steps"]["50"]["test_error"] == float(theory.test_error(50))


def test_table_output_and_errors():
    result = runner.invoke(app, ["learning-curve", "--flow"])
    assert result.exit_code == 0 and "optimal_stopping_time" in result.output
    unstable = runner.invoke(app, ["learning-curve", "--alpha", "0.5"])
    assert unstable.exit_code == 2 and "stability limit" in unstable.output
    negative = runner.invoke(app, ["learning-curve", "--sigma2", "-1"])
    assert negative.exit_code == 2 and "sigma2 must be >= 0" in negative.output
