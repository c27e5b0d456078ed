"""signalprop.graph and signalprop.stack (torch-free): graph propagation reduces to the chain maps and to
the residual recursions, uncovered operations are named, blocks are found, growth and multipliers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dltheory.signalprop.graph import GraphNode, NormSpec, propagate_graph
from dltheory.signalprop.layerwise import ChainLayer, propagate_chain
from dltheory.signalprop.residual import residual_propagation
from dltheory.signalprop.stack import branch_ops, find_blocks, solve_multiplier, stack_growth

PAIRS = (np.array([0, 2]), np.array([1, 3]))


def _measured(q=(1.0, 1.0, 1.3, 1.3), c=(0.5, 0.2)):
    q = np.array(q)
    cross = np.array(c) * np.sqrt(q[PAIRS[0]] * q[PAIRS[1]])
    return {0: (q, cross)}


def _residual_graph(depth, alpha=1.0, norm=None, position="pre", block="reduced"):
    nodes = [GraphNode("input")]
    for k in range(depth):
        h = len(nodes) - 1
        x = h
        if norm and position == "pre":
            nodes.append(GraphNode("norm", (x,), norm=NormSpec(norm, eps=0.0)))
            x = len(nodes) - 1
        ops = {"reduced": "AD", "mlp": "DAD", "two_layer": "ADAD"}[block]
        for j, op in enumerate(ops):
            if op == "A":
                nodes.append(GraphNode("act", (x,), activation="tanh"))
            else:
                nodes.append(GraphNode("dense", (x,), layer=ChainLayer(1.2, 0.05), source=f"W{k}.{j}"))
            x = len(nodes) - 1
        nodes.append(GraphNode("scale", (x,), scale=alpha))
        nodes.append(GraphNode("add", (h, len(nodes) - 1)))
        if norm and position == "post":
            nodes.append(GraphNode("norm", (len(nodes) - 1,), norm=NormSpec(norm, eps=0.0)))
    return nodes


def test_a_chain_graph_is_the_chain_prediction():
    layers = [ChainLayer(1.7, 0.05)] * 5
    nodes = [GraphNode("input")]
    for k, layer in enumerate(layers):
        if k:
            nodes.append(GraphNode("act", (len(nodes) - 1,), activation="tanh"))
        nodes.append(GraphNode("dense", (len(nodes) - 1,), layer=layer, source=f"W{k}"))
    measured = _measured()
    grads = np.full(len(nodes), np.nan)
    grads[-1] = 3.0
    out = propagate_graph(nodes, len(nodes) - 1, measured, grads, *PAIRS)
    chain = propagate_chain(layers, ["tanh"] * 4, measured[0][0], measured[0][1], *PAIRS)
    dense = [i for i, n in enumerate(nodes) if n.kind == "dense"]
    np.testing.assert_allclose(out.q[dense], chain.q, rtol=1e-13)
    np.testing.assert_allclose(out.c[dense], chain.c, rtol=1e-13)
    np.testing.assert_allclose(out.grad_sq[dense][:-1] / out.grad_sq[dense][1:], chain.chi, rtol=1e-13)
    assert not out.uncovered and not out.anchors


@pytest.mark.parametrize(
    "norm, position, block", [(None, "pre", "reduced"), ("layer", "pre", "mlp"), ("rms", "post", "two_layer")]
)
def test_a_uniform_residual_graph_is_the_residual_recursion(norm, position, block):
    """Equal-length inputs: q, c at the stream and the gradient growth equal residual_propagation (the
    graph uses the spline / Hermite tables: agreement to 1e-5)."""
    depth = 10
    nodes = _residual_graph(depth, 0.8, norm, position, block)
    measured = {0: (np.ones(4), np.full(2, 0.4))}
    grads = np.full(len(nodes), np.nan)
    grads[-1] = 1.0
    out = propagate_graph(nodes, len(nodes) - 1, measured, grads, *PAIRS)
    blocks = find_blocks(nodes, out.uncovered)
    assert len(blocks) == depth
    sites = [blocks[0].start] + [b.end for b in blocks]
    theory = residual_propagation(
        "tanh", 1.2, 0.05, depth, 1.0, 0.4, alpha=0.8, block=block, norm=norm, norm_position=position
    )
    np.testing.assert_allclose(out.q[sites], theory.q, rtol=1e-5)
    np.testing.assert_allclose(out.c[sites], theory.c, atol=1e-5)
    np.testing.assert_allclose(out.grad_sq[sites] / out.grad_sq[sites[-1]], theory.grad_growth, rtol=1e-5)
    ops = [branch_ops(nodes, b) for b in blocks]
    growth = stack_growth(ops, 1.0).growth
    np.testing.assert_allclose(growth, theory.growth, rtol=1e-8)  # the same engine, the same quadrature


def test_uncovered_operations_are_named_and_predictions_restart():
    nodes = [
        GraphNode("input"),
        GraphNode("act", (0,), activation="relu"),
        GraphNode("add", (0, 1)),  # x + relu(x): correlated summands
        GraphNode("norm", (1,), norm=NormSpec("layer")),  # LayerNorm of relu(x): non-zero mean
        GraphNode("act", (1,), activation="tanh"),  # activation of a non-Gaussian signal
        GraphNode("opaque", (4,), reason="pooling is not covered"),
        GraphNode("dense", (5,), layer=ChainLayer(1.0, 0.0), source="W"),
    ]
    measured = {i: (np.ones(4), np.full(2, 0.3)) for i in range(len(nodes))}
    grads = np.array([np.nan, np.nan, np.nan, np.nan, 5.0, 7.0, 2.0])
    out = propagate_graph(nodes, 6, measured, grads, *PAIRS)
    assert "share a source" in out.uncovered[2]
    assert "non-zero mean" in out.uncovered[3]
    assert "not Gaussian" in out.uncovered[4]
    assert out.uncovered[5] == "pooling is not covered"
    assert 5 in out.restarts and np.isfinite(out.q[6])  # the dense layer restarts from node 5's maps
    # backward: through the dense layer to node 5, then re-anchored at node 4 (its consumer is opaque)
    assert out.grad_sq[5] == pytest.approx(2.0) and out.anchors == [4] and out.grad_sq[4] == 5.0


def test_blocks_projection_shortcuts_and_post_norm():
    nodes = _residual_graph(3, norm="layer", position="post")
    blocks = find_blocks(nodes)
    assert [b.post is not None for b in blocks] == [True] * 3
    assert all(nodes[b.end].kind == "norm" for b in blocks)
    projection = [
        GraphNode("input"),
        GraphNode("act", (0,), activation="relu"),
        GraphNode("dense", (1,), layer=ChainLayer(2.0, 0.0), source="W"),
        GraphNode("dense", (0,), layer=ChainLayer(1.0, 0.0), source="P"),
        GraphNode("add", (2, 3)),
    ]
    (block,) = find_blocks(projection)
    assert block.branch == (1, 2) and block.skip == (3,) and branch_ops(projection, block) is None
    assert find_blocks([GraphNode("input"), GraphNode("add", (0, 0))]) == []


def test_stack_growth_and_multiplier():
    nodes = _residual_graph(20)
    ops = [branch_ops(nodes, b) for b in find_blocks(nodes)]
    r, growth = solve_multiplier(ops, 1.0, 3.0)
    assert growth == pytest.approx(3.0, rel=2e-3)
    assert float(stack_growth(ops, 1.0, multiplier=r).growth[-1]) == pytest.approx(growth, rel=1e-12)
    longer = stack_growth(ops, 1.0, horizon=500, until=1e6)
    assert longer.blocks == 20 and longer.depth_exceeding(1e6) is not None
    assert longer.growth[longer.depth_exceeding(1e6)] >= 1e6
    assert solve_multiplier(ops, 1.0, 1e30) is None  # out of reach within r <= 10
    with pytest.raises(ValueError, match="at least one block"):
        stack_growth([], 1.0)


def test_node_errors():
    with pytest.raises(ValueError, match="kind must be one of"):
        GraphNode("conv")
    with pytest.raises(ValueError, match="needs a layer"):
        GraphNode("dense", (0,))
    with pytest.raises(ValueError, match="needs an activation"):
        GraphNode("act", (0,))
    with pytest.raises(ValueError, match="kind must be one of"):
        NormSpec("batch")
    assert NormSpec("layer", size=100).nu == pytest.approx(0.98) and math.isclose(NormSpec("rms").nu, 1.0)


def test_backward_runs_per_input_when_given_per_input_gradients():
    """A normaliser divides each input's squared gradient by that input's own variance: with per-input
    anchors the mean prediction is mean_a(g_a / q_a), not mean(g) * mean(1 / q)."""
    nodes = [GraphNode("input"), GraphNode("norm", (0,), norm=NormSpec("rms", eps=0.0))]
    q = np.array([1.0, 4.0, 1.0, 4.0])
    measured = {0: (q, np.zeros(2))}
    grads = np.full((2, 4), np.nan)
    grads[1] = [1.0, 3.0, 1.0, 3.0]
    out = propagate_graph(nodes, 1, measured, grads, *PAIRS)
    assert out.grad_sq[0] == pytest.approx(np.mean(grads[1] / q))
    pooled = propagate_graph(nodes, 1, measured, np.nanmean(grads, axis=1), *PAIRS)
    assert pooled.grad_sq[0] == pytest.approx(np.mean(grads[1]) * np.mean(1 / q))
