"""Run every ``benchmarks/bench_*.py`` (each in its own process), then print one table of all results.

Each benchmark writes ``benchmarks/results/<topic>.json``: a list of rows ``{"benchmark", "metric",
"value", "unit", "baseline", "ratio", "target", "met"}`` (missing keys allowed). Usage:
``python benchmarks/run_all.py [NAME ...]`` (names without the ``bench_`` prefix select a subset).

``python benchmarks/run_all.py --record [NAME ...]`` runs nothing: it copies the existing result files into
``docs/results/benchmarks/<topic>.json`` with their provenance (date measured, commit, machine, versions),
where the documentation's Benchmarks page renders them. Record on a quiet machine and commit the files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RECORDED = HERE.parent / "docs" / "results" / "benchmarks"


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


def record(selected: list[str], store: Path = RECORDED) -> list[Path]:
    """Copy ``benchmarks/results/<topic>.json`` (all, or the ``selected`` topics) into ``store`` with the
    date it was measured (the file's modification time), the commit, the machine and the versions."""
    import datetime
    import os

    files = sorted(RESULTS.glob("*.json"))
    if selected:
        files = [f for f in files if f.stem in selected or f.stem.removeprefix("bench_") in selected]
    if not files:
        raise SystemExit(f"no benchmark result files in {RESULTS}: run the benchmarks first (make bench)")
    store.mkdir(parents=True, exist_ok=True)
    written = []
    for file in files:
        measured = datetime.datetime.fromtimestamp(file.stat().st_mtime, tz=datetime.timezone.utc)
        payload = {
            "name": file.stem,
            "date": measured.isoformat(timespec="seconds"),
            "recorded": datetime.datetime.now(tz=datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": _git_commit(),
            "command": "python benchmarks/run_all.py",
            "machine": _machine(),
            "versions": _versions(),
            "result": json.loads(file.read_text()),
        }
        target = store / file.name
        temporary = target.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(payload, indent=1) + "\n")
        os.replace(temporary, target)
        written.append(target)
        print(f"recorded {file.name} -> {target}")
    return written


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _machine() -> dict:
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    machine: dict = {"cpu_model": cpu, "cpu_count": os.cpu_count(), "gpu": None}
    try:
        machine["load_average"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            machine["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return machine


def _versions() -> dict:
    import platform

    versions = {"python": platform.python_version()}
    for name in ("dltheory", "torch", "numpy", "scipy"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        versions[name] = getattr(module, "__version__", "?")
    return versions


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if "--record" in arguments:
        record([a for a in arguments if a != "--record"])
        sys.exit(0)
    sys.exit(main(arguments))
