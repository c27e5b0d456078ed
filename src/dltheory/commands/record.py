"""``dltheory record RUN_DIR [--name NAME]``: copy a completed run into the store of recorded runs
(``docs/results/<experiment>/<record>/`` of the source checkout): its ``result.json``, its figures and a
``record.json`` with the provenance (see :mod:`dltheory.runner.records`). Incomplete or failed runs,
runs without provenance and existing records are refused."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("record")
    def record(
        run_dir: Path = typer.Argument(..., help="A completed run directory (runs/EXPERIMENT/RUN-NAME)."),
        name: str | None = typer.Option(None, "--name", help="Record name (default: the run's name)."),
        store: Path | None = typer.Option(
            None, "--store", help="Store directory (default: docs/results of the source checkout)."
        ),
        replace: bool = typer.Option(False, "--replace", help="Replace an existing record of that name."),
    ) -> None:
        """Copy a completed run (result.json, figures, provenance) into the store of recorded runs.

        Exit codes: 0 recorded, 2 bad input (not a completed run, no provenance, bad name or store,
        existing record without --replace), 4 a file of the run cannot be read back, 5 a write failed.
        """
        from dltheory.commands._common import fail, name_options
        from dltheory.exitcodes import ExitCode
        from dltheory.runner.records import RecordExistsError, record_run
        from dltheory.runner.runs import DamagedRunFileError

        try:
            target = record_run(run_dir, store, name, replace=replace)
        except (ValueError, RecordExistsError) as exc:
            code = ExitCode.DAMAGED_RUN if isinstance(exc, DamagedRunFileError) else ExitCode.BAD_INPUT
            fail(name_options(exc, {"run_dir": "RUN_DIR", "store": "--store", "name": "--name"}), code)
        figures = sorted(p.name for p in (target / "figures").glob("*.png"))
        typer.echo(f"recorded {run_dir} as {target} (result.json, record.json, {len(figures)} figures)")
