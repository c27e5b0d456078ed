"""The ``dltheory`` command line: experiments, reproduction, reports and data, plus the sub-commands of
:mod:`dltheory.commands` (each module there registers its own).

Conventions (see docs/reliability.md): bad input exits non-zero with one line ``error: ...`` naming the
argument, never a traceback; every failure kind has its exit code (:mod:`dltheory.exitcodes`); every
command that prints a table takes ``--json``.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import dltheory.commands as _commands
from dltheory.commands._common import OneLineErrorGroup, echo_json, error, fail, terminate_as_interrupt
from dltheory.exitcodes import ExitCode

DEVICE_HELP = "auto (CUDA when present, else CPU) | cpu | cuda | cuda:N; not part of the run's configuration."

app = typer.Typer(
    cls=OneLineErrorGroup,
    name="dltheory",
    help="Executable deep-learning theory: signal propagation, learning curves, deep linear networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Data sets: where they are and whether they load.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()


def _fail(message: str, code: int = ExitCode.BAD_INPUT) -> None:
    fail(message, code)


_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        fail(f"--out {out} is a file, not a directory for run directories")


def _check_run_options(seed: int | None, name: str | None) -> None:
    if seed is not None and seed < 0:
        fail(f"--seed must be an integer >= 0, got {seed}")
    if name is not None and not _RUN_NAME.match(name):
        fail(
            f"--name must be 1-100 letters, digits, '.', '_' or '-' starting with a letter or digit "
            f"(a directory name), got {name!r}"
        )


def _check_device(device: str) -> str:
    from dltheory.runner.devices import resolve_device

    try:
        return resolve_device(device, argument="--device")
    except (TypeError, ValueError) as exc:
        fail(exc)


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
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Run one experiment into OUT/EXPERIMENT/RUN-NAME (config, metrics, result, figures, checkpoints).

    Exit codes: 0 done, 1 the experiment failed, 2 bad input, 3 data missing, 4 damaged run directory,
    5 a write failed (disk full), 130 interrupted (resume with --resume)."""
    from dltheory.experiments.execute import resolve_config, run_experiment
    from dltheory.experiments.registry import get
    from dltheory.runner.runs import DamagedRunFileError, RunExistsError

    resolved = _check_device(device)
    _check_out(out)
    _check_run_options(seed, name)
    overrides = _parse_sets(sets)
    try:
        spec = get(experiment)
    except ValueError as exc:
        fail(exc)
    try:
        resolve_config(spec, profile, None, overrides)
    except ValueError as exc:
        fail(f"--set: {exc}" if str(exc).startswith(("unknown config key", "config key")) else exc)
    try:
        with terminate_as_interrupt():
            record = run_experiment(
                experiment,
                profile,
                out=out,
                seed=seed,
                overrides=overrides,
                run_name=name,
                resume=resume,
                device=resolved,
            )
    except DamagedRunFileError as exc:
        fail(exc, ExitCode.DAMAGED_RUN)
    except (ValueError, RunExistsError) as exc:
        fail(exc)
    except KeyboardInterrupt:
        fail(f"{experiment} interrupted; continue it with --resume", ExitCode.INTERRUPTED)
    if as_json:
        echo_json(_record_dict(record))
    for note in record.notes:
        typer.echo(f"note: {note}", err=True)
    if record.status == "failed":
        fail(f"{experiment} failed: {record.error} (see {record.path}/result.json)", record.exit_code)
    if not as_json:
        note = " (already complete, not recomputed)" if record.skipped else f" in {record.wall_time_s:.1f} s"
        console.print(
            f"{experiment}: {record.status}{note} on {record.device}; verdict [bold]{record.verdict}[/bold]; "
            f"results in {record.path}",
            soft_wrap=True,
        )


def _record_dict(record: Any) -> dict[str, Any]:
    return {
        "experiment": record.experiment,
        "status": record.status,
        "verdict": record.verdict,
        "path": str(record.path),
        "wall_time_s": record.wall_time_s,
        "skipped": record.skipped,
        "device": record.device,
        "error": record.error,
        "failure": record.failure,
        "exit_code": int(record.exit_code),
        "notes": record.notes,
    }


@app.command("reproduce")
def reproduce(
    profile: str = typer.Option("quick", "--profile", "-p", help="tiny | quick | paper"),
    out: Path = typer.Option(Path("runs"), "--out", "-o", help="Root directory of run directories."),
    only: list[str] = typer.Option([], "--only", help="Run only these experiments (repeatable)."),
    records_dir: Path | None = typer.Option(None, "--records", help=RECORDS_HELP),
    no_records: bool = typer.Option(False, "--no-records", help=NO_RECORDS_HELP),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the outcomes as JSON instead of a table."),
) -> None:
    """Run every experiment (resuming what exists), then write OUT/report.html.

    One failing experiment does not stop the others; the report is written first, then the command exits
    with the largest exit code of its experiments (see `dltheory run --help`)."""
    from dltheory.experiments.registry import get
    from dltheory.reproduce import reproduce as run_all

    store = _records_option(records_dir, no_records)
    resolved = _check_device(device)
    _check_out(out)
    for name in only:
        try:
            get(name)
        except ValueError as exc:
            fail(f"--only: {exc}")
    try:
        with terminate_as_interrupt():
            records, report = run_all(profile, out=out, names=only or None, records=store, device=resolved)
    except ValueError as exc:
        fail(exc)
    except KeyboardInterrupt:
        fail("reproduce interrupted; run it again to resume", ExitCode.INTERRUPTED)
    code = max((int(r.exit_code) for r in records), default=0)
    if as_json:
        echo_json({"report": str(report), "exit_code": code, "runs": [_record_dict(r) for r in records]})
    else:
        table = Table(title=f"reproduce --profile {profile}")
        for column in ("experiment", "status", "verdict", "wall time (s)"):
            table.add_column(column)
        for r in records:
            status = r.status + (" (cached)" if r.skipped else "") + (f" [{r.failure}]" if r.failure else "")
            table.add_row(r.experiment, status, r.verdict or "", f"{r.wall_time_s:.1f}")
        console.print(table)
        console.print(f"report: {report}", soft_wrap=True)
    for r in records:
        for note in r.notes:
            typer.echo(f"note: {r.experiment}: {note}", err=True)
    failed = [r for r in records if r.status == "failed"]
    for r in failed:
        error(f"{r.experiment} failed: {r.error}")
    if failed:
        raise typer.Exit(code=code)


@app.command("report")
def report(
    runs_dir: Path = typer.Argument(Path("runs"), help="Directory holding run directories."),
    records_dir: Path | None = typer.Option(None, "--records", help=RECORDS_HELP),
    no_records: bool = typer.Option(False, "--no-records", help=NO_RECORDS_HELP),
) -> None:
    """Write RUNS_DIR/report.html from the result files under RUNS_DIR and the recorded runs."""
    from dltheory.report.html import write_report

    if not runs_dir.is_dir():
        _fail(f"RUNS_DIR {runs_dir} is not a directory (give the directory holding the run directories)")
    try:
        target = write_report(runs_dir, records=_records_option(records_dir, no_records))
    except ValueError as exc:
        _fail(str(exc))
        return
    console.print(f"report: {target}")


@data_app.command("list")
def data_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the data sets and the search path."""
    from dltheory.data import DESCRIPTIONS, search_path

    if as_json:
        echo_json(
            {
                "datasets": [{"name": n, "description": d} for n, d in DESCRIPTIONS.items()],
                "search_path": [str(p) for p in search_path()],
            }
        )
        return
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
    only: list[str] | None = typer.Option(
        None,
        "--only",
        help="Check only this data set (repeatable); exit 3 when one of them is missing.",
    ),
    strict: bool = typer.Option(False, "--strict", help="Exit 3 when any checked data set is missing."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Try to load data sets and report their shapes (nothing is downloaded unless --download).

    Without --only or --strict every data set is checked and the command only reports: it exits 0 even
    when some are missing, since no experiment needs them all (gaussian-mixture is synthetic and always
    there; cifar10 is not bundled and usually missing offline). To check what a task needs, name the data
    sets with --only (e.g. --only mnist --only fashion-mnist): a missing or unreadable one then exits 3
    (data missing) after the report; --strict does the same for every data set checked.
    """
    from dltheory.data import LOADERS, DataNotFoundError, load

    names = list(LOADERS)
    if only:
        unknown = [name for name in only if name not in LOADERS]
        if unknown:
            fail(f"--only must name data sets among {names}, got {unknown[0]!r}")
        names = [name for name in LOADERS if name in only]
    table = Table(title="data check")
    for column in ("name", "status", "x", "y"):
        table.add_column(column)
    unavailable: list[str] = []
    rows: list[dict[str, Any]] = []
    for name in names:
        kwargs: dict[str, Any] = {}
        if name == "gaussian-mixture":
            kwargs = {"means": [[1.0, 0.0], [-1.0, 0.0]], "n": 10}
        elif name in ("mnist", "fashion-mnist", "cifar10"):
            kwargs = {"download": download, "progress": download}
        try:
            x, y = load(name, **kwargs)[:2]
        except Exception as exc:  # noqa: BLE001 - report every data set
            status = "missing" if isinstance(exc, DataNotFoundError) else "unreadable"
            unavailable.append(name)
            table.add_row(name, f"[red]{status}[/red]", escape(str(exc)[:120]), "")
            rows.append({"name": name, "status": status, "error": str(exc)})
            continue
        table.add_row(name, "[green]ok[/green]", f"{x.dtype} {list(x.shape)}", f"{y.dtype} {list(y.shape)}")
        rows.append(
            {
                "name": name,
                "status": "ok",
                "x": [str(x.dtype), list(x.shape)],
                "y": [str(y.dtype), list(y.shape)],
            }
        )
    if as_json:
        echo_json(rows)
    else:
        console.print(table)
    if unavailable and (only or strict):
        fail(
            f"data set(s) {unavailable} missing or unreadable; see `dltheory data list` for the search path "
            "(or pass --download)",
            ExitCode.MISSING_DATA,
        )
    if unavailable and not as_json:
        console.print(
            f"{len(unavailable)} data set(s) unavailable; see `dltheory data list` for the search path "
            "(report only: --only NAME or --strict makes a missing data set exit 3)."
        )


def _register_commands() -> None:
    for info in pkgutil.iter_modules(_commands.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{_commands.__name__}.{info.name}")
        module.register(app)


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
