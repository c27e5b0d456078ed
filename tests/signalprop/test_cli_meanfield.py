"""The ``dltheory meanfield`` command."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from dltheory.commands import meanfield
from dltheory.signalprop import critical_sigma_w2, fixed_point


def _app() -> typer.Typer:
    app = typer.Typer()
    meanfield.register(app)

    @app.command("noop")
    def noop() -> None:  # a second command keeps typer in multi-command mode
        pass

    return app


def test_json_output_matches_the_library():
    result = CliRunner().invoke(
        _app(), ["meanfield", "--activation", "tanh", "--sigma-b2", "0.05", "--sigma-w2", "2.0", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert abs(payload["critical_sigma_w2"] - float(critical_sigma_w2("tanh", 0.05))) < 1e-12
    fp = fixed_point("tanh", 2.0, 0.05)
    assert abs(payload["xi_c"] - float(fp.xi_c)) < 1e-9 and payload["phase"] == "chaotic"
    assert abs(payload["trainable_depth_6xi_c"] - 6 * float(fp.xi_c)) < 1e-9


def test_table_and_errors():
    result = CliRunner().invoke(_app(), ["meanfield", "--activation", "tanh", "--sigma-b2", "0.05"])
    assert result.exit_code == 0 and "critical_sigma_w2" in result.output and "1.76095" in result.output
    bad = CliRunner().invoke(
        _app(), ["meanfield", "--activation", "relu", "--sigma-b2", "0.1", "--sigma-w2", "3"]
    )
    assert bad.exit_code == 2
