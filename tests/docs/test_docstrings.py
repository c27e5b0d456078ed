"""Every docstring of the package parses as Google style (one parameter per ``Args`` line, ``Raises``
entries ``Exception: description``), except in the modules that the docs hook's ``KNOWN_DOCSTRING_ISSUES``
lists; and that list names only modules that still have an issue, so a fixed module leaves it."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _known_issues() -> tuple[str, ...]:
    pytest.importorskip("mkdocs", reason="mkdocs not installed (pip install -e '.[docs]')")
    spec = importlib.util.spec_from_file_location(
        "dltheory_docs_hook_known", ROOT / "docs/_hooks/dltheory_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.KNOWN_DOCSTRING_ISSUES)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _docstring_warnings() -> list[str]:
    griffe = pytest.importorskip("griffe", reason="griffe not installed (pip install -e '.[docs]')")
    collect = _Collect()
    logger = logging.getLogger("griffe")
    logger.addHandler(collect)
    try:
        package = griffe.load("dltheory", search_paths=[str(ROOT / "src")], allow_inspection=False)

        def walk(obj: Any) -> None:
            if obj.is_alias:
                return
            if obj.docstring is not None:
                obj.docstring.parse("google")
            for member in obj.members.values():
                walk(member)

        walk(package)
    finally:
        logger.removeHandler(collect)
    return [m.replace(str(ROOT) + "/", "") for m in collect.messages]


def test_docstrings_parse_except_the_known_issues() -> None:
    known = _known_issues()
    warnings = _docstring_warnings()
    unlisted = [w for w in warnings if not any(k in w for k in known)]
    assert not unlisted, (
        "fix these docstrings (one parameter per Args line, 'Error: text' Raises):\n" + "\n".join(unlisted)
    )
    stale = [k for k in known if not any(k in w for w in warnings)]
    assert not stale, f"remove these fixed modules from KNOWN_DOCSTRING_ISSUES in docs/_hooks: {stale}"
