"""Argument checks that produce errors naming the argument, the value received and what is allowed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return repr(value.item())
        if value.size <= 6:
            return f"array {value.tolist()!r}"
        return f"array of shape {value.shape} (min {np.nanmin(value)!r}, max {np.nanmax(value)!r})"
    return repr(value)


def as_float_array(name: str, value: Any) -> np.ndarray:
    """Convert to a float64 array; raise TypeError naming ``name`` for non-numeric input and
    ValueError for non-finite entries."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a real number or array of real numbers, got {value!r}") from exc
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {_describe(array)}")
    return array


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> np.ndarray:
    array = as_float_array(name, value)
    bad = array < 0 if allow_zero else array <= 0
    if np.any(bad):
        allowed = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {allowed}, got {_describe(array)}")
    return array


def check_in_range(name: str, value: Any, low: float, high: float, *, closed: bool = True) -> np.ndarray:
    array = as_float_array(name, value)
    bad = (array < low) | (array > high) if closed else (array <= low) | (array >= high)
    if np.any(bad):
        interval = f"[{low}, {high}]" if closed else f"({low}, {high})"
        raise ValueError(f"{name} must lie in {interval}, got {_describe(array)}")
    return array


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    options = list(choices)
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value
