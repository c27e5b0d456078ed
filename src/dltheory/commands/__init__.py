"""CLI sub-commands. Every module here defines ``register(app: typer.Typer) -> None``; ``dltheory.cli``
imports them all, so adding a command means adding a module."""
