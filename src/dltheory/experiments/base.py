"""The experiment contract.

An experiment module ``dltheory.experiments.<id with underscores>`` defines ``EXPERIMENT``, an
:class:`ExperimentSpec`:

- ``name`` (the id, e.g. ``"liao-dynamics"``; the module's file name is the id with underscores),
  ``description`` (one line), ``paper`` (a key of :data:`dltheory.core.papers.PAPERS`);
- ``profiles``: ``{"tiny": Config(...), "quick": Config(...), "paper": Config(...), ...}`` of one frozen
  dataclass ``Config`` (every field JSON-able, with a ``seed: int`` field); ``tiny`` runs in seconds
  (end-to-end tests), ``quick`` in minutes on a CPU, ``paper`` uses the paper's own settings;
- ``run(config, run_dir) -> Result``: does the work, logs metrics through ``run_dir`` and resumes from
  ``run_dir.checkpoints`` when interrupted; holds no maths of its own;
- ``plot(result, figures_dir) -> list[Path]``: writes PNG figures, returns their paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dltheory.core.papers import PAPERS

if TYPE_CHECKING:
    from dltheory.runner.runs import RunDir

REQUIRED_PROFILES = ("tiny", "quick", "paper")
ConfigT = TypeVar("ConfigT")


@dataclass
class Claim:
    """One checkable statement: what theory (or the paper) predicts, what was measured, the tolerance,
    and whether they agree. ``agree=None`` marks a number that is reported but not judged."""

    name: str
    predicted: Any
    measured: Any
    tolerance: Any = None
    agree: bool | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Result:
    """What an experiment returns. ``data`` holds the arrays needed to redraw the figures; ``notes``
    the caveats a reader must see (e.g. rows missing from a data set)."""

    experiment: str
    claims: list[Claim] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    status: str = "completed"

    @property
    def verdict(self) -> str:
        judged = [c.agree for c in self.claims if c.agree is not None]
        if self.status != "completed":
            return self.status
        if not judged:
            return "reported"
        return "agree" if all(judged) else "disagree"

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "status": self.status,
            "verdict": self.verdict,
            "claims": [c.to_dict() for c in self.claims],
            "notes": list(self.notes),
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Result:
        return cls(
            experiment=payload["experiment"],
            claims=[Claim(**c) for c in payload.get("claims", [])],
            data=payload.get("data", {}),
            notes=payload.get("notes", []),
            status=payload.get("status", "completed"),
        )


@dataclass(frozen=True)
class ExperimentSpec(Generic[ConfigT]):
    """What an experiment module declares (see the module docstring).

    Args:
        name: the experiment id (``"xiao-depth"``).
        description: one line shown by ``dltheory list`` and the report.
        paper: key of the reproduced paper in :data:`dltheory.core.papers.PAPERS`.
        profiles: named configurations; must include ``tiny``, ``quick`` and ``paper``.
        run: ``run(config, run_dir) -> Result``.
        plot: ``plot(result, figures_dir) -> list of PNG paths``.

    Raises:
        ValueError: for an unknown paper, a missing profile, or profiles of different types.
    """

    name: str
    description: str
    paper: str
    profiles: Mapping[str, ConfigT]
    run: Callable[[ConfigT, RunDir], Result]
    plot: Callable[[Result, Path], list[Path]]

    def __post_init__(self) -> None:
        if self.paper not in PAPERS:
            raise ValueError(
                f"experiment {self.name!r}: paper must be one of {list(PAPERS)}, got {self.paper!r}"
            )
        missing = [p for p in REQUIRED_PROFILES if p not in self.profiles]
        if missing:
            raise ValueError(f"experiment {self.name!r} lacks the profiles {missing}")
        types = {type(config) for config in self.profiles.values()}
        if len(types) != 1 or not dataclasses.is_dataclass(next(iter(types))):
            raise ValueError(
                f"experiment {self.name!r}: profiles must be instances of one dataclass, got {types}"
            )

    @property
    def module_name(self) -> str:
        """The module file name the id implies (``xiao-depth`` -> ``xiao_depth``)."""
        return self.name.replace("-", "_")

    def config(self, profile: str = "quick") -> ConfigT:
        """The configuration of ``profile``; ValueError naming the valid profiles otherwise."""
        if profile not in self.profiles:
            raise ValueError(
                f"profile must be one of {sorted(self.profiles)} for {self.name}, got {profile!r}"
            )
        return self.profiles[profile]


def config_to_dict(config: Any) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def config_with_overrides(config: Any, overrides: dict[str, str]) -> Any:
    """Return ``config`` with fields replaced from ``key=value`` strings, parsed to each field's type.

    Unknown keys raise ValueError listing the valid ones.
    """
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes: dict[str, Any] = {}
    for key, raw in overrides.items():
        if key not in fields:
            raise ValueError(
                f"unknown config key {key!r} for {type(config).__module__}; valid keys: {sorted(fields)}"
            )
        changes[key] = _parse_like(key, raw, getattr(config, key))
    return dataclasses.replace(config, **changes)


def _parse_like(key: str, raw: str, current: Any) -> Any:
    import json

    try:
        if isinstance(current, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
        if isinstance(current, str):
            return raw
        if current is None:
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                return raw
        value = json.loads(raw)
        if isinstance(current, tuple):
            if not isinstance(value, list):
                raise ValueError(raw)
            return tuple(value)
        return value
    except ValueError as exc:
        raise ValueError(
            f"config key {key!r}: cannot parse {raw!r} as {type(current).__name__} "
            f"(current value {current!r}); lists and tuples are written as JSON, e.g. [1,2,3]"
        ) from exc
