"""``dltheory learning-curve``: random-matrix predictions for gradient descent on a two-class Gaussian
mixture (Liao & Couillet 2018, see :mod:`dltheory.learningdyn`): optimal stopping, least-squares limit,
best possible error and the errors at chosen steps."""

from __future__ import annotations

import warnings
from typing import Any

import typer
from rich.console import Console

from dltheory.commands._common import echo_json, fail, name_options, quantity_table

OPTIONS = {
    "mu_norm2": "--mu-norm2",
    "p": "--p",
    "n": "--n",
    "sigma2": "--sigma2",
    "alpha": "--alpha",
    "ridge": "--ridge",
    "t": "--step",
}


def _summary(
    mu_norm2: float, p: int, n: int, sigma2: float, alpha: float, ridge: float, flow: bool, steps: list[int]
) -> dict[str, Any]:
    from dltheory.learningdyn import GDTheory

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        theory = GDTheory(mu_norm2, (p, n), sigma2, alpha, discrete=not flow, ridge=ridge)
    stop = theory.optimal_stopping()
    limit = theory.least_squares_limit()
    out: dict[str, Any] = {
        "mu_norm2": mu_norm2,
        "p": p,
        "n": n,
        "c": p / n,
        "sigma2": sigma2,
        "alpha": alpha,
        "ridge": ridge,
        "time": "gradient flow" if flow else "discrete steps",
        "lambda_max": theory.lambda_max,
        "spike": theory.spike_location,
        "stability_limit_alpha": 2 / (theory.lambda_max + ridge),
        "optimal_stopping_time": stop.time,
        "optimal_test_error": stop.error,
        "optimal_train_error": float(theory.train_error(stop.time)) if stop.time > 0 else 0.5,
        "least_squares_test_error": limit.test_error,
        "least_squares_train_error": limit.train_error,
        "best_possible_error": theory.best_possible_error(),
    }
    if steps:
        out["steps"] = {
            str(t): {"test_error": float(theory.test_error(t)), "train_error": float(theory.train_error(t))}
            for t in steps
        }
    if caught:
        out["warnings"] = [str(w.message) for w in caught]
    return out


def register(app: typer.Typer) -> None:
    @app.command("learning-curve")
    def learning_curve(
        mu_norm2: float = typer.Option(4.0, "--mu-norm2", help="||mu||^2, the class separation"),
        p: int = typer.Option(256, "--p", help="dimension p"),
        n: int = typer.Option(512, "--n", help="number of training samples n"),
        sigma2: float = typer.Option(
            0.1, "--sigma2", help="initialisation variance (w_0 ~ N(0, sigma2/p I))"
        ),
        alpha: float = typer.Option(0.01, "--alpha", help="gradient-descent step size"),
        ridge: float = typer.Option(0.0, "--ridge", help="ridge penalty (ridge/2)||w||^2 (extension)"),
        flow: bool = typer.Option(False, "--flow", help="gradient flow exp(-alpha t x) instead of steps"),
        step: list[int] = typer.Option([], "--step", help="also report the errors at this step (repeatable)"),
        as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    ) -> None:
        """Predicted learning curve of gradient descent on x = y mu + z (Liao & Couillet 2018): optimal
        early-stopping step and error, least-squares limit (t -> inf) and best possible error."""
        try:
            summary = _summary(mu_norm2, p, n, sigma2, alpha, ridge, flow, step)
        except (ValueError, TypeError) as exc:
            fail(name_options(exc, OPTIONS))
        if as_json:
            echo_json(summary)
            return
        rows = [(key, value) for key, value in summary.items() if key not in ("steps", "warnings")]
        rows += [
            (f"step {t}: test / train error", f"{errors['test_error']:.6g} / {errors['train_error']:.6g}")
            for t, errors in summary.get("steps", {}).items()
        ]
        title = f"gradient-descent learning curve: ||mu||^2 = {mu_norm2:g}, p = {p}, n = {n}"
        console = Console()
        console.print(quantity_table(title, rows))
        for message in summary.get("warnings", []):
            console.print(f"[yellow]warning:[/yellow] {message}")
