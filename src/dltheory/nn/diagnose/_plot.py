"""Figure of a diagnosis report: q^l, c^l, gradient norms and per-link chi against depth, measured
(markers) vs mean-field prediction (lines); links the theory does not cover are shaded.

Built on a detached :class:`matplotlib.figure.Figure` (:func:`dltheory.core.figures.new_figure`): the
user's pyplot backend is never touched. The report is read through the :class:`ReportView` protocol, so
this module does not import the report's module (no import cycle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dltheory.core.figures import new_figure, save_figure


class ReportView(Protocol):
    """What the figure reads from a :class:`~dltheory.nn.diagnose.DiagnosisReport`."""

    layers: list[Any]
    links: list[dict[str, Any]]
    segments: list[tuple[int, int]]
    q: np.ndarray
    c: np.ndarray
    grad_sq: np.ndarray
    grad_norms: np.ndarray
    chi_1: np.ndarray
    chi_1_bulk: float
    phase: str | None
    predicted: Any
    residual: Any

    @property
    def covered_links(self) -> int: ...


def _shade_breaks(ax: Any, report: ReportView) -> None:
    first = True
    for link in report.links:
        if not link["covered"]:
            ax.axvspan(
                link["from"] + 1, link["from"] + 2, color="0.85", lw=0, label="not covered" if first else None
            )
            first = False


def _positive(values: np.ndarray) -> np.ndarray:
    return np.where(np.asarray(values) > 0, values, np.nan)


def _theory_line(ax: Any, x: np.ndarray, y: np.ndarray, spans: list[tuple[int, int]], label: str) -> None:
    """One line per covered run (no line across links the theory does not cover)."""
    for k, (start, stop) in enumerate(spans):
        ax.plot(
            x[start : stop + 1], y[start : stop + 1], "-", color="k", lw=1.2, label=label if k == 0 else None
        )


def plot_residual(report: ReportView, path: str | Path | None = None, title: str | None = None) -> Any:
    """Four panels along the residual stream (sites: the stream entering block 1, then after each block):
    q, c and the squared gradient, measured (markers) vs mean field (lines), and the cumulative growth of
    the squared gradient over the first L blocks, continued past the model with copies of its last block."""
    res = report.residual
    sites = np.arange(res.blocks + 1)
    fig, axes = new_figure(2, 2, figsize=(12, 8))
    ax_q, ax_c, ax_g, ax_growth = axes.ravel()
    ax_q.plot(sites, _positive(res.q), "o", ms=3, color="tab:blue", label="measured")
    ax_q.plot(sites, _positive(res.q_pred), "-", color="k", lw=1.2, label="mean field")
    ax_q.set_yscale("log")
    ax_q.set_ylabel("q: mean squared stream activation")
    ax_q.set_title("stream length")
    ax_c.plot(sites, res.c, "o", ms=3, color="tab:orange", label="measured")
    ax_c.plot(sites, res.c_pred, "-", color="k", lw=1.2, label="mean field")
    ax_c.set_ylabel("c: correlation of two inputs")
    ax_c.set_title("stream correlation")
    ax_g.plot(sites, _positive(res.grad_sq), "o", ms=3, color="tab:red", label="measured")
    ax_g.plot(
        sites,
        _positive(res.grad_sq_pred),
        "-",
        color="k",
        lw=1.2,
        label="mean field (anchored at the output)",
    )
    ax_g.set_yscale("log")
    ax_g.set_ylabel("|dL/dh|^2 at the stream (random read-out)")
    ax_g.set_title("gradient along the stream")
    for ax in (ax_q, ax_c, ax_g):
        ax.set_xlabel("residual block l (0 = stream entering block 1)")
        ax.legend(fontsize=7)
    with np.errstate(invalid="ignore", divide="ignore"):
        measured = res.grad_sq[0] / res.grad_sq
    ax_growth.plot(sites[1:], _positive(measured[1:]), "o", ms=3, color="tab:red", label="measured")
    if res.cumulative_pred is not None:
        depth = np.arange(1, len(res.cumulative_pred))
        ax_growth.plot(depth, _positive(res.cumulative_pred[1:]), "-", color="k", lw=1.2, label="mean field")
        ax_growth.set_xscale("log")
    for factor, style in ((10, "--"), (100, ":")):
        ax_growth.axhline(factor, ls=style, color="0.4", lw=1, label=f"{factor}x")
    ax_growth.axvline(res.blocks, color="tab:green", lw=1, label=f"model depth ({res.blocks} blocks)")
    ax_growth.set_yscale("log")
    ax_growth.set_xlabel("number of blocks L (past the model: copies of its last block)")
    ax_growth.set_ylabel("growth |g_0|^2 / |g_L|^2")
    ax_growth.set_title("cumulative gradient growth")
    ax_growth.legend(fontsize=7)
    fig.suptitle(
        title
        or f"residual stack: {res.verdict} (growth {res.growth:.3g} measured, {res.growth_pred:.3g} mean "
        f"field; target {res.growth_target:g}); block {res.block}"
    )
    fig.tight_layout()
    if path is not None:
        save_figure(fig, Path(path), close=False)
    return fig


def plot_report(report: ReportView, path: str | Path | None = None, title: str | None = None) -> Any:
    """Draw the four panels (the residual figure for a residual stack); write a PNG to ``path`` if given;
    return the Figure."""
    if getattr(report, "residual", None) is not None:
        return plot_residual(report, path, title)
    depth = np.arange(1, len(report.layers) + 1)
    pred = report.predicted
    fig, axes = new_figure(2, 2, figsize=(12, 8))
    ax_q, ax_c, ax_g, ax_chi = axes.ravel()

    ax_q.plot(depth, _positive(report.q), "o", ms=3, color="tab:blue", label="measured")
    _theory_line(ax_q, depth, _positive(pred.q), report.segments, "mean field")
    if pred.theory is not None and np.isfinite(pred.theory.q_star) and pred.theory.q_star > 0:
        ax_q.axhline(pred.theory.q_star, ls=":", color="tab:green", label=f"q* = {pred.theory.q_star:.3g}")
    ax_q.set_yscale("log")
    ax_q.set_xlabel("layer l")
    ax_q.set_ylabel("q^l: mean squared pre-activation")
    ax_q.set_title("length")

    ax_c.plot(depth, report.c, "o", ms=3, color="tab:orange", label="measured")
    _theory_line(ax_c, depth, pred.c, report.segments, "mean field")
    if pred.theory is not None and np.isfinite(pred.theory.c_star):
        ax_c.axhline(pred.theory.c_star, ls=":", color="tab:green", label=f"c* = {pred.theory.c_star:.3g}")
    ax_c.set_xlabel("layer l")
    ax_c.set_ylabel("c^l: correlation of two inputs")
    ax_c.set_ylim(
        min(-0.05, float(np.nanmin(report.c)) - 0.05) if np.any(np.isfinite(report.c)) else -0.05, 1.05
    )
    ax_c.set_title("correlation")

    ax_g.plot(depth, _positive(report.grad_sq), "o", ms=3, color="tab:red", label="|dL/dh^l|^2 measured")
    _theory_line(ax_g, depth, _positive(pred.grad_sq), report.segments, "|dL/dh^l|^2 mean field")
    ax_g.plot(
        depth,
        _positive(report.grad_norms) ** 2,
        "s",
        ms=2.5,
        color="tab:purple",
        alpha=0.7,
        label="|dL/dW^l|^2 measured",
    )
    ax_g.set_yscale("log")
    ax_g.set_xlabel("layer l")
    ax_g.set_ylabel("squared gradient norm (random read-out)")
    ax_g.set_title("gradients")

    links = np.arange(1, len(report.chi_1) + 1)
    ax_chi.plot(links, report.chi_1, "o", ms=3, color="tab:cyan", label="measured |g^l|^2 / |g^(l+1)|^2")
    link_spans = [(start, stop - 1) for start, stop in report.segments if stop > start]
    _theory_line(ax_chi, links, pred.chi_1, link_spans, "mean field sigma_w2 E[phi'^2]")
    ax_chi.axhline(1.0, ls="--", color="0.4", lw=1, label="critical chi = 1")
    if np.isfinite(report.chi_1_bulk):
        ax_chi.axhline(
            report.chi_1_bulk, ls=":", color="tab:cyan", label=f"bulk chi = {report.chi_1_bulk:.3g}"
        )
    ax_chi.set_xlabel("link l -> l+1")
    ax_chi.set_ylabel("chi^l: gradient growth per layer")
    ax_chi.set_title("gradient growth")

    for ax in (ax_q, ax_c, ax_g, ax_chi):
        _shade_breaks(ax, report)
        ax.legend(fontsize=7)
    covered = f"{report.covered_links}/{len(report.links)} links covered by the theory"
    verdict = report.phase if report.phase is not None else "no verdict (theory does not apply)"
    fig.suptitle(title or f"signal propagation: {verdict}; measured chi = {report.chi_1_bulk:.4g}; {covered}")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, Path(path), close=False)
    return fig
