"""The recorded CPU run at depth 10,000: delta-orthogonal vs Gaussian initialisation, same depth and budget.

Trains the vanilla tanh CNN of Xiao et al. (2018) (:class:`dltheory.nn.VanillaCNN`: 3 stem convolutions,
``--depth`` circular 3x3 conv + tanh layers, global average pooling, linear read-out; no normalisation,
no skips) on MNIST with the recipe of :mod:`dltheory.nn.recipe`, once per initialisation of the deep
stack, both at the critical point of the mean-field theory. Each run lives in ``OUT/<init>/`` (config,
metrics.jsonl, checkpoints): interrupting and re-running the same command resumes where it stopped.
``OUT/summary.json`` and ``OUT/curves.png`` collect both runs.

The full run (about 2 hours on 2 cores; measured step time in the README, "10,000-layer vanilla CNNs")::

    OMP_NUM_THREADS=1 python benchmarks/xiao_depth10k.py --out runs/xiao-depth10k --init delta_orthogonal &
    OMP_NUM_THREADS=1 python benchmarks/xiao_depth10k.py --out runs/xiao-depth10k --init gaussian &
    wait; python benchmarks/xiao_depth10k.py --out runs/xiao-depth10k --summarise

A smoke test (seconds): ``python benchmarks/xiao_depth10k.py --depth 20 --steps 6 --eval-every 3
--test-size 100 --out /tmp/xiao10k-smoke``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from dltheory.core.io import atomic_write_json
from dltheory.experiments._xiao_common import CHANCE_LOSS, curves, final_metrics, image_data, train_network
from dltheory.experiments.execute import environment_info
from dltheory.nn.models import VanillaCNN
from dltheory.nn.recipe import TrainingRecipe
from dltheory.runner.runs import RunDir

INITS = ("delta_orthogonal", "gaussian")


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
    p.add_argument("--test-size", type=int, default=1000)
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


def summarise(args: argparse.Namespace) -> dict:
    records = {}
    for init in INITS:
        file = args.out / init / "record.json"
        if file.exists():
            records[init] = json.loads(file.read_text())
    summary = {"depth": args.depth, "channels": args.channels, "chance_loss": CHANCE_LOSS, "runs": records}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for init, color in zip(INITS, ("C0", "C3"), strict=True):
        if init not in records:
            continue
        r = records[init]
        label = init.replace("_", "-") + (f" ({r['status']})" if r["status"] != "completed" else "")
        ax_loss.plot(r["step"], r["loss"], color=color, lw=0.8, alpha=0.7, label=f"{label}, mini-batch")
        ax_loss.plot(
            r["eval_step"], r["train_loss"], "o-", color=color, ms=4, label=f"{label}, training subset"
        )
        ax_acc.plot(
            r["eval_step"], [100 * a for a in r["test_accuracy"]], "o-", color=color, ms=4, label=label
        )
    ax_loss.axhline(CHANCE_LOSS, color="grey", ls="--", label="chance (ln 10)")
    ax_loss.set_xlabel("training step")
    ax_loss.set_ylabel("cross-entropy (nats)")
    ax_loss.legend(fontsize=7)
    ax_acc.axhline(10, color="grey", ls="--", label="chance (10%)")
    ax_acc.set_xlabel("training step")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.legend(fontsize=7)
    fig.suptitle(
        f"Vanilla tanh CNN with {args.depth:,} layers on MNIST ({args.channels} channels), critical point"
    )
    fig.tight_layout()
    fig.savefig(args.out / "curves.png", dpi=110)
    plt.close(fig)
    return summary


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
    summary = summarise(args)
    print(
        json.dumps(
            {
                k: {m: v[m] for m in ("status", "final_train_loss", "final_test_accuracy")}
                for k, v in summary["runs"].items()
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
