"""The ``dltheory diagnose`` command: factories by module path or file, random and real inputs, JSON and
table output, the figure, and clear errors."""

from __future__ import annotations

import json
import textwrap

import matplotlib.image as mpimg
import pytest
import typer
from typer.testing import CliRunner

from dltheory.commands import diagnose as diagnose_command
from support import MNIST_FILES, has_dataset

FACTORY = textwrap.dedent(
    """
    import math
    import torch
    from torch import nn

    def deep_tanh(depth=20, width=64, sigma_w2=1.0):
        g = torch.Generator().manual_seed(0)
        layers = [nn.Flatten()]
        for l in range(depth):
            lin = nn.Linear(784 if l == 0 else width, width)
            with torch.no_grad():
                lin.weight.normal_(0.0, math.sqrt(sigma_w2 / lin.in_features), generator=g)
                lin.bias.normal_(0.0, math.sqrt(0.05), generator=g)
            layers += [lin, nn.Tanh()]
        return nn.Sequential(*layers[:-1])

    def not_a_model():
        return 42
    """
)


def _app() -> typer.Typer:
    app = typer.Typer()
    diagnose_command.register(app)

    @app.command("noop")
    def noop() -> None:  # a second command keeps typer in multi-command mode
        pass

    return app


@pytest.fixture
def factory_file(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(FACTORY)
    return path


def test_json_report_and_figure_from_a_file_factory(factory_file, tmp_path):
    figure = tmp_path / "fig.png"
    args = ["diagnose", f"{factory_file}:deep_tanh", "--input-shape", "1,28,28", "--batch", "16"]
    args += ["--set", "sigma_w2=3.0", "--out", str(figure), "--json"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["phase"] == "chaotic"
    assert payload["predicted"]["theory"]["sigma_w2"] == pytest.approx(3.0, rel=0.05)
    assert len(payload["q"]) == 20 and payload["figure"] == str(figure)
    assert mpimg.imread(figure).ndim == 3


def test_table_output_names_the_verdict_and_the_recommendation(factory_file, tmp_path):
    args = ["diagnose", f"{factory_file}:deep_tanh", "--input-shape", "784", "--batch", "8", "--no-plot"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert "ordered" in result.output
    assert "critical_init_(model, 'tanh'" in result.output.replace("\n", "")


def test_module_path_factory_with_keyword_arguments(tmp_path):
    args = ["diagnose", "dltheory.nn.models:VanillaCNN", "--set", "depth=3", "--set", "channels=8"]
    args += ["--input-shape", "1,12,12", "--batch", "4", "--out", str(tmp_path / "v.png"), "--json"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert len(payload["layers"]) == 3 + 4
    assert any("unrolled" in note for note in payload["notes"])


@pytest.mark.skipif(not has_dataset("mnist", MNIST_FILES), reason="MNIST not available offline")
def test_real_mnist_inputs(factory_file, tmp_path):
    args = ["diagnose", f"{factory_file}:deep_tanh", "--input-shape", "1,28,28", "--batch", "8"]
    args += ["--data", "mnist", "--no-plot", "--json"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    # the images are standardised over the batch: mean squared input 1
    assert payload["input_q"] == pytest.approx(1.0, rel=1e-5)
    assert len(payload["layers"]) == 20


@pytest.mark.parametrize(
    ("factory", "shape", "message"),
    [
        ("no_colon_here", "784", "module.path:function"),
        ("dltheory.does_not_exist:f", "784", "cannot import"),
        ("dltheory.nn.models:NoSuchModel", "784", "has no attribute"),
        ("{file}:not_a_model", "784", "not a torch.nn.Module"),
        ("{file}:deep_tanh", "1,27,27", "raised RuntimeError on inputs of shape (2, 1, 27, 27)"),
        ("{file}:deep_tanh", "1,a,28", "--input-shape must be"),
    ],
)
def test_errors_exit_with_code_2_and_a_message(factory_file, factory, shape, message):
    spec = factory.format(file=factory_file)
    args = ["diagnose", spec, "--input-shape", shape, "--batch", "2", "--no-plot"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_residual_model_module_factory_prints_the_stream_and_the_verdict(tmp_path):
    args = ["diagnose", "dltheory.nn.resnets:ResidualMLP", "--input-shape", "32", "--batch", "16"]
    args += ["--set", "d_in=32", "--set", "width=64", "--set", "depth=30", "--no-plot"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert "residual stream (30 blocks" in result.output and "verdict:" in result.output
    assert "recommendation:" in result.output and "branch multiplier" in result.output
    strict = CliRunner().invoke(_app(), [*args, "--strict", "--set", "block=mlp"])
    assert strict.exit_code == 0, strict.output  # fully covered: strict changes nothing
