"""Data sets (see :func:`dltheory.data.load` for names, shapes and dtypes)."""

from dltheory.data.loaders import DESCRIPTIONS, LOADERS, load, require
from dltheory.data.sources import DataNotFoundError, search_path

__all__ = ["DESCRIPTIONS", "LOADERS", "DataNotFoundError", "load", "require", "search_path"]
