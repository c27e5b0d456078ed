"""The ``dltheory`` command line: experiments, reproduction, reports and data, plus the sub-commands of
:mod:`dltheory.commands` (each module there registers its own)."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

import dltheory.commands as _commands

app = typer.Typer(
    name="dltheory",
    help="Executable deep-learning theory: signal propagation, learning curves, deep linear networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Data sets: where they are and whether they load.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=2)


def _records_option(records: Path | None, no_records: bool) -> str | Path | None:
    """--records DIR / --no-records as the ``records`` argument of the report."""
    if no_records and records is not None:
        _fail("--records and --no-records exclude each other")
    return None if no_records else (records if records is not None else "auto")


RECORDS_HELP = "Store of recorded runs shown beside the fresh ones (default: the checkout's docs/results)."
NO_RECORDS_HELP = "Leave recorded runs out of the report."


def _parse_sets(values: list[str]) -> dict[str, str]:
    overrides = {}
    for item in values:
        if "=" not in item:
            _fail(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip()] = value.strip()
    return overrides


@app.command("list")
def list_experiments(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the registered experiments."""
    from dltheory.experiments.registry import experiments

    registry = experiments()
    if as_json:
        payload = [
            {"name": e.name, "paper": e.paper, "description": e.description, "profiles": list(e.profiles)}
            for e in registry.values()
        ]
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table(title="dltheory experiments")
    for column in ("experiment", "paper", "description"):
        table.add_column(column)
    for e in registry.values():
        table.add_row(e.name, e.paper, e.description)
    console.print(table)


@app.command("run")
def run(
    experiment: str = typer.Argument(..., help="Experiment name (see `dltheory list`)."),
    profile: str = typer.Option("quick", "--profile", "-p", help="tiny | quick | paper"),
    out: Path = typer.Option(Path("runs"), "--out", "-o", help="Root directory of run directories."),
    seed: int | None = typer.Option(None, "--seed", help="Override the profile's seed."),
    sets: list[str] = typer.Option([], "--set", help="Override a config field: key=value (repeatable)."),
    name: str | None = typer.Option(None, "--name", help="Run name (default: the profile, plus a hash)."),
    resume: bool = typer.Option(False, "--resume", help="Resume (or re-use) an existing run of that name."),
) -> None:
    """Run one experiment into OUT/EXPERIMENT/RUN-NAME (config, metrics, result, figures, checkpoints)."""
    from dltheory.experiments.execute import run_experiment
    from dltheory.runner.runs import RunExistsError

    try:
        record = run_experiment(
            experiment, profile, out=out, seed=seed, overrides=_parse_sets(sets), run_name=name, resume=resume
        )
    except (ValueError, RunExistsError) as exc:
        _fail(str(exc))
        return
    if record.status == "failed":
        Console(stderr=True).print(
            f"[red]{experiment} failed:[/red] {record.error} (see {record.path}/result.json)"
        )
        raise typer.Exit(code=1)
    verdict = (json.loads((record.path / "result.json").read_text())).get("verdict")
    note = " (already complete, not recomputed)" if record.skipped else f" in {record.wall_time_s:.1f} s"
    console.print(
        f"{experiment}: {record.status}{note}; verdict [bold]{verdict}[/bold]; results in {record.path}"
    )


@app.command("reproduce")
def reproduce(
    profile: str = typer.Option("quick", "--profile", "-p", help="tiny | quick | paper"),
    out: Path = typer.Option(Path("runs"), "--out", "-o", help="Root directory of run directories."),
    only: list[str] = typer.Option([], "--only", help="Run only these experiments (repeatable)."),
    records_dir: Path | None = typer.Option(None, "--records", help=RECORDS_HELP),
    no_records: bool = typer.Option(False, "--no-records", help=NO_RECORDS_HELP),
) -> None:
    """Run every experiment (resuming what exists), then write OUT/report.html."""
    from dltheory.reproduce import reproduce as run_all

    store = _records_option(records_dir, no_records)
    try:
        records, report = run_all(profile, out=out, names=only or None, records=store)
    except ValueError as exc:
        _fail(str(exc))
        return
    table = Table(title=f"reproduce --profile {profile}")
    for column in ("experiment", "status", "wall time (s)"):
        table.add_column(column)
    for r in records:
        table.add_row(r.experiment, r.status + (" (cached)" if r.skipped else ""), f"{r.wall_time_s:.1f}")
    console.print(table)
    console.print(f"report: {report}")


@app.command("report")
def report(
    runs_dir: Path = typer.Argument(Path("runs"), help="Directory holding run directories."),
    records_dir: Path | None = typer.Option(None, "--records", help=RECORDS_HELP),
    no_records: bool = typer.Option(False, "--no-records", help=NO_RECORDS_HELP),
) -> None:
    """Write RUNS_DIR/report.html from the result files under RUNS_DIR and the recorded runs."""
    from dltheory.report.html import write_report

    if not runs_dir.is_dir():
        _fail(f"runs directory {runs_dir} does not exist")
    try:
        target = write_report(runs_dir, records=_records_option(records_dir, no_records))
    except ValueError as exc:
        _fail(str(exc))
        return
    console.print(f"report: {target}")


@data_app.command("list")
def data_list() -> None:
    """List the data sets and the search path."""
    from dltheory.data import DESCRIPTIONS, search_path

    table = Table(title="data sets")
    table.add_column("name")
    table.add_column("description")
    for name, description in DESCRIPTIONS.items():
        table.add_row(name, description)
    console.print(table)
    console.print("search path: " + ", ".join(str(p) for p in search_path()))


@data_app.command("check")
def data_check(
    download: bool = typer.Option(False, "--download", help="Download missing data sets from their mirrors."),
) -> None:
    """Try to load every data set and report shapes (nothing is downloaded unless --download)."""
    from dltheory.data import LOADERS, load

    table = Table(title="data check")
    for column in ("name", "status", "x", "y"):
        table.add_column(column)
    missing = 0
    for name in LOADERS:
        kwargs: dict[str, Any] = {}
        if name == "gaussian-mixture":
            kwargs = {"means": [[1.0, 0.0], [-1.0, 0.0]], "n": 10}
        elif name in ("mnist", "fashion-mnist", "cifar10"):
            kwargs = {"download": download, "progress": download}
        try:
            x, y = load(name, **kwargs)[:2]
            table.add_row(
                name, "[green]ok[/green]", f"{x.dtype} {list(x.shape)}", f"{y.dtype} {list(y.shape)}"
            )
        except Exception as exc:  # noqa: BLE001 - report every data set
            missing += 1
            table.add_row(name, "[red]missing[/red]", str(exc)[:120], "")
    console.print(table)
    if missing:
        console.print(f"{missing} data set(s) unavailable; see `dltheory data list` for the search path.")


def _register_commands() -> None:
    for info in pkgutil.iter_modules(_commands.__path__):
        module = importlib.import_module(f"{_commands.__name__}.{info.name}")
        module.register(app)


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
