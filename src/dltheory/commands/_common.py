"""What every ``dltheory`` command shares: one-line errors with documented exit codes, JSON output, and
the command group that turns any error escaping a command into one line instead of a traceback.

Not a command module (its name starts with an underscore, so :mod:`dltheory.cli` does not register it).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, NoReturn

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

try:  # typer >= 0.20 vendors click as typer._click; earlier versions use click itself
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

from dltheory.core.io import to_json
from dltheory.exitcodes import ExitCode, is_resource_error


def one_line(message: object) -> str:
    """``message`` as a single line (newlines and runs of spaces collapsed)."""
    return " ".join(str(message).split())


def error(message: object) -> None:
    """Print ``error: <message>`` on one line to stderr."""
    typer.echo(f"error: {one_line(message)}", err=True)


def fail(message: object, code: int = ExitCode.BAD_INPUT) -> NoReturn:
    """Print ``error: <message>`` on one line to stderr and exit with ``code`` (default: bad input)."""
    error(message)
    raise typer.Exit(code=int(code))


def name_options(message: object, options: dict[str, str]) -> str:
    """Rewrite a library error so it names the command-line option: ``"sigma_b2 must be >= 0"`` with
    ``{"sigma_b2": "--sigma-b2"}`` becomes ``"--sigma-b2 must be >= 0"`` (a leading argument name only)."""
    text = one_line(message)
    for name, option in sorted(options.items(), key=lambda item: -len(item[0])):
        for sep in (" ", "="):
            if text.startswith(name + sep):
                return option + text[len(name) :]
    return text


def echo_json(payload: Any) -> None:
    """Print ``payload`` as standard JSON (numpy types converted, non-finite floats as strings)."""
    typer.echo(to_json(payload))


def quantity_table(
    title: str, rows: Iterable[tuple[str, object]], *, justify: Literal["left", "right"] = "right"
) -> Table:
    r"""The two-column ``quantity | value`` table that the theory commands print instead of JSON.

    Args:
        title: the table's title.
        rows: ``(quantity, value)`` pairs; a float is shown with 6 significant digits, None as ``-``, and
            every text is escaped (never read as rich markup).
        justify: alignment of the value column (``"left"`` for sentences).

    Returns:
        A :class:`rich.table.Table`, for ``Console().print``.

    Examples:
        >>> table = quantity_table("demo", [("chi_1", 1.0000001), ("phase", "[ordered]"), ("q*", None)])
        >>> [str(c) for c in table.columns[1].cells]
        ['1', '\\[ordered]', '-']
    """
    table = Table(title=title)
    table.add_column("quantity")
    table.add_column("value", justify=justify)
    for name, value in rows:
        text = f"{value:.6g}" if isinstance(value, float) else "-" if value is None else str(value)
        table.add_row(escape(name), escape(text))
    return table


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code of an exception that escaped a command (see :mod:`dltheory.exitcodes`)."""
    from dltheory.data import DataNotFoundError
    from dltheory.runner.runs import DamagedRunFileError

    if isinstance(exc, DataNotFoundError):
        return ExitCode.MISSING_DATA
    if isinstance(exc, DamagedRunFileError):
        return ExitCode.DAMAGED_RUN
    if is_resource_error(exc):
        return ExitCode.RESOURCE
    if isinstance(exc, ValueError | TypeError):
        return ExitCode.BAD_INPUT
    return ExitCode.INTERNAL


class OneLineErrorGroup(TyperGroup):
    """The top-level command group: usage errors and errors escaping a command are printed as one line
    ``error: ...`` on stderr with their exit code (see :mod:`dltheory.exitcodes`), never as a traceback
    (set ``DLTHEORY_DEBUG=1`` to see the traceback of an unexpected error)."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_exceptions.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            sys.exit(exc.exit_code)
        except (click_exceptions.ClickException, typer.TyperException) as exc:
            ctx = getattr(exc, "ctx", None)
            where = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
            error(exc.format_message() + where)
            sys.exit(exc.exit_code)
        except typer.Abort:
            error("aborted")
            sys.exit(ExitCode.INTERRUPTED)
        except KeyboardInterrupt:
            error("interrupted")
            sys.exit(ExitCode.INTERRUPTED)
        except Exception as exc:  # noqa: BLE001 - nothing escapes as a traceback
            if os.environ.get("DLTHEORY_DEBUG", "") not in ("", "0"):
                raise
            code = exit_code_for(exc)
            prefix = (
                "internal error (please report it; DLTHEORY_DEBUG=1 shows the traceback): "
                if (code == ExitCode.INTERNAL)
                else ""
            )
            error(f"{prefix}{type(exc).__name__ + ': ' if prefix else ''}{exc}")
            sys.exit(int(code))
        sys.exit(code if isinstance(code, int) else 0)


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM interrupts like Ctrl-C (a run then records status ``interrupted``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
