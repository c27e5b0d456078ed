"""Run every ``benchmarks/bench_*.py`` (each in its own process), then print one table of all results.

Each benchmark writes ``benchmarks/results/<topic>.json``: a list of rows ``{"benchmark", "metric",
"value", "unit", "baseline", "ratio", "target", "met"}`` (missing keys allowed). Usage:
``python benchmarks/run_all.py [NAME ...]`` (names without the ``bench_`` prefix select a subset).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main(selected: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if selected:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in selected]
    failures = 0
    for script in scripts:
        print(f"== {script.name}", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(script)])
        print(f"   exit {code} after {time.perf_counter() - start:.1f} s", flush=True)
        failures += code != 0
    print_table()
    return 1 if failures else 0


def print_table() -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="dltheory benchmarks")
    for column in ("file", "benchmark", "metric", "value", "baseline", "ratio", "target", "met"):
        table.add_column(column)
    for file in sorted(RESULTS.glob("*.json")):
        for row in _rows(json.loads(file.read_text())):
            table.add_row(
                file.stem,
                str(row.get("benchmark", "")),
                str(row.get("metric", "")),
                _fmt(row.get("value"), row.get("unit", "")),
                _fmt(row.get("baseline"), row.get("unit", "")),
                _fmt(row.get("ratio"), "x"),
                str(row.get("target", "")),
                {True: "yes", False: "NO"}.get(row.get("met"), ""),
            )
    Console(width=160).print(table)


def _rows(payload: object) -> list[dict]:
    """Rows of a result file: a list of row dicts, a dict with "rows", or else a dict whose scalar
    entries become one row each (so every benchmark shows up in the table)."""
    if isinstance(payload, list):
        return [r for r in payload if isinstance(r, dict)]
    if isinstance(payload, dict):
        if isinstance(payload.get("rows"), list):
            return _rows(payload["rows"])
        name = payload.get("benchmark", "")
        return [
            {"benchmark": name, "metric": key, "value": value}
            for key, value in payload.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        ]
    return []


def _fmt(value: object, unit: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g} {unit}".strip()
    return f"{value} {unit}".strip()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
