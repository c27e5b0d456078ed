"""``dltheory certify weights.npz --loss squared --data data.npz``: what is this point of a deep linear
network? A landscape certificate (global minimum, local minimum, saddle or not critical) with its
evidence, from :func:`dltheory.deeplinear.analyze` (Laurent & von Brecht 2018)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console

from dltheory.commands._common import echo_json, fail, name_options, quantity_table

OPTIONS = {"l2": "--l2", "p": "--p", "delta": "--delta", "loss": "--loss", "hessian": "--hessian"}


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _open_npz(path: Path, argument: str) -> Any:
    """``np.load`` of an ``.npz`` archive, with errors naming the argument and the file (ValueError)."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())
        raise ValueError(
            f"{argument} {path}: cannot read it as an .npz archive of arrays ({reason})"
        ) from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{argument} {path}: a single .npy array, not an .npz archive of arrays")
    return archive


def load_weights(path: Path) -> list[np.ndarray]:
    """The 2-D arrays of an ``.npz`` file, first layer first in natural order of their names
    (``W1, W2, ..., W10`` or ``arr_0, arr_1, ...``).

    Raises:
        ValueError: the file cannot be read as an ``.npz`` archive, or holds no arrays.
    """
    with _open_npz(path, "WEIGHTS") as archive:
        names = sorted(archive.files, key=_natural_key)
        weights = [np.asarray(archive[name], dtype=np.float64) for name in names]
    if not weights:
        raise ValueError(f"WEIGHTS {path} holds no arrays")
    return weights


def load_data(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets from an ``.npz`` file with arrays ``X`` and ``Y`` (or ``x`` and ``y``).

    Raises:
        ValueError: the file cannot be read as an ``.npz`` archive, or lacks X or Y.
    """
    with _open_npz(path, "--data") as archive:
        keys = {k.lower(): k for k in archive.files}
        if "x" not in keys or "y" not in keys:
            raise ValueError(f"--data {path} must hold arrays named X and Y, found {sorted(archive.files)}")
        return np.asarray(archive[keys["x"]]), np.asarray(archive[keys["y"]])


def register(app: typer.Typer) -> None:
    @app.command("certify")
    def certify(
        weights: Path = typer.Argument(
            ..., help=".npz with the weight matrices (d_k, d_{k-1}), first layer first"
        ),
        loss: str = typer.Option(
            "squared", "--loss", help="squared, lp, cross_entropy, logistic, huber, hinge, l1"
        ),
        data: Path = typer.Option(..., "--data", help=".npz with X (samples, inputs) and Y (targets)"),
        l2: float = typer.Option(0.0, "--l2", help="l2 term (l2/2)||W_L...W_1||^2 on the end-to-end matrix"),
        p: float = typer.Option(4.0, "--p", help="exponent of the lp loss"),
        delta: float = typer.Option(1.0, "--delta", help="threshold of the Huber loss"),
        hessian: str = typer.Option("auto", "--hessian", help="auto, dense, lanczos, arpack or none"),
        seed: int = typer.Option(0, "--seed", help="seed of the randomised tests"),
        as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
        arrays: bool = typer.Option(
            False, "--arrays", help="with --json: include matrices and escape direction"
        ),
    ) -> None:
        """Certify a point of a deep linear network: global minimum, local minimum, saddle or not critical."""
        from dltheory.deeplinear import analyze

        params = {"lp": {"p": p}, "huber": {"delta": delta}}.get(loss, {})
        if seed < 0:
            fail(f"--seed must be an integer >= 0, got {seed}")
        try:
            report = analyze(
                load_weights(weights),
                loss,
                *load_data(data),
                l2=l2,
                loss_params=params,
                hessian=hessian,
                seed=seed,
            )
        except (ValueError, TypeError) as exc:
            fail(name_options(exc, OPTIONS))
        if as_json:
            echo_json(report.to_dict(include_arrays=arrays))
            return
        rows: list[tuple[str, object]] = [
            ("verdict", report.verdict),
            ("justification", report.justification),
            ("reason", report.reason),
            ("loss", f"{report.loss}: {report.loss_value:.10g}"),
            ("global optimum", f"{report.global_optimum:.10g} ({report.global_optimum_method})"),
            ("optimality gap", f"{report.optimality_gap:.3g}"),
            (
                "widths",
                f"{list(report.widths)} (width condition {'holds' if report.width_condition else 'fails'})",
            ),
            ("gradient norm per layer", ", ".join(f"{g:.2g}" for g in report.gradient_norms)),
            ("rank of the product", str(report.end_to_end_rank)),
        ]
        if report.hessian_min is not None:
            rows.append(("Hessian eigenvalues", f"[{report.hessian_min:.4g}, {report.hessian_max:.4g}]"))
        if report.escape is not None:
            rows.append(
                (
                    "escape",
                    f"{report.escape.method}: loss -{report.escape.best_decrease:.3g} "
                    f"at step {report.escape.best_step:.3g}",
                )
            )
        for note in report.notes:
            rows.append(("note", note))
        Console().print(quantity_table(f"landscape certificate: {report.verdict}", rows, justify="left"))
