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
        """Copy a completed run (result.json, figures, provenance) into the store of recorded runs."""
        from dltheory.commands._common import fail
        from dltheory.runner.records import RecordExistsError, record_run

        try:
            target = record_run(run_dir, store, name, replace=replace)
        except (ValueError, RecordExistsError) as exc:
            fail(exc)
        figures = sorted(p.name for p in (target / "figures").glob("*.png"))
        typer.echo(f"recorded {run_dir} as {target} (result.json, record.json, {len(figures)} figures)")
