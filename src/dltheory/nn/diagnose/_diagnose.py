"""The entry point :func:`diagnose`: run the model once forward and backward with hooks, predict with
mean-field theory, judge and recommend (see :mod:`dltheory.nn.diagnose` for what is measured)."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from dltheory.core.activations import Activation
from dltheory.core.validation import check_int, check_positive
from dltheory.nn.diagnose._adapters import is_fused, recommendation_call, unrolled
from dltheory.nn.diagnose._graph import GraphRecorder, TracedModel, has_structure, trace
from dltheory.nn.diagnose._report import (
    DiagnosisReport,
    JacobianStats,
    LayerInfo,
    Predicted,
    Recommendation,
)
from dltheory.nn.diagnose._structured import fill_from_graph, predict_structured
from dltheory.nn.diagnose._theory import clear_cache, layer_params, predict_segment
from dltheory.nn.diagnose._trace import (
    LAYER_TYPES,
    NORM_TYPES,
    LayerTrace,
    Link,
    Recorder,
    analyse_links,
    subsample,
)
from dltheory.nn.diagnose._trace import skip_connections as find_skip_connections
from dltheory.signalprop.layerwise import ChainLayer, segments
from dltheory.signalprop.meanfield import critical_sigma_w2, fixed_point
from dltheory.signalprop.phases import classify_phase
from dltheory.signalprop.summary import FixedPointSummary, critical_parameters, fixed_point_summary

__all__ = ["DiagnoseError", "diagnose"]

JACOBIAN_MODES = (True, False, "moments", "spectrum")
DEFAULT_PAIRS = 16
#: a layer belongs to the bulk of a run when its sigma_w2 is within this factor of the run's median
BULK_SIGMA_W2_RATIO = 1.25
#: links whose measured q^l is within this relative distance of q* count as settled at the fixed point
SETTLED_Q = 0.1
#: squared gradient norms below this are treated as underflowed (float32 squares of ~1e-30)
_GRAD_FLOOR = 1e-60


class DiagnoseError(ValueError):
    """The model could not be run on the inputs (it raised, or returned something that is not a batch)."""


@dataclass(frozen=True)
class _Options:
    pair_a: np.ndarray
    pair_b: np.ndarray
    jacobian: bool | str
    jacobian_k: int
    critical_tol: float
    seed: int
    growth_target: float = 10.0
    strict: bool = False


@dataclass
class _Measurement:
    """The raw outcome of the forward and backward pass."""

    recorder: Recorder
    output: torch.Tensor
    weight_norms: dict[nn.Module, float]
    jacobian: JacobianStats | None
    notes: list[str] = field(default_factory=list)
    graph: GraphRecorder | None = None
    seconds: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------ validation


def _check_inputs(model: nn.Module, inputs: Any) -> torch.Tensor:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(inputs)
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a torch.Tensor (a batch of inputs), got {type(inputs).__name__}")
    if inputs.dim() < 2 or inputs.shape[0] < 2:
        raise ValueError(
            f"inputs must be a batch of at least 2 inputs with a leading batch dimension, got shape "
            f"{tuple(inputs.shape)}"
        )
    if inputs.is_floating_point() and not bool(torch.isfinite(inputs).all()):
        bad = int((~torch.isfinite(inputs)).sum())
        raise ValueError(f"inputs must be finite, got {bad} non-finite values")
    return inputs


def _pairs(pairs: int | Sequence[tuple[int, int]] | None, batch: int) -> tuple[np.ndarray, np.ndarray]:
    if pairs is None:
        pairs = min(DEFAULT_PAIRS, batch // 2)
    if isinstance(pairs, int | np.integer) and not isinstance(pairs, bool):
        count = check_int("pairs", pairs, minimum=1)
        if 2 * count > batch:
            raise ValueError(
                f"pairs={count} disjoint pairs need at least {2 * count} inputs, got a batch of {batch}"
            )
        idx = np.arange(2 * count)
        return idx[0::2], idx[1::2]
    try:
        array = np.asarray(pairs, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"pairs must be an int or a sequence of (i, j) index pairs, got {pairs!r}") from exc
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0:
        raise ValueError(f"pairs must be an int or a non-empty sequence of (i, j) index pairs, got {pairs!r}")
    if np.any(array < 0) or np.any(array >= batch) or np.any(array[:, 0] == array[:, 1]):
        raise ValueError(
            f"pairs must index two different inputs of the batch (0 <= i != j < {batch}), got {pairs!r}"
        )
    return array[:, 0], array[:, 1]


# ------------------------------------------------------------------------------------ running


def _forward(model: nn.Module, x: torch.Tensor, graph: GraphRecorder | None = None) -> torch.Tensor:
    try:
        out = graph.run(x) if graph is not None else model(x)
    except Exception as exc:
        raise DiagnoseError(
            f"model {type(model).__name__} raised {type(exc).__name__} on inputs of shape {tuple(x.shape)} "
            f"(dtype {x.dtype}): {exc}. Check that the inputs have the shape and dtype the model expects "
            "(batch dimension first)."
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise DiagnoseError(
            f"model {type(model).__name__} returned {type(out).__name__}; diagnose needs a model that "
            "returns one tensor (wrap it to select the output)"
        )
    if out.dim() == 0 or out.shape[0] != x.shape[0]:
        raise DiagnoseError(
            f"model {type(model).__name__} returned shape {tuple(out.shape)} for a batch of {x.shape[0]} "
            "inputs; diagnose needs the batch dimension first in the output"
        )
    return out


def _measure(
    model: nn.Module, x: torch.Tensor, options: _Options, graph_module: TracedModel | None = None
) -> _Measurement:
    """Forward with hooks (and, given a graph module, through its graph with every node recorded), then
    the backward pass of the random read-out ``sum_b <f(x_b), v_b>``."""
    pair_a, pair_b = torch.from_numpy(options.pair_a), torch.from_numpy(options.pair_b)
    recorder = Recorder(model, x.shape[0], pair_a, pair_b, light=graph_module is not None)
    differentiable = x.is_floating_point()  # integer inputs (token ids) have no input-output Jacobian
    graph = (
        GraphRecorder(graph_module, x.shape[0], pair_a, pair_b, weight_grads=differentiable)
        if graph_module is not None
        else None
    )
    x = x.detach().clone()
    if differentiable:
        x.requires_grad_(True)
    start = time.perf_counter()
    with recorder, torch.enable_grad():
        out = _forward(model, x, graph)
        measurement = _Measurement(recorder, out.detach(), {}, None, graph=graph)
        measurement.seconds["forward"] = time.perf_counter() - start
        start = time.perf_counter()
        modules = list(dict.fromkeys(t.module for t in recorder.layers))
        trainable = [m for m in modules if m.weight.requires_grad]
        if len(trainable) < len(modules):
            measurement.notes.append(
                f"{len(modules) - len(trainable)} layer weight(s) do not require grad: their gradient norm "
                "is not measured"
            )
        # in graph mode the hooks on single-call Linear outputs give their weight-gradient norms: the backward
        # pass to the input then does not form (and hold) those weight gradients
        from_hooks = graph.weight_grads if graph is not None else {}
        weights: list[torch.Tensor] = [m.weight for m in trainable if m not in from_hooks]  # type: ignore[misc]
        if not out.requires_grad:
            measurement.notes.append("the model output does not depend on its inputs through autograd")
            return measurement
        generator = torch.Generator().manual_seed(options.seed)
        direction = torch.randn(out.shape, generator=generator, dtype=torch.float64).to(out.dtype)
        try:
            wrt = [x, *weights] if differentiable else weights
            grads = torch.autograd.grad((out * direction).sum(), wrt, allow_unused=True)
        except RuntimeError as exc:
            measurement.notes.append(f"the backward pass failed ({exc}): gradients not measured")
            return measurement
    weight_grads = grads[1:] if differentiable else grads
    by_weight = {id(w): g for w, g in zip(weights, weight_grads, strict=True)}
    for m in modules:
        if m in from_hooks:
            norm = from_hooks[m].weight_grad_norm
            measurement.weight_norms[m] = float("nan") if norm is None else norm
            continue
        g = by_weight.get(id(m.weight))
        measurement.weight_norms[m] = (
            float(torch.linalg.vector_norm(g, dtype=torch.float64)) if g is not None else float("nan")
        )
    if differentiable and grads[0] is not None:
        measurement.jacobian = _jacobian_mean(grads[0], x, out)
    measurement.seconds["backward"] = time.perf_counter() - start
    return measurement


def _jacobian_mean(grad_x: torch.Tensor, x: torch.Tensor, out: torch.Tensor) -> JacobianStats:
    """mean(s^2) over the min(n_in, n_out) singular values: ``E|J_b^T v_b|^2 = tr(J_b J_b^T)`` per input."""
    batch = x.shape[0]
    n_in, n_out = x[0].numel(), out[0].numel()
    s = grad_x.detach().reshape(batch, -1).to(torch.float64).square().sum(dim=1).cpu().numpy()
    per_input = s / min(n_in, n_out)
    return JacobianStats(
        mean_sq=float(per_input.mean()),
        mean_sq_stderr=float(per_input.std(ddof=1) / np.sqrt(batch)),
        n_in=n_in,
        n_out=n_out,
    )


def _spectrum(model: nn.Module, x: torch.Tensor, k: int, seed: int, stats: JacobianStats) -> JacobianStats:
    """Add the extreme singular values and mean(s^4) of the first input's Jacobian."""
    from dltheory.nn.jacobian import jacobian_moments, jacobian_singular_values

    generator = torch.Generator().manual_seed(seed)
    values = jacobian_singular_values(model, x[:1].detach(), k, which="both", generator=generator)
    moments = jacobian_moments(model, x[:1].detach(), generator=generator)
    return JacobianStats(
        stats.mean_sq,
        stats.mean_sq_stderr,
        stats.n_in,
        stats.n_out,
        stats.predicted_mean_sq,
        [float(v) for v in values],
        moments.second_moment,
    )


# ------------------------------------------------------------------------------------ analysis


def _stderr(samples: np.ndarray) -> float:
    finite = samples[np.isfinite(samples)]
    if finite.size < 2:
        return float("nan")
    return float(finite.std(ddof=1) / np.sqrt(finite.size))


def _link_chi(grad_sq: np.ndarray) -> np.ndarray:
    """Measured gradient growth per link, NaN where a squared norm is zero, underflowed or not finite."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = grad_sq[:-1] / grad_sq[1:]
    usable = (grad_sq[:-1] > _GRAD_FLOOR) & (grad_sq[1:] > _GRAD_FLOOR)
    usable &= np.isfinite(grad_sq[:-1]) & np.isfinite(grad_sq[1:])
    return np.where(usable, ratio, np.nan)


def _geometric_mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values) & (values > 0)]
    return float(np.exp(np.mean(np.log(finite)))) if finite.size else float("nan")


def _bulk_links(
    span: tuple[int, int], params: list[ChainLayer], links: list[Link]
) -> tuple[list[int], Activation, float, float]:
    """Links of a covered run whose target layer has the run's typical sigma_w2 and activation (this leaves
    out a read-out or an input layer initialised differently); returns them with the bulk activation and the
    median sigma_w2 and sigma_b2."""
    inner = list(range(span[0], span[1]))
    activations = [links[i].activation for i in inner]
    names = [a.name for a in activations if a is not None]
    dominant = max(set(names), key=names.count)
    activation = next(a for a in activations if a is not None and a.name == dominant)
    sw2 = float(np.median([params[i + 1].sigma_w2 for i in inner]))
    sb2 = float(np.median([params[i + 1].sigma_b2 for i in inner]))
    bulk = [
        i
        for i, a in zip(inner, activations, strict=True)
        if a is not None
        and a.name == dominant
        and sw2 / BULK_SIGMA_W2_RATIO <= params[i + 1].sigma_w2 <= sw2 * BULK_SIGMA_W2_RATIO
    ]
    return bulk, activation, sw2, sb2


def _settled(bulk: list[int], q: np.ndarray, theory: FixedPointSummary) -> list[int]:
    """The bulk links whose q^l is within :data:`SETTLED_Q` of q* (the gradient growth there is chi_1), or,
    when fewer than two are, the deeper half of the bulk links (q^l approaches q* with depth scale xi_q)."""
    if theory.bounded and theory.q_star > 0:
        settled = [i for i in bulk if abs(q[i] / theory.q_star - 1.0) <= SETTLED_Q]
        if len(settled) >= 2:
            return settled
    return bulk[len(bulk) // 2 :]


def _recommend(
    model: nn.Module, activation: Activation, sigma_b2: float, has_conv: bool, measured: float
) -> Recommendation | None:
    point = critical_parameters(activation, sigma_b2)
    if point is None:
        return None
    sw2, sb2 = point
    weights = "delta_orthogonal" if has_conv else "orthogonal"
    q_star = float(fixed_point(activation, sw2, sb2, diverged="inf").q_star)
    spec = repr(activation.name)
    if activation.params:
        args = ", ".join(f"{k}={v:.6g}" for k, v in activation.params.items())
        spec = f"get_activation({activation.name!r}, {args})"
    note = (
        f"sigma_w2 = {sw2:.6g}, sigma_b2 = {sb2:.6g} puts {activation.name} at chi_1 = 1 with q* = "
        f"{q_star:.4g} (the model measured chi = {measured:.4g}). With orthogonal weights ({weights}) a "
        "small q* also concentrates the Jacobian spectrum (dynamical isometry; Pennington et al. 2017, Xiao "
        "et al. 2018); weights='gaussian' reaches the same chi_1 with i.i.d. weights."
    )
    if sb2 != sigma_b2 and sigma_b2 > 0:
        try:
            keep = float(critical_sigma_w2(activation, sigma_b2))
            note += f" Keeping the model's sigma_b2 = {sigma_b2:.4g}, the critical sigma_w2 is {keep:.6g}."
        except ValueError:
            pass
    call = recommendation_call(model, spec, sw2, sb2, weights)
    return Recommendation(activation, sw2, sb2, weights, q_star, call, note)


def _link_notes(links: list[Link], examples: int = 2) -> list[str]:
    """One note per kind of uncovered link: how many, and the first few reasons."""
    by_kind: dict[str, list[Link]] = {}
    for link in links:
        if not link.covered:
            by_kind.setdefault(link.kind, []).append(link)
    notes = []
    for kind, group in by_kind.items():
        shown = "; ".join(link.reason for link in group[:examples])
        more = f"; and {len(group) - examples} more (see report.links)" if len(group) > examples else ""
        notes.append(f"{len(group)} link(s) not covered ({kind}): {shown}{more}")
    return notes


def _params_outside_layers(model: nn.Module, traces: list[LayerTrace]) -> list[str]:
    seen = {id(p) for t in traces for p in t.module.parameters()}
    for module in model.modules():
        if isinstance(module, NORM_TYPES + LAYER_TYPES):
            seen.update(id(p) for p in module.parameters())
    return [f"{name} {tuple(p.shape)}" for name, p in model.named_parameters() if id(p) not in seen]


def _structure_notes(skips: list[str] | None, outside: list[str], graph_mode: bool) -> list[str]:
    notes = []
    if graph_mode:
        notes.append("followed along the torch.fx graph (skip connections and normalisers covered)")
    elif skips:
        shown = ", ".join(skips[:8]) + (", ..." if len(skips) > 8 else "")
        notes.append(f"torch.fx found skip connections ({shown}): the mean-field chain does not cover them")
    elif skips is None:
        notes.append("the model could not be traced with torch.fx: links were checked from the tensors only")
    if outside:
        notes.append(
            "parameters used outside nn.Linear / nn.Conv*d modules are not diagnosed: "
            + ", ".join(outside[:8])
        )
    return notes


def _input_stats(first: LayerTrace, pair_a: np.ndarray, pair_b: np.ndarray) -> tuple[float, float]:
    """q and c of the inputs of the first layer (channel means, summed over positions)."""
    sums_d = first.input_q_map.reshape(first.input_q_map.shape[0], -1).sum(axis=1)
    sums_x = first.input_pair_map.reshape(first.input_pair_map.shape[0], -1).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = float(np.nanmean(sums_x / np.sqrt(sums_d[pair_a] * sums_d[pair_b])))
    return float(np.mean(first.input_q_map)), c


@dataclass
class _Curves:
    q: np.ndarray
    c: np.ndarray
    chi: np.ndarray
    grad_sq: np.ndarray
    chi_product: float | None


def _predict(
    traces: list[LayerTrace],
    params: list[ChainLayer],
    links: list[Link],
    spans: list[tuple[int, int]],
    grad_sq: np.ndarray,
    options: _Options,
    notes: list[str],
) -> _Curves:
    """Mean-field curves over every covered run; |g^l|^2 anchored at the measured value at each run's end."""
    n = len(traces)
    curves = _Curves(np.full(n, np.nan), np.full(n, np.nan), np.full(n - 1, np.nan), np.full(n, np.nan), None)
    for start, stop in spans:
        seg = predict_segment(traces, params, links, (start, stop), options.pair_a, options.pair_b)
        curves.q[start : stop + 1], curves.c[start : stop + 1] = seg.q, seg.c
        curves.chi[start:stop] = seg.chi
        if seg.approximated:
            notes.append(
                f"layers {start}-{stop}: the correlation map of a kinked activation was evaluated at each "
                "pair's spatial mean statistics (2-D quadrature per position would be too slow)"
            )
        if seg.stopped is not None:
            notes.append(
                f"mean-field prediction stopped at {traces[start + seg.stopped].name}: the predicted "
                "variance is not finite"
            )
        if np.isfinite(grad_sq[stop]):
            growth = np.cumprod(np.concatenate([[1.0], seg.chi[::-1]]))[::-1]
            curves.grad_sq[start : stop + 1] = grad_sq[stop] * growth
        if len(spans) == 1 and np.all(np.isfinite(seg.chi)):
            curves.chi_product = float(np.prod(seg.chi))
    return curves


def _verdict(
    model: nn.Module,
    traces: list[LayerTrace],
    params: list[ChainLayer],
    links: list[Link],
    spans: list[tuple[int, int]],
    q: np.ndarray,
    chi: np.ndarray,
    tol: float,
    notes: list[str],
) -> tuple[tuple[int, int] | None, FixedPointSummary | None, str | None, float, Recommendation | None]:
    """The longest covered run of >= 2 links, its theory, the measured verdict and the recommendation."""
    main = max((s for s in spans if s[1] - s[0] >= 2), key=lambda s: s[1] - s[0], default=None)
    if main is None:
        notes.append(
            "the mean-field theory of vanilla networks covers no run of at least 3 layers joined by known "
            "activations: no phase verdict (report.links says what it does not cover)"
        )
        return None, None, None, float("nan"), None
    bulk, activation, sw2, sb2 = _bulk_links(main, params, links)
    theory = fixed_point_summary(activation, sw2, sb2, tol)
    chi_bulk = _geometric_mean(chi[_settled(bulk, q, theory)])
    if np.isfinite(chi_bulk):
        phase = str(classify_phase(chi_bulk, tol))
    else:
        phase = theory.phase if theory.phase != "unbounded" else "chaotic"
        notes.append("gradients could not be measured on the covered layers: the verdict is the theory's")
    if theory.phase != phase:
        notes.append(
            f"measured chi = {chi_bulk:.4g} ({phase}) but the fixed point at the bulk sigma_w2 = {sw2:.4g}, "
            f"sigma_b2 = {sb2:.4g} predicts chi_1 = {theory.chi_1:.4g} ({theory.phase}): finite width, or "
            "a network too shallow for q^l to reach q*"
        )
    has_conv = any(not isinstance(t.module, nn.Linear) for t in traces)
    return main, theory, phase, chi_bulk, _recommend(model, activation, sb2, has_conv, chi_bulk)


def _report(
    model: nn.Module,
    traced: nn.Module,
    x: torch.Tensor,
    run: _Measurement,
    skips: list[str] | None,
    options: _Options,
) -> DiagnosisReport:
    traces, notes = run.recorder.layers, run.notes
    n = len(traces)
    graph_run = run.graph is not None and run.graph.output_index is not None
    if run.graph is not None:
        fill_from_graph(traces, run.graph.records)
    links = [] if graph_run else analyse_links(traces, run.recorder.leaves)
    params = [layer_params(t) for t in traces]
    spans = segments([link.covered for link in links], n) if not graph_run else [(0, n - 1)]

    q = np.array([float(np.mean(t.q_samples)) for t in traces])
    c = np.array([float(np.nanmean(t.c_pairs)) if np.any(np.isfinite(t.c_pairs)) else np.nan for t in traces])
    grad_sq = np.array([float(np.mean(t.grad_sq)) if t.grad_sq is not None else np.nan for t in traces])
    chi = _link_chi(grad_sq)
    link_dicts: list[dict[str, Any]] = [
        {"from": k.index, "covered": k.covered, "kind": k.kind, "reason": k.reason, "between": k.between}
        for k in links
    ]
    phase: str | None
    feeds: list[str | None] = [None if k.activation is None else k.activation.name for k in links]
    residual = None
    graph = run.graph
    if graph is not None and graph.output_index is not None:
        structured = predict_structured(
            traces, graph.records, graph.output_index, options.pair_a, options.pair_b, options.growth_target
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            chi_pred = structured.grad_sq[:-1] / structured.grad_sq[1:]
        curves = _Curves(structured.q, structured.c, chi_pred, structured.grad_sq, None)
        link_dicts = structured.links
        feeds = [link.get("activation") for link in link_dicts]
        spans = segments([bool(link["covered"]) for link in link_dicts], n)
        main = max((sp for sp in spans if sp[1] - sp[0] >= 2), key=lambda sp: sp[1] - sp[0], default=None)
        theory, residual, recommendation = None, structured.residual, structured.recommendation
        if residual is not None:
            phase = residual.verdict
            chi_bulk = (
                float(residual.growth ** (1.0 / residual.blocks)) if residual.growth > 0 else float("nan")
            )
        else:
            covered = [i for i, link in enumerate(link_dicts) if link["covered"]]
            chi_bulk = _geometric_mean(chi[covered]) if covered else float("nan")
            phase = str(classify_phase(chi_bulk, options.critical_tol)) if len(covered) >= 2 else None
        notes.extend(structured.notes)
        if structured.uncovered:
            shown = "; ".join(structured.uncovered[:3])
            more = f"; and {len(structured.uncovered) - 3} more" if len(structured.uncovered) > 3 else ""
            notes.append(f"{len(structured.uncovered)} graph operation(s) not covered: {shown}{more}")
        if options.strict and structured.uncovered:
            raise DiagnoseError(
                "strict=True: the mean-field rules do not cover " + "; ".join(structured.uncovered)
            )
    else:
        curves = _predict(traces, params, links, spans, grad_sq, options, notes)
        main, theory, phase, chi_bulk, recommendation = _verdict(
            model, traces, params, links, spans, q, chi, options.critical_tol, notes
        )
        if options.strict and any(not k.covered for k in links):
            raise DiagnoseError(
                "strict=True: the mean-field chain does not cover "
                + "; ".join(k.reason for k in links if not k.covered)
            )
    gradient_growth = _geometric_mean(chi)
    depth_scale = float(1.0 / abs(np.log(chi_bulk if np.isfinite(chi_bulk) else gradient_growth)))

    jacobian = run.jacobian
    if (
        jacobian is not None
        and curves.chi_product is not None
        and traces[-1].output_numel == run.output.numel()
    ):
        if torch.allclose(traces[-1].output_sub, subsample(run.output), rtol=1e-5, atol=1e-7, equal_nan=True):
            scale = jacobian.n_out / min(jacobian.n_in, jacobian.n_out)
            predicted = params[0].sigma_w2 * curves.chi_product * scale
            jacobian = JacobianStats(
                jacobian.mean_sq, jacobian.mean_sq_stderr, jacobian.n_in, jacobian.n_out, predicted
            )
    if jacobian is not None and options.jacobian == "spectrum":
        jacobian = _spectrum(traced, x, options.jacobian_k, options.seed, jacobian)
    if options.jacobian is False:
        jacobian = None

    overflow = np.nonzero(~np.isfinite(q))[0]
    if overflow.size:
        notes.append(
            f"pre-activations are not finite from layer {traces[overflow[0]].label} on (overflow in "
            f"{run.output.dtype}): measurements there are inf / NaN"
        )
    graph_mode = graph is not None and graph.output_index is not None
    notes.extend(_structure_notes(skips, _params_outside_layers(traced, traces), graph_mode))
    if not graph_mode:
        notes.extend(_link_notes(links))
    input_q, input_c = _input_stats(traces[0], options.pair_a, options.pair_b)
    segment_of = {i: k for k, (a, b) in enumerate(spans) for i in range(a, b + 1)}
    layers = []
    for t in traces:
        feed = feeds[t.index] if t.index < n - 1 else None
        layers.append(
            LayerInfo(
                t.index,
                t.name,
                t.kind,
                t.input_shape,
                t.output_shape,
                params[t.index].sigma_w2,
                params[t.index].sigma_b2,
                feed,
                segment_of[t.index],
            )
        )
    return DiagnosisReport(
        layers=layers,
        q=q,
        q_stderr=np.array([_stderr(t.q_samples) for t in traces]),
        c=c,
        c_stderr=np.array([_stderr(t.c_pairs) for t in traces]),
        grad_norms=np.array([run.weight_norms.get(t.module, float("nan")) for t in traces]),
        grad_sq=grad_sq,
        chi_1=chi,
        input_q=input_q,
        input_c=input_c,
        links=link_dicts,
        segments=spans,
        main_segment=main,
        chi_1_bulk=chi_bulk,
        gradient_growth=gradient_growth,
        phase=phase,
        depth_scale=depth_scale,
        predicted=Predicted(curves.q, curves.c, curves.chi, curves.grad_sq, theory),
        recommendation=recommendation,
        jacobian=jacobian,
        notes=notes,
        critical_tol=options.critical_tol,
        residual=residual,
        mode="graph" if graph_mode else "chain",
    )


# ------------------------------------------------------------------------------------ entry point


def diagnose(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    pairs: int | Sequence[tuple[int, int]] | None = None,
    jacobian: bool | str = True,
    jacobian_k: int = 4,
    critical_tol: float = 0.05,
    seed: int = 0,
    growth_target: float = 10.0,
    strict: bool = False,
) -> DiagnosisReport:
    """Measure signal and gradient propagation through ``model`` on ``inputs`` and compare it with
    mean-field theory (see the module docstring).

    Args:
        model: any ``nn.Module`` returning one tensor with the batch dimension first.
        inputs: a batch ``[B, ...]`` (B >= 2) the model accepts (random or real data).
        pairs: the input pairs whose correlation c^l is tracked: a number of disjoint pairs (0, 1), (2, 3),
            ... (default min(16, B // 2)) or explicit (i, j) index pairs.
        jacobian: True / "moments": mean squared singular value of the input-output Jacobian from the
            diagnosis' own backward pass (free); "spectrum": also the ``jacobian_k`` largest and smallest
            singular values and mean(s^4) of the first input's Jacobian (:mod:`dltheory.nn.jacobian`, a few
            extra passes per Lanczos step); False: none.
        critical_tol: |chi - 1| up to which the verdict is "critical".
        seed: seeds the Gaussian read-out directions (and the Lanczos start vector).
        growth_target: for residual stacks, the end-to-end growth of the squared gradient above which the
            verdict is "exploding" (below its inverse "vanishing"); the recommendation aims at growth 2.
        strict: raise :class:`DiagnoseError` naming every operation the theory does not cover, instead of
            reporting them in ``report.notes``.

    Returns:
        :class:`DiagnosisReport`; for a residual stack ``report.residual`` holds the stream statistics, the
        growth verdict and the depth laws, and ``report.recommendation`` the branch scale.

    Raises:
        TypeError: for arguments of the wrong type.
        ValueError: for bad argument values, or when the model runs no ``nn.Linear`` / ``nn.Conv*d`` layer.
        DiagnoseError: (a ValueError) when the model raises on the inputs or does not return a batch, or
            (``strict=True``) naming what the theory does not cover.

    References:
        Poole et al. 2016; Schoenholz et al. 2017; Xiao et al. 2018 (chains); Yang & Schoenholz 2017
        (residual stacks).

    Examples:
        >>> import torch
        >>> from dltheory.nn import ResidualMLP
        >>> model = ResidualMLP(16, 64, depth=30, sigma_w2=1.5, generator=torch.Generator().manual_seed(0))
        >>> report = diagnose(model, torch.randn(16, 16, generator=torch.Generator().manual_seed(1)))
        >>> report.mode, report.phase, report.residual.blocks
        ('graph', 'exploding', 30)
        >>> report.recommendation.kind
        'branch_scale'
    """
    if jacobian not in JACOBIAN_MODES:
        raise ValueError(f"jacobian must be one of {list(JACOBIAN_MODES)}, got {jacobian!r}")
    tol = float(check_positive("critical_tol", critical_tol))
    x = _check_inputs(model, inputs)
    pair_a, pair_b = _pairs(pairs, x.shape[0])
    target = float(check_positive("growth_target", growth_target))
    if target <= 1.0:
        raise ValueError(f"growth_target must be > 1, got {growth_target!r}")
    options = _Options(
        pair_a,
        pair_b,
        jacobian,
        check_int("jacobian_k", jacobian_k, minimum=1),
        tol,
        seed,
        target,
        bool(strict),
    )
    clear_cache()
    try:
        with _collector_paused():
            return _diagnose(model, x, options)
    finally:
        clear_cache()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector during a diagnosis: it creates several objects per graph node
    (tens of thousands for a deep network), which makes the collector run full passes over every live
    object again and again, about a tenth of the cost of diagnosing a 1,000-block network
    (benchmarks/bench_diagnose_residual.py). What becomes garbage is collected afterwards as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _diagnose(model: nn.Module, x: torch.Tensor, options: _Options) -> DiagnosisReport:
    start = time.perf_counter()
    traced = unrolled(model) if is_fused(model) else model
    graph_module = trace(traced)
    skips = find_skip_connections(graph_module)
    structured = graph_module is not None and has_structure(graph_module)
    traced_at = time.perf_counter()
    buffers = {name: b.detach().clone() for name, b in traced.named_buffers()}
    try:
        run = _measure(traced, x, options, graph_module if structured else None)
    finally:
        with torch.no_grad():
            for name, b in traced.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
    if not run.recorder.layers:
        skipped = f" ({'; '.join(run.recorder.skipped)})" if run.recorder.skipped else ""
        raise ValueError(
            f"model {type(model).__name__} ran no nn.Linear or nn.Conv1d/2d/3d layer on these inputs (with "
            f"the batch dimension first); nothing to diagnose{skipped}"
        )
    if traced is not model:
        run.notes.append(
            f"{type(model).__name__} runs its deep stack as one fused node: it was unrolled into "
            f"{len(run.recorder.layers)} nn.Linear / nn.Conv2d layers (the same function, kernels copied)"
        )
    run.notes.extend(f"layer {s}: not measured" for s in run.recorder.skipped)
    measured_at = time.perf_counter()
    report = _report(model, traced, x, run, skips, options)
    end = time.perf_counter()
    report.timings = {
        "trace": traced_at - start,
        **run.seconds,
        "theory": end - measured_at,
        "total": end - start,
    }
    return report
