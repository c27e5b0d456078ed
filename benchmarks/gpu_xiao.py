"""Paper profile of Xiao et al. (2018) on one GPU: vanilla tanh CNNs of 1,250 to 10,000 layers on MNIST.

Self-contained (needs only torch): the MNIST IDX reader, the critical point of the mean-field theory (by
quadrature), delta-orthogonal initialisation and the network (3 stem convolutions, ``depth`` circularly
padded 3x3 conv + tanh layers, global average pooling, linear read-out; no normalisation, no skips) are
written out here, following dltheory.nn.models / dltheory.nn.convstack / dltheory.nn.recipe.

Training recipe (dltheory.nn.recipe): Adam, rate ``lr`` for stem and head and ``lr / depth`` for the
deep stack, linear warm-up. The deep stack is one autograd node (pad by gather, conv, tanh; hand-written
backward) so that 10,000 layers do not build 30,000 autograd nodes.

Time budget: after timing one training step and one evaluation batch per depth, every depth gets the same
number of steps, chosen so that all depths (building, training and one final evaluation on the 10,000 test
images) fit in ``--budget-s`` seconds; a hard deadline stops training if the estimate was optimistic.
Results are written after each depth to ``OUT/gpu_xiao.json`` (device name, torch version, steps, seconds
per step, curves, final accuracies).

    python benchmarks/gpu_xiao.py OUT [--data-dir DIR_WITH_MNIST_GZ] [--budget-s 420]
    python benchmarks/gpu_xiao.py /tmp/gpu-smoke --smoke          # CPU, seconds
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import struct
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


# ----------------------------------------------------------------------------------------------- data


def find_mnist(data_dir: str | None) -> Path | None:
    here = Path(__file__).resolve().parent
    candidates = [Path(data_dir)] if data_dir else []
    if os.environ.get("DLTHEORY_DATA"):
        candidates += [Path(p) / "mnist" for p in os.environ["DLTHEORY_DATA"].split(os.pathsep)]
    candidates += [
        here.parent / "gpu-data" / "mnist",
        here.parent.parent / "shared" / "data" / "mnist",
        Path.home() / ".cache" / "dltheory" / "mnist",
    ]
    for c in candidates:
        if all((c / f).exists() for f in MNIST_FILES):
            return c
    return None


def read_idx(path: Path) -> torch.Tensor:
    raw = gzip.decompress(path.read_bytes())
    dims = raw[3]
    shape = struct.unpack(">" + "I" * dims, raw[4 : 4 + 4 * dims])
    return torch.frombuffer(bytearray(raw[4 + 4 * dims :]), dtype=torch.uint8).reshape(shape)


def load_mnist(directory: Path, device: torch.device) -> tuple[torch.Tensor, ...]:
    xtr, ytr, xte, yte = (read_idx(directory / f) for f in MNIST_FILES)
    xtr, xte = xtr.float().div_(255).unsqueeze(1), xte.float().div_(255).unsqueeze(1)
    mean, std = xtr.mean(), xtr.std()
    return tuple(t.to(device) for t in ((xtr - mean) / std, ytr.long(), (xte - mean) / std, yte.long()))


# ----------------------------------------------------------------------------------------- mean field


def critical_point_for_q_star(q_star: float) -> tuple[float, float]:
    """tanh: ``sigma_w2 = 1 / E[tanh'(sqrt(q*) z)^2]``, ``sigma_b2 = q* - sigma_w2 E[tanh(sqrt(q*) z)^2]``
    (the critical line chi_1 = 1 parametrised by q*; Schoenholz et al. 2017 eq. 5, Pennington et al. 2017).
    Expectations by the trapezoid rule on [-12, 12] (spectrally accurate for these smooth integrands)."""
    z = torch.linspace(-12, 12, 24001, dtype=torch.float64)
    weight = torch.exp(-z * z / 2) / math.sqrt(2 * math.pi) * (z[1] - z[0])
    h = math.sqrt(q_star) * z
    d = float((weight * (1 - torch.tanh(h) ** 2) ** 2).sum())
    m = float((weight * torch.tanh(h) ** 2).sum())
    return 1.0 / d, max(q_star - m / d, 0.0)


# -------------------------------------------------------------------------------------------- network


def pad_index(height: int, width: int, device: torch.device) -> torch.Tensor:
    rows = [
        ((i - 1) % height) * width + ((j - 1) % width) for i in range(height + 2) for j in range(width + 2)
    ]
    return torch.tensor(rows, device=device)


def circular_pad(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(b, h * w, c).index_select(1, index)
    return rows.view(b, h + 2, w + 2, c).permute(0, 3, 1, 2)


class Stack(torch.autograd.Function):
    """``a_{l+1} = tanh(conv_valid(circular_pad(a_l), W_l) + b_l)``; keeps every layer output for backward
    (no recompute: ~1.6 GB per 10,000 layers at batch 128 and 64 channels)."""

    @staticmethod
    def forward(ctx, x, weight, bias):  # type: ignore[no-untyped-def]
        index = pad_index(x.shape[2], x.shape[3], x.device)
        outs = [x]
        for layer in range(weight.shape[0]):
            outs.append(F.conv2d(circular_pad(outs[-1], index), weight[layer], bias[layer]).tanh_())
        ctx.save_for_backward(weight, *outs)
        ctx.index = index
        return outs[-1]

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        weight, *outs = ctx.saved_tensors
        index, c = ctx.index, weight.shape[1]
        grad_w, grad_b = (
            torch.empty_like(weight),
            torch.empty(weight.shape[:2], device=weight.device, dtype=weight.dtype),
        )
        flipped = weight.transpose(1, 2).flip(3, 4)
        g = grad.contiguous(memory_format=torch.channels_last)
        for layer in reversed(range(weight.shape[0])):
            gz = torch.ops.aten.tanh_backward(g, outs[layer + 1])
            _, gw, gb = torch.ops.aten.convolution_backward(
                gz,
                circular_pad(outs[layer], index),
                weight[layer],
                [c],
                [1, 1],
                [0, 0],
                [1, 1],
                False,
                [0, 0],
                1,
                [False, True, True],
            )
            grad_w[layer], grad_b[layer] = gw, gb
            g = F.conv2d(circular_pad(gz, index), flipped[layer])
        return g, grad_w, grad_b


class VanillaCNN(torch.nn.Module):
    def __init__(
        self,
        depth: int,
        channels: int,
        sigma_w2: float,
        sigma_b2: float,
        generator: torch.Generator,
        device: torch.device,
    ):
        super().__init__()
        c = channels
        self.stem = torch.nn.ModuleList(
            [torch.nn.Conv2d(1, c, 3, 1, 1), torch.nn.Conv2d(c, c, 3, 2, 1), torch.nn.Conv2d(c, c, 3, 2, 1)]
        )
        self.weight = torch.nn.Parameter(torch.zeros(depth, c, c, 3, 3))
        self.bias = torch.nn.Parameter(torch.zeros(depth, c))
        self.head = torch.nn.Linear(c, 10)
        with torch.no_grad():
            for conv in self.stem:  # Gaussian stem at the same sigma_w2 (fan-in scaling), as the recipe
                fan_in = conv.weight[0].numel()
                conv.weight.normal_(0, math.sqrt(sigma_w2 / fan_in), generator=generator)
                conv.bias.normal_(0, math.sqrt(sigma_b2), generator=generator)
            # delta-orthogonal: Haar orthogonal c x c (QR with sign fix) times sigma_w at the centre tap
            q, r = torch.linalg.qr(torch.randn(depth, c, c, generator=generator, dtype=torch.float64))
            q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
            self.weight[:, :, :, 1, 1] = (math.sqrt(sigma_w2) * q).float()
            self.bias.normal_(0, math.sqrt(sigma_b2), generator=generator)
            self.head.weight.normal_(0, 1 / math.sqrt(c), generator=generator)
            self.head.bias.zero_()
        self.to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.stem:
            x = torch.tanh(conv(x))
        x = x.contiguous(memory_format=torch.channels_last)
        if torch.is_grad_enabled():
            x = Stack.apply(x, self.weight, self.bias)
        else:  # evaluation: keep no activations (Stack.forward keeps all of them for the backward pass)
            index = pad_index(x.shape[2], x.shape[3], x.device)
            for layer in range(self.weight.shape[0]):
                x = F.conv2d(circular_pad(x, index), self.weight[layer], self.bias[layer]).tanh_()
        return self.head(x.mean(dim=(2, 3)))


# ------------------------------------------------------------------------------------------- training


def make_optimizer(model: VanillaCNN, lr: float, depth: int, warmup: int):  # type: ignore[no-untyped-def]
    groups = [
        {"params": [*model.stem.parameters(), *model.head.parameters()], "lr": lr},
        {"params": [model.weight, model.bias], "lr": lr / depth},
    ]
    optimizer = torch.optim.Adam(groups, lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0
    )
    return optimizer, scheduler


def evaluate(model: VanillaCNN, x: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[float, float]:
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            out = model(x[i : i + batch])
            correct += int((out.argmax(1) == y[i : i + batch]).sum())
            loss += float(F.cross_entropy(out, y[i : i + batch], reduction="sum"))
    return correct / len(y), loss / len(y)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--depths", default="1250,2500,5000,10000")
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--q-star", type=float, default=0.02)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--budget-s", type=float, default=420.0, help="training + evaluation, all depths")
    p.add_argument("--max-steps", type=int, default=5000)
    p.add_argument("--eval-batch", type=int, default=1000)
    p.add_argument("--test-size", type=int, default=10000)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny CPU run: depths 4,8, 3 steps, 200 test images")
    args = p.parse_args(argv)
    if args.smoke:
        args.depths, args.channels, args.batch_size, args.budget_s, args.test_size = "4,8", 8, 16, 30.0, 200
        args.max_steps, args.warmup = 3, 1
    started = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    torch.backends.cudnn.benchmark = True
    depths = [int(d) for d in args.depths.split(",")]
    directory = find_mnist(args.data_dir)
    if directory is None:
        print(
            f"MNIST not found (looked for {MNIST_FILES} in --data-dir, $DLTHEORY_DATA/mnist, gpu-data/mnist, "
            "../shared/data/mnist)",
            file=sys.stderr,
        )
        return 2
    x_train, y_train, x_test, y_test = load_mnist(directory, device)
    x_test, y_test = x_test[: args.test_size], y_test[: args.test_size]
    sigma_w2, sigma_b2 = critical_point_for_q_star(args.q_star)
    report = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "args": {k: str(v) for k, v in vars(args).items()},
        "sigma_w2": sigma_w2,
        "sigma_b2": sigma_b2,
        "runs": {},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out_file = args.out / "gpu_xiao.json"

    def save() -> None:
        report["wall_s"] = time.perf_counter() - started
        out_file.write_text(json.dumps(report, indent=1))

    n = len(y_train)
    batches = torch.Generator().manual_seed(args.seed)

    def batch_indices() -> torch.Tensor:
        return torch.randint(0, n, (args.batch_size,), generator=batches).to(device)

    # calibration per depth (fresh models, discarded): build time, one warm-up and one timed training step,
    # one timed evaluation batch (the final evaluation covers the test set and 2,000 training images)
    step_s, eval_s = {}, {}
    eval_batches = math.ceil(len(y_test) / args.eval_batch) + math.ceil(2000 / args.eval_batch)
    for depth in depths:
        t = time.perf_counter()
        model = VanillaCNN(
            depth, args.channels, sigma_w2, sigma_b2, torch.Generator().manual_seed(args.seed), device
        )
        optimizer, _ = make_optimizer(model, args.lr, depth, args.warmup)
        build_s = time.perf_counter() - t
        for i in range(2):
            sync(device)
            t = time.perf_counter()
            idx = batch_indices()
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
            optimizer.step()
            sync(device)
            step_s[depth] = time.perf_counter() - t if i else 0.0
        sync(device)
        t = time.perf_counter()
        with torch.no_grad():
            model(x_test[: args.eval_batch])
        sync(device)
        eval_s[depth] = 1.2 * (build_s + eval_batches * (time.perf_counter() - t))
        del model, optimizer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    remaining = args.budget_s - (time.perf_counter() - started)
    steps = int(max(1, min(args.max_steps, (remaining - sum(eval_s.values())) / sum(step_s.values()))))
    report["calibration_s_per_step"] = step_s
    report["calibration_s_build_and_eval"] = eval_s
    report["steps_per_depth"] = steps
    deadline = started + args.budget_s
    print(
        f"device {report['device']}; sigma_w2 {sigma_w2:.6f}, sigma_b2 {sigma_b2:.3g} (q* {args.q_star}); "
        f"{steps} steps per depth; calibration {step_s}",
        flush=True,
    )

    for k, depth in enumerate(depths):
        model = VanillaCNN(
            depth, args.channels, sigma_w2, sigma_b2, torch.Generator().manual_seed(args.seed), device
        )
        optimizer, scheduler = make_optimizer(model, args.lr, depth, args.warmup)
        losses, t0 = [], time.perf_counter()
        # leave time for this depth's evaluation and for the deeper ones still to come
        reserve = sum(eval_s[d] for d in depths[k:]) + sum(steps * step_s[d] for d in depths[k + 1 :])
        status = "completed"
        for step in range(steps):
            idx = batch_indices()
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            scheduler.step()
            if step % 10 == 0 or step == steps - 1:
                value = float(loss.detach())
                losses.append((step + 1, value))
                if not math.isfinite(value):
                    status = "diverged"
                    break
            if time.perf_counter() > deadline - reserve:
                status = f"stopped at the deadline after {step + 1} steps"
                break
        sync(device)
        train_s = time.perf_counter() - t0
        done = losses[-1][0] if losses else 0
        test_acc, test_loss = evaluate(model, x_test, y_test, args.eval_batch)
        train_acc, train_loss = evaluate(model, x_train[:2000], y_train[:2000], args.eval_batch)
        report["runs"][str(depth)] = {
            "status": status,
            "steps": done,
            "s_per_step": train_s / max(done, 1),
            "loss_curve": losses,
            "test_accuracy": test_acc,
            "test_loss": test_loss,
            "train_accuracy_2000": train_acc,
            "train_loss_2000": train_loss,
            "memory_gb": torch.cuda.max_memory_allocated() / 1e9 if device.type == "cuda" else None,
        }
        save()
        print(
            f"depth {depth}: {status}, {done} steps, {train_s / max(done, 1):.3f} s/step, test accuracy "
            f"{test_acc:.4f}, training loss {train_loss:.4f}",
            flush=True,
        )
        del model, optimizer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    save()
    print(f"wrote {out_file} after {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
