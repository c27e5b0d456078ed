"""The experiment contract.

An experiment module (``dltheory.experiments.<module>``) defines:

- ``NAME`` (e.g. ``"liao-dynamics"``), ``DESCRIPTION`` (one line), ``PAPER`` (a key of :data:`PAPERS`);
- a frozen dataclass ``Config`` (every field JSON-able, with a ``seed: int`` field);
- ``PROFILES``: ``{"tiny": Config(...), "quick": Config(...), "paper": Config(...)}``; ``tiny`` runs in
  seconds (end-to-end tests), ``quick`` in minutes on a CPU, ``paper`` uses the paper's own settings;
- ``run(config, run_dir) -> Result``: does the work, logs metrics through ``run_dir`` and resumes from
  ``run_dir.checkpoints`` when interrupted; holds no maths of its own;
- ``plot(result, figures_dir) -> list[Path]``: writes PNG figures, returns their paths.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

PAPERS: dict[str, str] = {
    "foundation": "dltheory foundations (sanity checks of the tooling)",
    "xiao": "Xiao, Bahri, Sohl-Dickstein, Schoenholz, Pennington (ICML 2018): Dynamical Isometry and a "
    "Mean Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural Networks",
    "liao": "Liao & Couillet (ICML 2018): The Dynamics of Learning: A Random Matrix Approach",
    "arora": "Arora, Cohen & Hazan (ICML 2018): On the Optimization of Deep Networks: Implicit "
    "Acceleration by Overparameterization",
    "laurent": "Laurent & von Brecht (ICML 2018): Deep Linear Networks with Arbitrary Loss: All Local "
    "Minima Are Global",
}


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
