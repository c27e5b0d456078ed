"""The recorded CPU run at depth 10,000: delta-orthogonal vs Gaussian initialisation, same depth and budget.

Trains the vanilla tanh CNN of Xiao et al. (2018) (:class:`dltheory.nn.VanillaCNN`: 3 stem convolutions,
``--depth`` circular 3x3 conv + tanh layers, global average pooling, linear read-out; no normalisation,
no skips) on MNIST with the recipe of :mod:`dltheory.nn.recipe`, once per initialisation of the deep
stack, both at the critical point of the mean-field theory. Each run lives in ``OUT/<init>/`` (config,
metrics.jsonl, checkpoints): interrupting and re-running the same command resumes where it stopped.
``--summarise`` then turns ``OUT`` into a run directory of the ``xiao-depth`` experiment (result.json with
claims and provenance, the experiment's figure: curves and per-layer gradient norms, the final accuracy on
10,000 test images), which ``dltheory record OUT --name cpu-10000`` copies into the store.

Recipe (chosen from the theory and short runs, see the docs' xiao pages): q* = 0.001, the largest q* whose
mean-field correlation map keeps 99% of two inputs' decorrelation over 10,000 layers
(:func:`dltheory.signalprop.q_star_for_depth`); Adam with the stack at lr / depth and the read-out at
lr / sqrt(q*) (the pooled features have size sqrt(q*)); warm-up 10 steps.

The full run (about 2-3 hours on 2 cores; the recorded wall time is in its record)::

    OMP_NUM_THREADS=1 python benchmarks/xiao_depth10k.py --out runs/xiao-depth10k --init delta_orthogonal &
    OMP_NUM_THREADS=1 python benchmarks/xiao_depth10k.py --out runs/xiao-depth10k --init gaussian &
    wait; python benchmarks/xiao_depth10k.py --out runs/xiao-depth10k --summarise

A smoke test (seconds): ``python benchmarks/xiao_depth10k.py --depth 20 --steps 6 --eval-every 3
--test-size 100 --out /tmp/xiao10k-smoke``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dltheory.core.io import atomic_write_json, read_json
from dltheory.experiments import xiao_depth
from dltheory.experiments._xiao_common import (
    CHANCE_LOSS,
    ImageData,
    curves,
    evaluator,
    final_metrics,
    gradient_spread,
    image_data,
    stack_gradient_norms,
    train_network,
)
from dltheory.experiments.base import Claim, Result
from dltheory.experiments.execute import environment_info
from dltheory.nn.models import VanillaCNN
from dltheory.nn.recipe import TrainingRecipe
from dltheory.runner.records import command_line
from dltheory.runner.runs import RunDir

INITS = ("delta_orthogonal", "gaussian")
LOSS_FRACTION = 0.7  # "trains": final training loss below this fraction of ln 10 (as in xiao-depth)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/xiao-depth10k"))
    p.add_argument("--init", choices=INITS, action="append", help="initialisation(s) to run (default: both)")
    p.add_argument("--depth", type=int, default=10000)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument(
        "--q-star",
        type=float,
        default=0.001,
        help="fixed point of the critical point used (0.001: the correlation map keeps 99%% of 1 - c "
        "over 10,000 layers once q has settled at q*; at 0.02 it keeps 23%%)",
    )
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--lr", type=float, default=1e-2, help="Adam rate of stem and head; the stack gets lr / depth"
    )
    p.add_argument(
        "--head-lr",
        type=float,
        default=None,
        help="Adam rate of the read-out (default lr / sqrt(q*): the pooled features have size sqrt(q*))",
    )
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--train-size", type=int, default=60000)
    p.add_argument("--test-size", type=int, default=1000, help="test images evaluated during training")
    p.add_argument(
        "--final-test-size", type=int, default=10000, help="test images of the final evaluation (--summarise)"
    )
    p.add_argument("--train-eval-size", type=int, default=500)
    p.add_argument(
        "--checkpoint", default="none", help="'none' (3.9 GB, fastest), 'sqrt' (~1.3 GB), 'auto' or an int"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--summarise", action="store_true", help="only collect finished runs into summary/curves")
    return p.parse_args(argv)


def run_one(args: argparse.Namespace, init: str) -> dict:
    config = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in ("init", "summarise")
    }
    config["init"] = init
    run_dir = RunDir(args.out / init, config, resume=True)
    started = run_dir.path / "provenance.json"
    if not started.exists():  # written once, by the process that starts the run (resumes keep it)
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        ).stdout.strip()
        atomic_write_json(
            started,
            {
                "command": " ".join(["python", *sys.argv]),
                "commit": commit,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "environment": environment_info(),
            },
        )
    data = image_data("mnist", args.train_size, args.test_size)
    checkpoint = int(args.checkpoint) if args.checkpoint.isdigit() else args.checkpoint
    model = VanillaCNN(
        args.depth,
        args.channels,
        init=init,
        q_star=args.q_star,
        stem_init="gaussian",
        checkpoint=checkpoint,
        generator=torch.Generator().manual_seed(args.seed),
    )
    head_lr = args.lr / math.sqrt(args.q_star) if args.head_lr is None else args.head_lr
    recipe = TrainingRecipe(optimizer="adam", lr=args.lr, head_lr=head_lr, warmup_steps=args.warmup)
    start = time.perf_counter()
    outcome = train_network(
        model,
        recipe,
        data,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        run_dir=run_dir,
        name="train",
        evaluations=max(args.steps // args.eval_every, 1),
        train_eval_size=args.train_eval_size,
    )
    wall = time.perf_counter() - start
    done = outcome.step - outcome.resumed_from
    record = {
        "init": init,
        "sigma_w2": model.sigma_w2,
        "sigma_b2": model.sigma_b2,
        "q_star": args.q_star,
        "recipe": dataclasses.asdict(recipe),
        "stack_lr": recipe.stack_rate(args.depth),
        "wall_s_this_session": wall,
        "steps_this_session": done,
        "s_per_step_incl_eval": wall / done if done else None,
        **curves(outcome),
        **final_metrics(outcome),
    }
    previous = run_dir.path / "record.json"
    if done == 0 and previous.exists():  # nothing trained now: keep the timing of the session that trained
        old = json.loads(previous.read_text())
        record.update(
            {k: old[k] for k in ("wall_s_this_session", "steps_this_session", "s_per_step_incl_eval")}
        )
    previous.write_text(json.dumps(record, indent=1))
    return record


def _model(args: argparse.Namespace, init: str) -> VanillaCNN:
    return VanillaCNN(
        args.depth,
        args.channels,
        init=init,
        q_star=args.q_star,
        stem_init="gaussian",
        checkpoint="sqrt",
        generator=torch.Generator().manual_seed(args.seed),
    )


def _gradient_profile(args: argparse.Namespace, init: str, data: ImageData) -> dict[str, Any]:
    """Per-layer gradient norms on the first training batch at initialisation and after training (from
    the final checkpoint), and the final model's accuracy on all ``--final-test-size`` test images."""
    probe = data.x_train[: args.batch_size], data.y_train[: args.batch_size]
    model = _model(args, init)
    norms_init = stack_gradient_norms(model, *probe)
    state = torch.load(args.out / init / "checkpoints" / "train.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    norms_final = stack_gradient_norms(model, *probe)
    model.eval()
    with torch.no_grad():
        full = evaluator(data, train_eval_size=0)(model)
    layers = np.unique(np.geomspace(1, args.depth, 64).astype(int)) - 1
    return {
        "gradient_layers": (layers + 1).tolist(),
        "gradient_norms_init": norms_init[layers].tolist(),
        "gradient_norms_final": norms_final[layers].tolist(),
        "gradient_spread_init": gradient_spread(norms_init),
        "gradient_spread_final": gradient_spread(norms_final),
        "final_test_accuracy": full["test_accuracy"],
        "final_test_loss": full["test_loss"],
    }


def summarise(args: argparse.Namespace) -> dict[str, Any]:
    """Collect both runs into ``OUT`` as a run directory of ``xiao-depth`` (config, status, result.json with
    the provenance :func:`dltheory.runner.records.record_run` needs, the experiment's figure), so that
    ``dltheory record OUT --name cpu-10000`` stores it."""
    records = {init: read_json(args.out / init / "record.json") for init in INITS}
    starts = {init: read_json(args.out / init / "provenance.json") for init in INITS}
    if any(r["status"] != "completed" for r in records.values()):
        raise SystemExit(f"not every run has completed: { {k: r['status'] for k, r in records.items()} }")
    data = image_data("mnist", args.train_size, args.final_test_size)
    runs: dict[str, Any] = {}
    for init in INITS:
        r = records[init]
        label = str(args.depth) if init == INITS[0] else f"{args.depth}-{init}"
        runs[label] = {
            **{
                k: r[k] for k in ("step", "loss", "eval_step", "test_accuracy", "test_loss", "train_accuracy")
            },
            "train_loss": r["train_loss"],
            "status": r["status"],
            "steps_done": r["steps_done"],
            "final_train_accuracy": r["final_train_accuracy"],
            "final_train_loss": r["final_train_loss"],
            "depth": args.depth,
            "init": init,
            "sigma_w2": r["sigma_w2"],
            "step_mode": "eager",
            "stopped_by_budget": False,
            "seconds_per_step": r["s_per_step_incl_eval"],
            "monitor_test_accuracy": r["final_test_accuracy"],
            **_gradient_profile(args, init, data),
        }
    deep, base = runs[str(args.depth)], runs[f"{args.depth}-{INITS[1]}"]
    threshold = LOSS_FRACTION * CHANCE_LOSS
    claims = [
        Claim(
            f"depth {args.depth} trains: final training loss below {LOSS_FRACTION} x chance",
            f"< {threshold:.3f} nats",
            deep["final_train_loss"],
            None,
            bool(deep["final_train_loss"] < threshold),
            f"test accuracy {deep['final_test_accuracy']:.3f} on {args.final_test_size} test images after "
            f"{deep['steps_done']} steps",
        ),
        Claim(
            f"at depth {args.depth}, {INITS[0]} beats {INITS[1]} kernels (same critical point, recipe and "
            "budget)",
            "higher test accuracy by > 5 points",
            [deep["final_test_accuracy"], base["final_test_accuracy"]],
            0.05,
            bool(deep["final_test_accuracy"] > base["final_test_accuracy"] + 0.05),
            f"{INITS[1]}: final training loss {base['final_train_loss']:.3f}, {base['steps_done']} steps; "
            f"{base['gradient_spread_init']['zero_layers']} of {args.depth} layers get an exactly zero "
            "gradient at initialisation (underflow)",
        ),
    ]
    recipe = records[INITS[0]]["recipe"]
    result = Result(
        "xiao-depth",
        claims=claims,
        data={
            "depths": [args.depth],
            "runs": runs,
            "chance_loss": CHANCE_LOSS,
            "q_star": args.q_star,
            "sigma_b2": records[INITS[0]]["sigma_b2"],
        },
        notes=[
            f"MNIST: {args.train_size} training images; accuracy during training on the first "
            f"{args.test_size} test images, final accuracy on the first {args.final_test_size}; "
            f"{args.channels} channels, q* = {args.q_star:g} (the correlation map keeps 99% of two inputs' "
            f"decorrelation over {args.depth} layers), recipe {recipe}.",
            "Both initialisations trained at the same time as two single-threaded processes on the two cores "
            "(seconds per step include the evaluations and whatever else ran on the machine).",
        ],
    )
    figures = xiao_depth.EXPERIMENT.plot(result, args.out / "figures")
    finished = max((args.out / init / "checkpoints" / "train.pt").stat().st_mtime for init in INITS)
    commands = [starts[init]["command"] for init in INITS]
    payload = result.to_dict()
    payload.update(
        description=xiao_depth.EXPERIMENT.description,
        paper="xiao",
        profile=f"cpu-{args.depth}",
        seed=args.seed,
        config={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "summarise"},
        wall_time_s=max(r["wall_s_this_session"] for r in records.values()),
        environment=starts[INITS[0]]["environment"],
        command=" & ".join(commands) + f"; {command_line(sys.argv)}",
        commit=starts[INITS[0]]["commit"],
        commit_dirty=False,
        overrides={},
        date=datetime.datetime.fromtimestamp(finished, tz=datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        figures=[str(f.relative_to(args.out)) for f in figures],
    )
    atomic_write_json(args.out / "config.json", {"experiment": "xiao-depth", "profile": payload["profile"]})
    atomic_write_json(args.out / "result.json", payload)
    atomic_write_json(args.out / "status.json", {"status": "completed", "verdict": result.verdict})
    return payload


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # Gradients through 10,000 Gaussian layers shrink below 1e-38 (subnormal floats), where x86 arithmetic
    # is some 50x slower; flushing them to zero changes nothing above that size.
    torch.set_flush_denormal(True)
    if not args.summarise:
        for init in args.init or INITS:
            record = run_one(args, init)
            acc = record["final_test_accuracy"]
            print(
                f"{init}: {record['status']} after {record['steps_done']} steps; final training loss "
                f"{record['final_train_loss']:.4f} (chance {CHANCE_LOSS:.4f}); test accuracy "
                f"{acc if math.isnan(acc) else round(acc, 4)}; "
                f"{record['s_per_step_incl_eval'] or float('nan'):.2f} s/step this session",
                flush=True,
            )
    if args.summarise:
        payload = summarise(args)
        for claim in payload["claims"]:
            print(f"{claim['name']}: measured {claim['measured']}; agree {claim['agree']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
