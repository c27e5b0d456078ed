"""The report of :func:`dltheory.diagnose`: what was measured, what mean-field theory predicts,
the verdict and the recommended initialisation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dltheory.core.activations import Activation
from dltheory.nn.diagnose._adapters import apply_critical, rescale_layers
from dltheory.signalprop.summary import FixedPointSummary


@dataclass(frozen=True)
class LayerInfo:
    """One layer (execution of an ``nn.Linear`` / ``nn.Conv*d``) as the report sees it. ``activation`` is
    the activation that feeds the next layer (None where the link is not covered or for the last layer)."""

    index: int
    name: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    sigma_w2: float
    sigma_b2: float
    activation: str | None
    segment: int


@dataclass(frozen=True)
class Recommendation:
    """What to change, and how: ``kind="critical_init"`` re-initialises a vanilla network at a critical
    point (chi_1 = 1; Schoenholz et al. 2017, eq. 5) with ``sigma_w2``, ``sigma_b2`` and the weight scheme
    (the :func:`dltheory.nn.init.critical_init_` call); ``kind="branch_scale"`` multiplies every residual
    branch by ``branch_multiplier`` (the last layer of each branch gets weight variance ``targets[name][0]``
    and bias variance ``targets[name][1]``), which brings the predicted end-to-end growth of the squared
    gradient to ``predicted_growth`` (Yang & Schoenholz 2017: the branch scale sets the growth)."""

    activation: Activation
    sigma_w2: float
    sigma_b2: float
    weights: str
    q_star: float
    call: str
    note: str
    kind: str = "critical_init"
    branch_multiplier: float | None = None
    targets: dict[str, tuple[float, float]] = field(default_factory=dict)
    predicted_growth: float | None = None

    def apply(self, model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
        """Carry out the recommendation on ``model`` in place and return it.

        ``critical_init``: every ``nn.Linear`` / ``nn.Conv*d`` through ``critical_init_`` (a fused
        VanillaCNN through its own ``reset_parameters``). ``branch_scale``: the last layer of every residual
        branch (by module name) is rescaled to its target variances; applying it twice changes nothing, and
        it applies to a freshly initialised copy of the same architecture too.
        """
        if self.kind == "branch_scale":
            return rescale_layers(model, self.targets)
        return apply_critical(model, self.activation, self.sigma_w2, self.sigma_b2, self.weights, generator)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "activation": self.activation.name,
            "activation_params": dict(self.activation.params),
            "sigma_w2": self.sigma_w2,
            "sigma_b2": self.sigma_b2,
            "weights": self.weights,
            "q_star": self.q_star,
            "branch_multiplier": self.branch_multiplier,
            "targets": {name: list(value) for name, value in self.targets.items()},
            "predicted_growth": self.predicted_growth,
            "call": self.call,
            "note": self.note,
        }


@dataclass
class ResidualDiagnosis:
    """The residual stack of a model (:func:`dltheory.signalprop.stack.find_blocks`), measured and
    predicted at the stream entering the first block and leaving every block (``sites``).

    Attributes:
        blocks: number of residual blocks.
        sites: graph node names of the stream sites (``blocks + 1`` of them).
        q, q_pred, c, c_pred: stream second moment and pair correlation, measured and mean-field.
        grad_sq, grad_sq_pred: squared gradient norm at the sites (the prediction anchored at the output).
        growth, growth_pred: end-to-end growth ``|g_first site|^2 / |g_last site|^2``.
        growth_target: growth up to which the verdict is "stable" (and down to whose inverse).
        verdict: ``"stable"``, ``"exploding"`` (growth > target) or ``"vanishing"`` (growth < 1 / target).
        cumulative_pred: predicted growth of the first L blocks, L = 0..len - 1 (past the model's depth: more
            copies of its last block).
        depth_10x, depth_100x: predicted number of such blocks at which the growth first exceeds 10 / 100
            (None: not within the horizon ``len(cumulative_pred) - 1``).
        block: description of the branch, e.g. ``"norm -> dense -> act(gelu) -> dense"``; None when the
            blocks differ or an operation has no block-level form.
    """

    blocks: int
    sites: list[str]
    q: np.ndarray
    q_pred: np.ndarray
    c: np.ndarray
    c_pred: np.ndarray
    grad_sq: np.ndarray
    grad_sq_pred: np.ndarray
    growth: float
    growth_pred: float
    growth_target: float
    verdict: str
    cumulative_pred: np.ndarray | None
    depth_10x: int | None
    depth_100x: int | None
    block: str | None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = value.tolist() if isinstance(value, np.ndarray) else value
        return out


@dataclass(frozen=True)
class JacobianStats:
    """Input-output Jacobian statistics. ``mean_sq`` = mean of the squared singular values over the
    ``min(n_in, n_out)`` of them, averaged over the batch (one Gaussian probe per input), with its standard
    error; ``predicted_mean_sq`` the mean-field value ``sigma_w2^1 prod_l chi^l`` (only when one covered
    run spans the whole model); ``singular_values`` / ``second_moment`` from ``jacobian="spectrum"``."""

    mean_sq: float
    mean_sq_stderr: float
    n_in: int
    n_out: int
    predicted_mean_sq: float | None = None
    singular_values: list[float] | None = None
    second_moment: float | None = None


@dataclass
class Predicted:
    """Mean-field curves on the layers the theory covers (NaN elsewhere): ``q``, ``c``, ``chi_1`` (per
    link), ``grad_sq`` (|g^l|^2, anchored at the last layer of each covered run), and ``theory`` (the fixed
    point at the bulk parameters of the longest covered run)."""

    q: np.ndarray
    c: np.ndarray
    chi_1: np.ndarray
    grad_sq: np.ndarray
    theory: FixedPointSummary | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "q": self.q.tolist(),
            "c": self.c.tolist(),
            "chi_1": self.chi_1.tolist(),
            "grad_sq": self.grad_sq.tolist(),
            "theory": None if self.theory is None else self.theory.__dict__,
        }


@dataclass
class DiagnosisReport:
    """What :func:`diagnose` measured and predicted; see the module docstring. Arrays run over layers
    (``q``, ``c``, ``grad_norms``, ``grad_sq``) or over links between consecutive layers (``chi_1``)."""

    layers: list[LayerInfo]
    q: np.ndarray
    q_stderr: np.ndarray
    c: np.ndarray
    c_stderr: np.ndarray
    grad_norms: np.ndarray
    grad_sq: np.ndarray
    chi_1: np.ndarray
    input_q: float
    input_c: float
    links: list[dict[str, Any]]
    segments: list[tuple[int, int]]
    main_segment: tuple[int, int] | None
    chi_1_bulk: float
    gradient_growth: float
    phase: str | None
    depth_scale: float
    predicted: Predicted
    recommendation: Recommendation | None
    jacobian: JacobianStats | None
    notes: list[str] = field(default_factory=list)
    critical_tol: float = 0.05
    residual: ResidualDiagnosis | None = None
    mode: str = "chain"
    #: wall-clock seconds of the diagnosis' phases: ``trace`` (unrolling fused stacks, torch.fx tracing),
    #: ``forward`` and ``backward`` (the recorded passes), ``theory`` (predictions, verdict, recommendation,
    #: the Jacobian spectrum if asked for) and ``total``
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def covered_links(self) -> int:
        return sum(1 for link in self.links if link["covered"])

    @property
    def theory_applies(self) -> bool:
        return self.phase is not None

    def plot(self, path: str | Path | None = None) -> Any:
        """Figure of q^l, c^l, gradient norms and chi per link vs depth, measured vs predicted; written
        as PNG to ``path`` if given. Returns the matplotlib Figure."""
        from dltheory.nn.diagnose._plot import plot_report

        return plot_report(self, path)

    def summary(self) -> dict[str, Any]:
        """The headline numbers (for tables and logs)."""
        theory = self.predicted.theory
        return {
            "layers": len(self.layers),
            "links_covered": f"{self.covered_links} / {len(self.links)}",
            "phase": self.phase,
            "chi_1_measured": self.chi_1_bulk,
            "chi_1_predicted": None if theory is None else theory.chi_1,
            "gradient_growth_per_layer": self.gradient_growth,
            "depth_scale": self.depth_scale,
            "q_star_predicted": None if theory is None else theory.q_star,
            "xi_c_predicted": None if theory is None else theory.xi_c,
            "jacobian_mean_sq": None if self.jacobian is None else self.jacobian.mean_sq,
            "recommendation": None if self.recommendation is None else self.recommendation.call,
            **self._residual_summary(),
        }

    def _residual_summary(self) -> dict[str, Any]:
        if self.residual is None:
            return {}
        r = self.residual
        return {
            "residual_blocks": r.blocks,
            "gradient_growth_measured": r.growth,
            "gradient_growth_predicted": r.growth_pred,
            "blocks_to_10x_predicted": r.depth_10x,
            "blocks_to_100x_predicted": r.depth_100x,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-able Python objects (non-finite floats stay floats; use
        :func:`dltheory.core.io.to_json` to write standard JSON)."""
        return {
            "summary": self.summary(),
            "layers": [layer.__dict__ for layer in self.layers],
            "q": self.q.tolist(),
            "q_stderr": self.q_stderr.tolist(),
            "c": self.c.tolist(),
            "c_stderr": self.c_stderr.tolist(),
            "grad_norms": self.grad_norms.tolist(),
            "grad_sq": self.grad_sq.tolist(),
            "chi_1": self.chi_1.tolist(),
            "input_q": self.input_q,
            "input_c": self.input_c,
            "links": self.links,
            "segments": [list(s) for s in self.segments],
            "main_segment": None if self.main_segment is None else list(self.main_segment),
            "chi_1_bulk": self.chi_1_bulk,
            "gradient_growth": self.gradient_growth,
            "phase": self.phase,
            "depth_scale": self.depth_scale,
            "critical_tol": self.critical_tol,
            "predicted": self.predicted.to_dict(),
            "recommendation": None if self.recommendation is None else self.recommendation.to_dict(),
            "jacobian": None if self.jacobian is None else self.jacobian.__dict__,
            "notes": list(self.notes),
            "mode": self.mode,
            "residual": None if self.residual is None else self.residual.to_dict(),
            "timings": dict(self.timings),
        }
