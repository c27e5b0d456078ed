"""Progress bars (rich) that nest: one live display is shared by every bar shown at the same time, so an
experiment's own bar appears under the overall ``reproduce`` bar instead of clashing with it.

The library is quiet by default: callers opt in (``progress=True``); bars are drawn on stderr and
disappear when done.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_live: Progress | None = None
_users = 0


class Bar:
    """Handle of one task of the shared display."""

    def __init__(self, progress: Progress, task: TaskID):
        self._progress = progress
        self._task = task

    def advance(self, amount: float = 1, **fields: Any) -> None:
        self._progress.update(self._task, advance=amount, **fields)

    def update(self, **kwargs: Any) -> None:
        self._progress.update(self._task, **kwargs)


@contextmanager
def progress_bar(
    description: str, total: float | None, *, completed: int = 0, info: str = ""
) -> Iterator[Bar]:
    """A progress bar for the duration of the ``with`` block (``info`` is a free text field)."""
    global _live, _users
    if _live is None:
        _live = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        _live.start()
    progress = _live
    _users += 1
    task = progress.add_task(description, total=total, completed=completed, info=info)
    try:
        yield Bar(progress, task)
    finally:
        progress.remove_task(task)
        _users -= 1
        if _users == 0:
            progress.stop()
            _live = None
