"""Discovery of experiment modules.

Every module of :mod:`dltheory.experiments` that defines ``NAME`` is an experiment (see
:mod:`dltheory.experiments.base` for the contract). Modules are found by scanning the package, so
adding an experiment means adding a module, nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

import dltheory.experiments as _package

_NOT_EXPERIMENTS = {"base", "registry", "execute"}
REQUIRED_PROFILES = ("tiny", "quick", "paper")


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    paper: str
    module: ModuleType

    @property
    def profiles(self) -> tuple[str, ...]:
        return tuple(self.module.PROFILES)

    def config(self, profile: str = "quick"):  # type: ignore[no-untyped-def]
        if profile not in self.module.PROFILES:
            raise ValueError(
                f"profile must be one of {sorted(self.module.PROFILES)} for {self.name}, got {profile!r}"
            )
        return self.module.PROFILES[profile]


@lru_cache(maxsize=1)
def experiments() -> dict[str, Experiment]:
    """All registered experiments by name, sorted by paper then name."""
    found: list[Experiment] = []
    for info in pkgutil.iter_modules(_package.__path__):
        if info.name in _NOT_EXPERIMENTS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{_package.__name__}.{info.name}")
        if not hasattr(module, "NAME"):
            continue
        missing = [p for p in REQUIRED_PROFILES if p not in module.PROFILES]
        if missing:
            raise RuntimeError(f"experiment module {module.__name__} lacks profiles {missing}")
        found.append(Experiment(module.NAME, module.DESCRIPTION, module.PAPER, module))
    order = ["foundation", "xiao", "liao", "arora", "laurent"]
    found.sort(key=lambda e: (order.index(e.paper) if e.paper in order else len(order), e.name))
    return {e.name: e for e in found}


def get(name: str) -> Experiment:
    registry = experiments()
    if name not in registry:
        raise ValueError(f"unknown experiment {name!r}; valid experiments: {', '.join(registry)}")
    return registry[name]
