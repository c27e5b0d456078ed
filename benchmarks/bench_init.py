"""Benchmark: delta-orthogonal initialisation of a 10,000-layer, 64-channel 3x3 conv stack.

Three ways to fill ``layers`` weights of shape ``(channels, channels, 3, 3)`` (float32), timed in the same
process, interleaved, best of ``repeats``:

- baseline: a per-layer Python loop ``w.zero_(); torch.nn.init.orthogonal_(w[:, :, 1, 1])`` (one QR per
  layer) over the layers' weight tensors;
- ``delta_orthogonal_stack_(list_of_weights)``: one batched QR of a ``(layers, channels, channels)``
  Gaussian, written into the separate tensors with ``torch._foreach_zero_`` / ``_foreach_copy_``;
- ``delta_orthogonal_stack_(stacked)``: the same into one ``(layers, channels, channels, 3, 3)`` tensor
  (the layout of :class:`dltheory.nn.VanillaCNN`'s stack parameter).

The weights of the list are views of the stacked tensor (one 1.5 GB allocation at the default size). Every
method's output is checked: centre taps with ``W^T W = gain^2 I`` (max error reported), zeros elsewhere.
The issue's target is a >= 3x speed-up over the baseline. Timings depend on the machine's load: the result
file records the thread count and the load average. The default is one thread: the baseline cannot use more
(its ops are too small), and on a shared machine OpenMP threads make its thousands of tiny ops erratically
slow (measured 2.4 ms instead of 85 us per layer at 2 threads), which would inflate the speed-up.

Run: python benchmarks/bench_init.py [--layers 10000] [--channels 64] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dltheory.core.io import atomic_write_json
from dltheory.nn.init import delta_orthogonal_stack_, haar_orthogonal

TARGET_SPEEDUP = 3.0
GAIN = 1.05**0.5  # sqrt(sigma_w2) of the authors' MNIST demo


def baseline(weights: list[torch.Tensor], generator: torch.Generator) -> None:
    for w in weights:
        w.zero_()
        torch.nn.init.orthogonal_(w[:, :, 1, 1], gain=GAIN, generator=generator)


def check(stacked: torch.Tensor) -> float:
    """Max |W^T W - gain^2 I| over the centre taps; raises if any other tap is non-zero."""
    centre = stacked[:, :, :, 1, 1]
    off = stacked.clone()
    off[:, :, :, 1, 1] = 0
    if torch.count_nonzero(off):
        raise AssertionError("non-zero off-centre taps")
    eye = torch.eye(stacked.shape[1]) * GAIN**2
    return float((centre.mT @ centre - eye).abs().max())


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=10_000)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "init.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    c = args.channels
    stacked = torch.empty(args.layers, c, c, 3, 3)
    views = list(stacked.unbind(0))
    methods: dict[str, Callable[[torch.Generator], object]] = {
        "baseline: loop of torch.nn.init.orthogonal_": lambda g: baseline(views, g),
        "delta_orthogonal_stack_(list of tensors)": lambda g: delta_orthogonal_stack_(views, GAIN, g),
        "delta_orthogonal_stack_(stacked tensor)": lambda g: delta_orthogonal_stack_(stacked, GAIN, g),
        "  of which: Gaussian + QR (haar_orthogonal)": lambda g: haar_orthogonal(
            c, batch=args.layers, generator=g
        ),
        "  of which: Gaussian draw alone": lambda g: torch.randn(args.layers, c, c, generator=g),
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    errors: dict[str, float] = {}
    for repeat in range(args.repeats):
        for name, method in methods.items():
            generator = torch.Generator().manual_seed(repeat)
            times[name].append(timed(lambda method=method, generator=generator: method(generator)))
            if not name.startswith(" "):
                errors[name] = max(errors.get(name, 0.0), check(stacked))
    best = {name: min(values) for name, values in times.items()}
    reference = best["baseline: loop of torch.nn.init.orthogonal_"]
    rows = [
        {
            "method": name,
            "best_s": best[name],
            "all_s": times[name],
            "speedup_vs_baseline": reference / best[name],
            "max_orthogonality_error": errors.get(name),
        }
        for name in methods
    ]
    ours = max(reference / best[name] for name in methods if name.startswith("delta"))
    result = {
        "benchmark": "delta-orthogonal init of a deep conv stack",
        "layers": args.layers,
        "channels": c,
        "kernel": [3, 3],
        "dtype": "float32",
        "threads": args.threads,
        "load_average_1min": os.getloadavg()[0],
        "torch": torch.__version__,
        "rows": rows,
        "best_speedup": ours,
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": ours >= TARGET_SPEEDUP,
    }
    atomic_write_json(args.out, result)
    load = result["load_average_1min"]
    print(
        f"{args.layers} layers x ({c}, {c}, 3, 3) float32, {args.threads} thread(s), load average {load:.1f}"
    )
    print(f"{'method':48s} {'best (s)':>9s} {'speed-up':>9s} {'max |W^T W - g^2 I|':>20s}")
    for row in rows:
        err = "" if row["max_orthogonality_error"] is None else f"{row['max_orthogonality_error']:.2e}"
        print(f"{row['method']:48s} {row['best_s']:9.3f} {row['speedup_vs_baseline']:8.2f}x {err:>20s}")
    verdict = "met" if result["meets_target"] else "NOT met"
    print(f"best speed-up {ours:.2f}x (target {TARGET_SPEEDUP:g}x): {verdict}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
