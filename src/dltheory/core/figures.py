"""Figures without pyplot: the library never switches its user's matplotlib backend.

Experiments, diagnostics and benchmarks build :class:`matplotlib.figure.Figure` objects directly (they
render with the Agg canvas whatever backend the user's session has) and save them with
:func:`save_figure`, which writes atomically (a crash never leaves a truncated PNG) and frees the figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from dltheory.core.io import atomic_save


def new_figure(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] = (6.0, 4.0), **subplot_kw: Any
) -> tuple[Figure, Any]:
    """A figure and its axes, like ``pyplot.subplots`` but detached from pyplot's figure manager.

    Args:
        nrows: rows of the grid of axes.
        ncols: columns of the grid of axes.
        figsize: size in inches.
        **subplot_kw: passed to :meth:`Figure.subplots` (``sharex``, ``squeeze``, ``gridspec_kw``, ...).

    Returns:
        ``(figure, axes)``: ``axes`` is one :class:`~matplotlib.axes.Axes` for a 1 x 1 grid, else an array.

    Examples:
        >>> fig, ax = new_figure()
        >>> _ = ax.plot([0, 1], [0, 1])
        >>> type(ax).__name__
        'Axes'
    """
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(nrows, ncols, **subplot_kw)


def save_figure(
    figure: Figure,
    path: str | Path,
    *,
    dpi: int = 110,
    tight: bool = False,
    tight_layout: bool = False,
    close: bool = True,
) -> Path:
    """Write ``figure`` to ``path`` as PNG atomically (temporary file + rename) and return the path.

    Args:
        figure: the figure to save.
        path: destination ``.png`` file (parent directories are created).
        dpi: resolution.
        tight: crop to the drawn content (``bbox_inches="tight"``, e.g. for legends outside the axes).
        tight_layout: first arrange the axes with :meth:`Figure.tight_layout` (what nearly every
            experiment's figure wants, so that ``plot`` ends in one call).
        close: release the figure's memory afterwards (figures made by :func:`new_figure` are not
            tracked by pyplot, so this only clears it).

    Returns:
        ``Path(path)``.

    Examples:
        >>> import tempfile
        >>> fig, ax = new_figure(figsize=(2, 2))
        >>> _ = ax.plot([0, 1], [1, 0])
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = save_figure(fig, Path(folder) / "figures" / "line.png", dpi=40, tight_layout=True)
        ...     path.name, path.read_bytes()[1:4] == b"PNG"
        ('line.png', True)
    """
    target = Path(path)
    if tight_layout:
        figure.tight_layout()
    options: dict[str, Any] = {"format": "png", "dpi": dpi}
    if tight:
        options["bbox_inches"] = "tight"
    atomic_save(target, lambda handle: figure.savefig(handle, **options))
    if close:
        figure.clear()
    return target
