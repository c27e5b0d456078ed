"""``dltheory diagnose module.path:factory``: signal-propagation diagnosis of your own model at
initialisation (see :mod:`dltheory.nn.diagnose`): rich summary table (or ``--json``) and a figure."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from dltheory.commands._common import fail, name_options
from dltheory.core.io import to_json

IMAGE_DATA = ("mnist", "fashion-mnist", "cifar10", "digits")


def load_factory(spec: str) -> Any:
    """The callable named by ``module.path:name`` or ``path/to/file.py:name``."""
    if ":" not in spec:
        raise ValueError(f"factory must look like module.path:function or file.py:function, got {spec!r}")
    where, name = spec.rsplit(":", 1)
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules.setdefault(path.stem, module)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except Exception as exc:  # noqa: BLE001 - report any import failure with its cause
        raise ValueError(
            f"cannot import {where!r} (from factory {spec!r}): {type(exc).__name__}: {exc}"
        ) from exc
    if not hasattr(module, name):
        raise ValueError(f"{where!r} has no attribute {name!r} (from factory {spec!r})")
    factory = getattr(module, name)
    if not callable(factory):
        raise ValueError(f"{spec!r} is not callable")
    return factory


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError as exc:
        raise ValueError(f"--input-shape must be comma-separated positive integers, got {text!r}") from exc
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"--input-shape must be comma-separated positive integers, got {text!r}")
    return shape


def parse_kwargs(items: list[str]) -> dict[str, Any]:
    """``key=value`` strings to keyword arguments (values parsed as JSON when they can be)."""
    kwargs: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, raw = (part.strip() for part in item.split("=", 1))
        try:
            kwargs[key] = json.loads(raw)
        except json.JSONDecodeError:
            kwargs[key] = raw
    return kwargs


def make_inputs(data: str | None, shape: tuple[int, ...], batch: int, seed: int) -> Any:
    """A batch ``[batch, *shape]``: standard Gaussian noise, or the first test images of a data set scaled
    to zero mean and unit variance (over the batch) and reshaped to ``shape``."""
    import numpy as np
    import torch

    if data is None:
        generator = torch.Generator().manual_seed(seed)
        return torch.randn((batch, *shape), generator=generator)
    if data not in IMAGE_DATA:
        raise ValueError(f"--data must be one of {list(IMAGE_DATA)}, got {data!r}")
    from dltheory.data import load

    x = np.asarray(load(data, "test")[0][:batch], dtype=np.float64)
    if x.shape[0] < batch:
        raise ValueError(f"--batch {batch} exceeds the {x.shape[0]} test images of {data}")
    per_image = math.prod(x.shape[1:])
    if per_image != math.prod(shape):
        raise ValueError(
            f"--input-shape {','.join(map(str, shape))} holds {math.prod(shape)} values but {data} images "
            f"have shape {x.shape[1:]} ({per_image} values)"
        )
    x = (x - x.mean()) / x.std()
    return torch.from_numpy(x.reshape((batch, *shape))).float()


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return "-" if value is None else str(value)


def print_report(report: Any, console: Console, title: str) -> None:
    summary = Table(title=title)
    summary.add_column("quantity")
    summary.add_column("value", justify="right")
    for key, value in report.summary().items():
        summary.add_row(key, _fmt(value))
    console.print(summary)
    layers = Table(title="per layer (measured | mean field)")
    for column in ("#", "layer", "sigma_w2", "q", "q mf", "c", "c mf", "chi", "chi mf", "|dW|"):
        layers.add_column(column, justify="right")
    n = len(report.layers)
    step = max(1, math.ceil(n / 16))
    for layer in report.layers[::step] if n > 16 else report.layers:
        i = layer.index
        chi = report.chi_1[i] if i < n - 1 else None
        chi_mf = report.predicted.chi_1[i] if i < n - 1 else None
        values = [layer.sigma_w2, report.q[i], report.predicted.q[i], report.c[i], report.predicted.c[i]]
        values += [chi, chi_mf, report.grad_norms[i]]
        cells = [_fmt(None if v is None else float(v), 3) for v in values]
        layers.add_row(str(i), f"{layer.name} ({layer.kind})", *cells)
    console.print(layers)
    residual = getattr(report, "residual", None)
    if residual is not None:
        stream = Table(title=f"residual stream ({residual.blocks} blocks; measured | mean field)")
        for column in ("site", "q", "q mf", "c", "c mf", "|g|^2", "|g|^2 mf"):
            stream.add_column(column, justify="right")
        step = max(1, math.ceil(len(residual.sites) / 16))
        for k in range(0, len(residual.sites), step):
            values = [residual.q[k], residual.q_pred[k], residual.c[k], residual.c_pred[k]]
            values += [residual.grad_sq[k], residual.grad_sq_pred[k]]
            stream.add_row(residual.sites[k], *(_fmt(float(v), 3) for v in values))
        console.print(stream)
        console.print(
            f"[bold]verdict:[/bold] {residual.verdict} (growth of |g|^2 across the stack "
            f"{residual.growth:.4g}, mean field {residual.growth_pred:.4g}, target "
            f"{residual.growth_target:g}); these blocks reach 10x at {residual.depth_10x} and 100x at "
            f"{residual.depth_100x} blocks"
        )
    for note in report.notes:
        console.print(f"- {note}")
    if report.recommendation is not None:
        console.print(f"[bold]recommendation:[/bold] {report.recommendation.call}")
        console.print(report.recommendation.note)


def register(app: typer.Typer) -> None:
    @app.command("diagnose")
    def diagnose_command(
        factory: str = typer.Argument(
            ..., help="module.path:function (or file.py:function) returning a model"
        ),
        input_shape: str = typer.Option(..., "--input-shape", help="shape of one input, e.g. 1,28,28"),
        batch: int = typer.Option(64, "--batch", help="number of inputs"),
        data: str | None = typer.Option(
            None, "--data", help="real inputs: mnist, fashion-mnist, cifar10, digits"
        ),
        sets: list[str] = typer.Option([], "--set", help="factory keyword argument key=value (repeatable)"),
        pairs: int | None = typer.Option(None, "--pairs", help="input pairs for the correlation c^l"),
        spectrum: bool = typer.Option(False, "--spectrum", help="also extreme Jacobian singular values"),
        eval_mode: bool = typer.Option(False, "--eval", help="put the model in eval mode first"),
        growth_target: float = typer.Option(
            10.0, "--growth-target", help="residual stacks: |g|^2 growth above which the verdict is exploding"
        ),
        strict: bool = typer.Option(
            False, "--strict", help="fail, naming them, if some operations are not covered"
        ),
        seed: int = typer.Option(0, "--seed", help="seed of the random inputs and read-out"),
        out: Path | None = typer.Option(Path("diagnose.png"), "--out", help="figure path (PNG)"),
        no_plot: bool = typer.Option(False, "--no-plot", help="do not write the figure"),
        as_json: bool = typer.Option(False, "--json", help="print the full report as JSON"),
    ) -> None:
        """Diagnose signal propagation through a model at initialisation: q^l, c^l, gradient norms and
        chi per layer, measured vs mean-field theory; phase verdict and the critical initialisation."""
        import torch

        from dltheory.nn.diagnose import diagnose

        try:
            build = load_factory(factory)
            kwargs = parse_kwargs(sets)
            shape = parse_shape(input_shape)
            if batch < 2:
                raise ValueError(f"--batch must be >= 2, got {batch}")
            if seed < 0:
                raise ValueError(f"--seed must be >= 0, got {seed}")
            if not growth_target > 1.0:
                raise ValueError(f"--growth-target must be > 1 (a growth factor), got {growth_target}")
            if out is not None and not no_plot and out.is_dir():
                raise ValueError(f"--out must be the path of a PNG file, got the directory {str(out)!r}")
            model = build(**kwargs)
            if not isinstance(model, torch.nn.Module):
                raise ValueError(f"{factory} returned {type(model).__name__}, not a torch.nn.Module")
            if eval_mode:
                model.eval()
            inputs = make_inputs(data, shape, batch, seed)
            report = diagnose(
                model,
                inputs,
                pairs=pairs,
                jacobian="spectrum" if spectrum else True,
                seed=seed,
                growth_target=growth_target,
                strict=strict,
            )
        except (ValueError, TypeError, FileNotFoundError) as exc:
            fail(name_options(exc, {"pairs": "--pairs", "growth_target": "--growth-target"}))
        figure = None
        if out is not None and not no_plot:
            report.plot(out).clear()
            figure = str(out)
        if as_json:
            typer.echo(to_json({**report.to_dict(), "figure": figure}))
            return
        console = Console()
        print_report(
            report, console, f"dltheory diagnose {factory} ({data or 'Gaussian'} inputs, batch {batch})"
        )
        if figure is not None:
            console.print(f"figure: {figure}")
