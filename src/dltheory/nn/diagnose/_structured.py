"""The diagnosis of models with skip connections or normalisers: predictions along the dataflow graph
(:mod:`dltheory.signalprop.graph`), links and coverage per layer, the residual stack's growth, verdict and
recommended branch scale (:mod:`dltheory.signalprop.stack`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dltheory.core.activations import Activation
from dltheory.nn.diagnose._graph import NodeRecord, measured_inputs
from dltheory.nn.diagnose._report import Recommendation, ResidualDiagnosis
from dltheory.nn.diagnose._trace import LayerTrace
from dltheory.signalprop.graph import GraphNode, GraphPrediction, propagate_graph
from dltheory.signalprop.phases import classify_growth
from dltheory.signalprop.stack import StackBlock, branch_ops, find_blocks, solve_multiplier, stack_growth

#: the growth a recommended branch scale aims at (squared gradient across the whole stack)
AIM_GROWTH = 2.0
#: how far the depth laws are continued (copies of the model's last block): this many times the model's
#: depth, at least MIN_HORIZON blocks
HORIZON_FACTOR = 2
MIN_HORIZON = 500


@dataclass
class StructuredPrediction:
    """Per layer (the hook-traced Linear / Conv executions): predicted q, c, |g|^2 and the links; plus the
    residual stack and the notes."""

    q: np.ndarray
    c: np.ndarray
    grad_sq: np.ndarray
    links: list[dict[str, Any]]
    residual: ResidualDiagnosis | None
    recommendation: Recommendation | None
    uncovered: list[str]
    notes: list[str]


def fill_from_graph(traces: list[LayerTrace], records: list[NodeRecord]) -> None:
    """Copy the graph recorder's measurements of each layer's output (and input) into its trace (the hook
    recorder only notes which layers ran, in graph mode)."""
    for trace, index in zip(traces, _layer_nodes(traces, records), strict=True):
        if index is None:
            continue
        record = records[index]
        trace.q_samples, trace.c_pairs, trace.grad_sq = record.q_samples, record.c_pairs, record.grad_sq
        if record.node.inputs:
            source = records[record.node.inputs[0]]
            trace.input_q_map, trace.input_pair_map = source.diag, source.cross


def _layer_nodes(traces: list[LayerTrace], records: list[NodeRecord]) -> list[int | None]:
    """The graph node of each traced layer (matched by module name and call count)."""
    calls: dict[str, int] = {}
    by_call: dict[str, int] = {}
    for r in records:
        if r.node.kind == "dense" and r.module is not None:
            calls[r.module] = calls.get(r.module, 0) + 1
            label = r.module if calls[r.module] == 1 else f"{r.module}#{calls[r.module]}"
            by_call[label] = r.index
    return [by_call.get(t.name) for t in traces]


def _links(
    nodes_of: list[int | None], records: list[NodeRecord], prediction: GraphPrediction
) -> list[dict[str, Any]]:
    links = []
    for k in range(len(nodes_of) - 1):
        a, b = nodes_of[k], nodes_of[k + 1]
        if a is None or b is None or b <= a:
            links.append(
                {
                    "from": k,
                    "covered": False,
                    "kind": "structure",
                    "reason": "not found in the graph",
                    "between": [],
                }
            )
            continue
        between = records[a + 1 : b]
        names = [r.label for r in between]
        broken = [
            r
            for r in records[a + 1 : b + 1]
            if r.index in prediction.uncovered or r.index in prediction.restarts
        ]
        if broken or not np.isfinite(prediction.q[b]):
            first = broken[0] if broken else records[b]
            reason = prediction.uncovered.get(first.index, f"the prediction restarts at {first.label}")
            kind = "normalisation" if "Norm" in first.label else "structure"
            links.append({"from": k, "covered": False, "kind": kind, "reason": reason, "between": names})
            continue
        kinds = {r.node.kind for r in between}
        kind = "residual" if "add" in kinds else ("normalisation" if "norm" in kinds else "activation")
        acts = [r.node.activation for r in between if r.node.kind == "act"]
        reason = "mean-field rules along the graph (" + ", ".join(sorted(kinds)) + ")"
        links.append(
            {
                "from": k,
                "covered": True,
                "kind": kind,
                "reason": reason,
                "between": names,
                "activation": acts[-1].name if acts and isinstance(acts[-1], Activation) else None,
            }
        )
    return links


def _describe(nodes: list[GraphNode], block: StackBlock) -> str:
    parts = []
    for k in block.branch:
        node = nodes[k]
        if node.kind == "act" and isinstance(node.activation, Activation):
            parts.append(f"act({node.activation.name})")
        elif node.kind == "norm" and node.norm is not None:
            parts.append(f"{node.norm.kind}norm")
        elif node.kind == "scale":
            parts.append(f"x{node.scale:.4g}")
        elif node.kind != "pass":
            parts.append(node.kind)
    post = ""
    if block.post is not None:
        spec = nodes[block.post].norm
        post = f"; then {spec.kind}norm" if spec is not None else ""
    return "h + " + " -> ".join(parts) + post


def _residual(
    records: list[NodeRecord],
    nodes: list[GraphNode],
    prediction: GraphPrediction,
    grads: np.ndarray,
    target: float,
    notes: list[str],
) -> tuple[ResidualDiagnosis | None, Recommendation | None]:
    blocks = find_blocks(nodes, prediction.uncovered)
    if not blocks:
        return None, None
    sites = [blocks[0].start] + [b.end for b in blocks]
    q = np.array([float(np.mean(records[i].q_samples)) for i in sites])
    c = np.array(
        [
            float(np.nanmean(records[i].c_pairs)) if np.any(np.isfinite(records[i].c_pairs)) else np.nan
            for i in sites
        ]
    )
    g, g_pred = grads[sites], prediction.grad_sq[sites]
    with np.errstate(invalid="ignore", divide="ignore"):
        growth, growth_pred = float(g[0] / g[-1]), float(g_pred[0] / g_pred[-1])
    verdict = str(classify_growth(growth if np.isfinite(growth) else growth_pred, target))
    ops = [branch_ops(nodes, b) for b in blocks]
    block_ops = [o for o in ops if o is not None]
    descriptions = {_describe(nodes, b) for b in blocks}
    block = descriptions.pop() if len(descriptions) == 1 else None
    recommendation = None
    q0 = float(prediction.q[sites[0]]) if np.isfinite(prediction.q[sites[0]]) else float(q[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        cumulative: np.ndarray | None = g_pred[0] / g_pred  # the model's own blocks, along the graph
    if cumulative is not None and not np.all(np.isfinite(cumulative)):
        cumulative = None
    if len(block_ops) == len(blocks):
        horizon = max(HORIZON_FACTOR * len(blocks), MIN_HORIZON)
        q_last = float(prediction.q[sites[-1]])
        if cumulative is not None and cumulative[-1] < 100.0 and np.isfinite(q_last):
            more = stack_growth(
                [block_ops[-1]], q_last, horizon=horizon - len(blocks), until=100.0 / cumulative[-1]
            )
            cumulative = np.concatenate([cumulative, cumulative[-1] * more.growth[1:]])
        if verdict == "exploding" or (verdict == "vanishing" and not np.isfinite(growth)):
            recommendation = _recommend(records, nodes, blocks, block_ops, q0, growth, verdict, notes)
    else:
        notes.append(
            "some residual blocks have no block-level form (projection shortcuts, normalisers with a bias): "
            "the depth laws and the branch-scale recommendation are not computed"
        )
    depth_10x = depth_100x = None
    if cumulative is not None:
        reached = [np.nonzero(cumulative >= factor)[0] for factor in (10.0, 100.0)]
        depth_10x, depth_100x = (int(r[0]) if r.size else None for r in reached)
    if verdict == "vanishing" and recommendation is None:
        notes.append(
            f"the squared gradient shrinks {1 / growth:.3g}x across the stack (post-norm stacks lose a "
            "factor 1 - k / width per normaliser): no branch scale fixes that, consider pre-norm"
        )
    if abs(math.log(max(growth, 1e-300)) - math.log(max(growth_pred, 1e-300))) > math.log(1.5):
        notes.append(
            f"measured growth {growth:.4g} vs mean-field {growth_pred:.4g}: finite width (depth / width is "
            "not small)"
        )
    diagnosis = ResidualDiagnosis(
        len(blocks),
        [records[i].name for i in sites],
        q,
        prediction.q[sites],
        c,
        prediction.c[sites],
        g,
        g_pred,
        growth,
        growth_pred,
        target,
        verdict,
        cumulative,
        depth_10x,
        depth_100x,
        block,
    )
    return diagnosis, recommendation


def _recommend(
    records: list[NodeRecord],
    nodes: list[GraphNode],
    blocks: list[StackBlock],
    ops: list[Any],
    q0: float,
    growth: float,
    verdict: str,
    notes: list[str],
) -> Recommendation | None:
    solved = solve_multiplier(ops, q0, AIM_GROWTH)
    if solved is None:
        notes.append(f"no branch multiplier in [1e-3, 10] brings the predicted growth to {AIM_GROWTH}")
        return None
    r, predicted = solved
    targets: dict[str, tuple[float, float]] = {}
    for b in blocks:
        last = next((k for k in reversed(b.branch) if nodes[k].kind == "dense"), None)
        module = records[last].module if last is not None else None
        layer = nodes[last].layer if last is not None else None
        if module is None or layer is None:
            notes.append("a residual branch has no last layer module to rescale: no recommendation")
            return None
        targets[module] = (r * r * layer.sigma_w2, r * r * layer.sigma_b2)
    acts = [nodes[k].activation for b in blocks for k in b.branch if nodes[k].kind == "act"]
    activation = acts[0] if acts and isinstance(acts[0], Activation) else None
    if activation is None:
        return None
    sw2 = float(np.median([t[0] for t in targets.values()]))
    sb2 = float(np.median([t[1] for t in targets.values()]))
    depth = len(blocks)
    note = (
        f"multiply every residual branch by r = {r:.4g} (rescale the last layer of each of the {depth} "
        "branches): "
        f"the predicted end-to-end growth of the squared gradient goes from {growth:.4g} to {predicted:.3g}. "
        f"Equivalently alpha_new = {r:.4g} alpha; as a depth rule, alpha ~ {r * math.sqrt(depth):.3g} / "
        "sqrt(L) keeps the growth bounded as the depth L grows (Yang & Schoenholz 2017)."
    )
    call = f"report.recommendation.apply(model)  # branch multiplier {r:.4g} on {depth} branches"
    return Recommendation(
        activation, sw2, sb2, "keep", float("nan"), call, note, "branch_scale", r, targets, predicted
    )


def predict_structured(
    traces: list[LayerTrace],
    records: list[NodeRecord],
    output: int,
    pair_a: np.ndarray,
    pair_b: np.ndarray,
    growth_target: float,
) -> StructuredPrediction:
    """Everything the report needs beyond the measurements, for a model followed along its graph."""
    nodes = [r.node for r in records]
    maps, grads = measured_inputs(records)
    prediction = propagate_graph(nodes, output, maps, grads, pair_a, pair_b)
    nodes_of = _layer_nodes(traces, records)
    pick = [i if i is not None else -1 for i in nodes_of]
    q = np.where(np.array(pick) >= 0, prediction.q[pick], np.nan) if pick else np.zeros(0)
    c = np.where(np.array(pick) >= 0, prediction.c[pick], np.nan) if pick else np.zeros(0)
    g = np.where(np.array(pick) >= 0, prediction.grad_sq[pick], np.nan) if pick else np.zeros(0)
    notes: list[str] = []
    uncovered = [f"{records[i].label}: {reason}" for i, reason in sorted(prediction.uncovered.items())]
    measured_rows = np.any(np.isfinite(grads), axis=1) if grads.size else np.zeros(0, dtype=bool)
    mean_grads = np.full(len(records), np.nan)
    mean_grads[measured_rows] = np.nanmean(grads[measured_rows], axis=1)
    residual, recommendation = _residual(records, nodes, prediction, mean_grads, growth_target, notes)
    if prediction.restarts:
        shown = ", ".join(records[i].label for i in prediction.restarts[:4])
        notes.append(f"the forward prediction restarts from measured statistics at {shown}")
    return StructuredPrediction(
        q, c, g, _links(nodes_of, records, prediction), residual, recommendation, uncovered, notes
    )
