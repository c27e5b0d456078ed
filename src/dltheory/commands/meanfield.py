"""``dltheory meanfield``: critical sigma_w2, q*, chi_1, depth scales, phase and trainable depth of a
fully-connected network at initialisation (mean-field theory, see :mod:`dltheory.signalprop.meanfield`)."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from dltheory.commands._common import echo_json, fail, quantity_table


def _check_inputs(activation: str, sigma_b2: float, sigma_w2: float | None) -> None:
    """Reject bad input before any theory runs, naming the option (ValueError)."""
    from dltheory.core.activations import ACTIVATIONS
    from dltheory.core.validation import check_choice, check_positive

    check_choice("--activation", activation, ACTIVATIONS)
    check_positive("--sigma-b2", sigma_b2, allow_zero=True)
    if sigma_w2 is not None:
        check_positive("--sigma-w2", sigma_w2)


def _summary(activation: str, sigma_b2: float, sigma_w2: float | None) -> dict[str, Any]:
    from dltheory.signalprop import critical_line, fixed_point, phase, trainable_depth

    _check_inputs(activation, sigma_b2, sigma_w2)
    out: dict[str, Any] = {"activation": activation, "sigma_b2": sigma_b2}
    try:
        line = critical_line(activation, sigma_b2)
        out["critical_sigma_w2"] = float(line.sigma_w2)
        out["critical_q_star"] = float(line.q_star)
    except ValueError as exc:  # valid input where the theory has no critical point (relu, sigma_b2 > 0)
        out["critical_sigma_w2"] = None
        out["critical_note"] = str(exc)
    if sigma_w2 is not None:
        fp = fixed_point(activation, sigma_w2, sigma_b2)
        out.update(
            sigma_w2=sigma_w2,
            q_star=float(fp.q_star),
            c_star=float(fp.c_star),
            chi_1=float(fp.chi_1),
            chi_c=float(fp.chi_c),
            xi_q=float(fp.xi_q),
            xi_c=float(fp.xi_c),
            phase=str(phase(activation, sigma_w2, sigma_b2)),
            trainable_depth_6xi_c=float(trainable_depth(activation, sigma_w2, sigma_b2)),
        )
    return out


def register(app: typer.Typer) -> None:
    @app.command("meanfield")
    def meanfield(
        activation: str = typer.Option("tanh", help="activation name (tanh, erf, relu, hard_tanh, ...)"),
        sigma_b2: float = typer.Option(0.05, "--sigma-b2", help="bias variance sigma_b^2"),
        sigma_w2: float | None = typer.Option(None, "--sigma-w2", help="weight variance sigma_w^2"),
        as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    ) -> None:
        """Mean-field signal propagation: critical sigma_w2 and q* at sigma_b2; with --sigma-w2 also chi_1,
        c*, depth scales xi_q and xi_c, the phase and the 6 xi_c trainable-depth heuristic."""
        try:
            summary = _summary(activation, sigma_b2, sigma_w2)
        except (ValueError, TypeError) as exc:
            fail(exc)
        if as_json:
            echo_json(summary)
            return
        rows = [
            (key, "none (see critical_note)" if value is None else value)
            for key, value in summary.items()
            if key not in ("activation", "sigma_b2")
        ]
        Console().print(quantity_table(f"mean-field theory: {activation}, sigma_b2 = {sigma_b2:g}", rows))
