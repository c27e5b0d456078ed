"""Discovery of experiment modules.

Every module of :mod:`dltheory.experiments` that defines ``EXPERIMENT`` (an
:class:`~dltheory.experiments.base.ExperimentSpec`) is an experiment. Modules are found by scanning the
package, so adding an experiment means adding a module, nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

import dltheory.experiments as _package
from dltheory.core.papers import PAPER_ORDER
from dltheory.experiments.base import ExperimentSpec

_NOT_EXPERIMENTS = {"base", "registry", "execute"}


@lru_cache(maxsize=1)
def experiments() -> dict[str, ExperimentSpec]:
    """All registered experiments by name, sorted by paper (report order) then name.

    Raises:
        RuntimeError: when a module's file name is not its experiment id with underscores.
    """
    found: list[ExperimentSpec] = []
    for info in pkgutil.iter_modules(_package.__path__):
        if info.name in _NOT_EXPERIMENTS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{_package.__name__}.{info.name}")
        spec = getattr(module, "EXPERIMENT", None)
        if not isinstance(spec, ExperimentSpec):
            continue
        if spec.module_name != info.name:
            raise RuntimeError(
                f"experiment {spec.name!r} lives in module {info.name!r}; rename it to {spec.module_name}.py"
            )
        found.append(spec)
    rank = {paper: i for i, paper in enumerate(PAPER_ORDER)}
    found.sort(key=lambda e: (rank.get(e.paper, len(rank)), e.name))
    return {e.name: e for e in found}


def get(name: str) -> ExperimentSpec:
    """The experiment ``name``; ValueError listing the valid names otherwise."""
    registry = experiments()
    if name not in registry:
        raise ValueError(f"unknown experiment {name!r}; valid experiments: {', '.join(registry)}")
    return registry[name]
