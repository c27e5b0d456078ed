"""Run the paper-scale profiles that fit on this machine and record each one as soon as it finishes.

Each entry is ``dltheory run EXPERIMENT --profile PROFILE [--set key=value ...]`` into ``--out``, then
``dltheory record RUN --name NAME`` into the store (``docs/results``) and, with ``--commit``, a git commit
of that record alone (so that nothing is lost if the session stops). ``--lanes 2`` runs two experiments at
a time, one thread each (``OMP_NUM_THREADS=1``): their wall times are then those of a machine shared by
two runs, which the record's notes cannot tell; the log says which ran together. A run that exceeds
``--timeout-s`` is stopped (it resumes from its checkpoints when started again) and not recorded.

    python benchmarks/paper_profiles.py --lanes 2 --commit signalprop-phase-diagram liao-dynamics ...
    python benchmarks/paper_profiles.py --list        # the plan: names, profiles, overrides

An entry is ``EXPERIMENT`` (the paper profile, record name ``paper``) or ``EXPERIMENT:RECORD`` for the
named CPU variants of :data:`VARIANTS`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DLTHEORY = [sys.executable, "-m", "dltheory.cli"]

#: xiao-init at 1,000 layers, 16 channels, 600 steps: the deepest variant that fits about 40 minutes here
_XIAO_INIT_CPU_1000 = {
    "depth": "1000",
    "channels": "16",
    "steps": "600",
    "batch_size": "64",
    "test_size": "2000",
}

#: named variants of paper profiles that are GPU-scale or too long for two CPU cores:
#: record name -> (experiment, profile, overrides)
VARIANTS: dict[str, tuple[str, str, dict[str, str]]] = {
    "xiao-init:cpu-1000": ("xiao-init", "paper", _XIAO_INIT_CPU_1000),
    # the same with q* chosen for the depth by the survival theory (q_star_for_depth("tanh", 1000) = 0.0035)
    # instead of the paper's 0.02: does the delta- vs block-orthogonal ordering at 1,000 layers follow q*?
    "xiao-init:cpu-1000-qdepth": ("xiao-init", "paper", {**_XIAO_INIT_CPU_1000, "q_star": "0.0035"}),
    # the paper's sigma_w2 grid to 1,000 layers; 100 steps per cell: at 300 steps one sigma_w2 column
    # (5 depths) took 8.3 minutes on one core, 3 hours for the 22 columns of both initialisations
    "xiao-trainability:cpu-1000": (
        "xiao-trainability",
        "paper",
        {
            "depths": "[10,30,100,300,1000]",
            "channels": "16",
            "steps": "100",
            "batch_size": "64",
            "train_size": "20000",
            "test_size": "2000",
        },
    ),  # fmt: skip
    # the paper's 10^6 iterations for one loss at a time, without the p = 4 preprocessing study (3.5 hours
    # for the whole profile on two cores; each half fits in about an hour)
    "arora-lp-regression:paper-l2": ("arora-lp-regression", "paper", {"powers": "[2]", "sensitivity": "[]"}),
    "arora-lp-regression:paper-l4": ("arora-lp-regression", "paper", {"powers": "[4]", "sensitivity": "[]"}),
}


def plan(entry: str) -> tuple[str, str, dict[str, str], str]:
    """(experiment, profile, overrides, record name) of a command-line entry."""
    if entry in VARIANTS:
        experiment, profile, overrides = VARIANTS[entry]
        return experiment, profile, overrides, entry.split(":", 1)[1]
    if ":" in entry:
        raise SystemExit(f"unknown variant {entry!r}; known: {sorted(VARIANTS)}")
    return entry, "paper", {}, "paper"


def run_one(entry: str, out: Path, timeout_s: float, commit: bool, log: Path) -> dict:
    experiment, profile, overrides, record = plan(entry)
    command = [*DLTHEORY, "run", experiment, "--profile", profile, "--out", str(out), "--resume"]
    command += ["--name", record]
    for key, value in overrides.items():
        command += ["--set", f"{key}={value}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    started = time.strftime("%H:%M:%S")
    began = time.perf_counter()
    outcome: dict = {"entry": entry, "started": started, "command": " ".join(command[2:])}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
        outcome.update(exit=done.returncode, tail=(done.stdout + done.stderr)[-600:])
    except subprocess.TimeoutExpired:
        outcome.update(exit=None, tail=f"stopped after {timeout_s:.0f} s (resumable)")
    outcome["wall_s"] = time.perf_counter() - began
    run_dir = out / experiment / record
    if outcome["exit"] == 0:
        stored = subprocess.run(
            [*DLTHEORY, "record", str(run_dir), "--name", record, "--replace"], capture_output=True, text=True
        )
        outcome["recorded"] = stored.returncode == 0
        outcome["record_output"] = (stored.stdout + stored.stderr).strip()[-300:]
        if commit and stored.returncode == 0:
            path = ROOT / "docs" / "results" / experiment / record
            subprocess.run(["git", "add", str(path)], cwd=ROOT, check=False)
            subprocess.run(
                ["git", "commit", "-q", "-m", f"Recorded run {experiment}/{record} ({profile} profile)", "--",
                 str(path)],
                cwd=ROOT,
                check=False,
            )  # fmt: skip
    with log.open("a") as handle:
        handle.write(json.dumps(outcome) + "\n")
    print(json.dumps({k: v for k, v in outcome.items() if k != "tail"}), flush=True)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("entries", nargs="*")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "paper")
    parser.add_argument("--lanes", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=7200.0)
    parser.add_argument("--commit", action="store_true", help="git-commit each record as it is made")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list or not args.entries:
        for entry in args.entries or sorted(VARIANTS):
            print(entry, plan(entry))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "paper_profiles.jsonl"
    with ThreadPoolExecutor(max_workers=args.lanes) as pool:
        results = list(
            pool.map(lambda e: run_one(e, args.out, args.timeout_s, args.commit, log), args.entries)
        )
    return 0 if all(r.get("recorded") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
