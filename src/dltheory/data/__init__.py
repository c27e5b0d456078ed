"""Data sets (see :func:`dltheory.data.load` for names, shapes and dtypes)."""

from dltheory.data.loaders import DESCRIPTIONS, LOADERS, load
from dltheory.data.sources import DataNotFoundError, search_path

__all__ = ["DESCRIPTIONS", "LOADERS", "DataNotFoundError", "load", "search_path"]
