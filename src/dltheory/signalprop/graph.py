"""Mean-field propagation through a network's dataflow graph: skip connections, normalisers and
branches, not only chains (numpy, float64).

A model is a list of :class:`GraphNode` in execution order. Each node's output is described, per input
``a`` and spatial position ``p``, by its mean square over features ``Q_a(p)`` and, for each tracked pair
(a, b), the mean product ``Q_ab(p)`` (the "maps" of :mod:`dltheory.signalprop.layerwise`). Forward rules:

- ``dense`` (Linear / Conv): ``sigma_w2 (spread of) Q + sigma_b2``
  (:func:`~dltheory.signalprop.layerwise.apply_layer`); its output is a zero-mean Gaussian whatever its
  input, and carries a fresh source of randomness (its weights);
- ``act``: for a Gaussian input, ``E[phi(u)^2]`` and ``E[phi(u_a) phi(u_b)]``
  (:class:`~dltheory.signalprop.layerwise.GaussianMaps`); the output is no longer Gaussian;
- ``add``: maps add when the summands share no source of randomness (a branch ending in fresh weights is
  uncorrelated with the stream it reads: the weights have zero mean); a sum whose summands share a source
  (``x + phi(x)``, weights used twice) is not covered;
- ``scale`` (multiplication by a constant s): ``s^2`` times the maps;
- ``norm`` (LayerNorm / RMSNorm of a zero-mean signal, over the features or over features and positions):
  divides by the normalised group's mean square plus eps, times the gain's mean square, plus the bias's;
- ``pass`` (flatten, reshape, identity, dropout in eval mode): unchanged (averaged over positions when the
  positions change);
- ``opaque``: anything else; the prediction restarts after it from what was measured there.

Backward (gradient-independence assumption), squared gradient norms per input, from the output node
(anchored at its measured value): a node's ``|g|^2`` is the sum over its consumers of the consumer's
``|g|^2`` times a factor: ``sigma_w2`` through a dense layer, ``mean E[phi'(u)^2]`` through an activation,
1 through an addition or a pass, ``s^2`` through a scale, ``gamma2 nu / (Q + eps)`` through a normaliser
(``nu = 1 - k / n``: LayerNorm projects out k = 2 of the n normalised directions, RMSNorm k = 1). Paths
through different fresh weights are uncorrelated, so squared norms add. Where a consumer is opaque the
backward prediction restarts from the measured ``|g|^2`` of the node (an anchor).

For chains this reduces to :func:`~dltheory.signalprop.layerwise.propagate_chain`; for uniform residual
stacks to :func:`~dltheory.signalprop.residual.residual_propagation` (both checked in the tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dltheory.core.activations import Activation, get_activation
from dltheory.core.validation import check_choice
from dltheory.signalprop.layerwise import ChainLayer, GaussianMaps, adapt_positions, apply_layer

KINDS = ("input", "dense", "act", "add", "scale", "norm", "pass", "opaque")
NORM_RANK = {"layer": 2, "rms": 1}


@dataclass(frozen=True)
class NormSpec:
    """A LayerNorm (``"layer"``) or RMSNorm (``"rms"``): ``eps``, mean squares of its gain and bias, the
    number of normalised elements ``size`` and whether it normalises over positions too (LayerNorm over
    (C, H, W), GroupNorm with one group) or per position."""

    kind: str
    eps: float = 1e-5
    gamma2: float = 1.0
    beta2: float = 0.0
    size: int = 0
    over_positions: bool = False

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, list(NORM_RANK))

    @property
    def nu(self) -> float:
        """Backward projection factor ``1 - k / size`` (1 when the size is unknown)."""
        return 1.0 - NORM_RANK[self.kind] / self.size if self.size > NORM_RANK[self.kind] else 1.0


@dataclass(frozen=True)
class GraphNode:
    """One node of the dataflow graph.

    Attributes:
        kind: one of :data:`KINDS`.
        inputs: indices of the nodes it reads (earlier in the list).
        positions: spatial (or sequence) shape of its output's maps (axes that are neither batch nor
            feature).
        layer: the dense layer (kind ``dense``; its ``positions`` are those of its input).
        source: identity of a dense layer's weights (the same for calls that share weights).
        activation: kind ``act``.
        scale: kind ``scale``.
        norm: kind ``norm``.
        reason: why an ``opaque`` node is not covered.
    """

    kind: str
    inputs: tuple[int, ...] = ()
    positions: tuple[int, ...] = ()
    layer: ChainLayer | None = None
    source: str = ""
    activation: Activation | str | None = None
    scale: float = 1.0
    norm: NormSpec | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, list(KINDS))
        if self.activation is not None and not isinstance(self.activation, Activation):
            object.__setattr__(self, "activation", get_activation(self.activation))
        if self.kind == "act" and self.activation is None:
            raise ValueError("an 'act' node needs an activation")
        if self.kind == "dense" and self.layer is None:
            raise ValueError("a 'dense' node needs a layer (ChainLayer)")
        if self.kind == "norm" and self.norm is None:
            raise ValueError("a 'norm' node needs a NormSpec")


@dataclass
class Maps:
    """Second moments of a node's output (see the module docstring) and what the rules need to know."""

    diag: np.ndarray
    cross: np.ndarray
    gaussian: bool
    centred: bool
    sources: frozenset[str]


@dataclass
class GraphPrediction:
    """Per node: predicted ``q``, ``c``, squared gradient norm ``grad_sq`` (NaN where not predicted), the
    backward factor through the node, and where the predictions restarted.

    Attributes:
        restarts: nodes whose forward prediction restarted from measured maps (their input was not
            predicted).
        anchors: nodes whose backward prediction restarted from the measured gradient.
        uncovered: node index -> reason, for every node the rules do not cover.
    """

    q: np.ndarray
    c: np.ndarray
    grad_sq: np.ndarray
    factor: np.ndarray
    restarts: list[int] = field(default_factory=list)
    anchors: list[int] = field(default_factory=list)
    uncovered: dict[int, str] = field(default_factory=dict)
    per_input: dict[int, np.ndarray] = field(default_factory=dict, repr=False)


_MAPS: dict[tuple[str, tuple[tuple[str, float], ...]], GaussianMaps] = {}


def _gaussian_maps(activation: Activation) -> GaussianMaps:
    """One GaussianMaps per registry activation (user callables, whose names may repeat, get their own)."""
    if activation.derivative_method != "exact":
        return GaussianMaps(activation)
    key = (activation.name, tuple(sorted(activation.params.items())))
    if key not in _MAPS:
        _MAPS[key] = GaussianMaps(activation)
    return _MAPS[key]


def _stats(
    states: Sequence[Maps | None], pair_a: np.ndarray, pair_b: np.ndarray, out: GraphPrediction
) -> None:
    """``q`` (mean of the diagonal map) and ``c`` (mean over the pairs of the correlation of the totals over
    positions) of every predicted node, as one array computation."""
    rows = [i for i, state in enumerate(states) if state is not None]
    if not rows:
        return
    diag = np.stack([_totals(states[i].diag) for i in rows])  # type: ignore[union-attr]
    cross = np.stack([_totals(states[i].cross) for i in rows])  # type: ignore[union-attr]
    positions = np.array([states[i].diag[0].size for i in rows])  # type: ignore[union-attr]
    out.q[rows] = diag.mean(axis=1) / positions
    out.c[rows] = np.mean(cross / np.sqrt(diag[:, pair_a] * diag[:, pair_b]), axis=1)


def _totals(maps: np.ndarray) -> np.ndarray:
    return maps if maps.ndim == 1 else maps.reshape(maps.shape[0], -1).sum(axis=1)


def _norm(spec: NormSpec, maps: Maps, pair_a: np.ndarray, pair_b: np.ndarray) -> tuple[Maps, np.ndarray]:
    if spec.over_positions:
        flat = maps.diag.reshape(maps.diag.shape[0], -1)
        var = np.broadcast_to(flat.mean(axis=1).reshape((-1,) + (1,) * (maps.diag.ndim - 1)), maps.diag.shape)
    else:
        var = maps.diag
    denominator = var + spec.eps
    diag = spec.gamma2 * maps.diag / denominator + spec.beta2
    cross = spec.gamma2 * maps.cross / np.sqrt(denominator[pair_a] * denominator[pair_b]) + spec.beta2
    factor = spec.gamma2 * spec.nu * (1.0 / denominator).reshape(denominator.shape[0], -1).mean(axis=1)
    return Maps(diag, cross, maps.gaussian, maps.centred and spec.beta2 == 0.0, maps.sources), factor


def propagate_graph(
    nodes: Sequence[GraphNode],
    output: int,
    measured: Mapping[int, tuple[np.ndarray, np.ndarray]],
    measured_grad_sq: np.ndarray,
    pair_a: np.ndarray,
    pair_b: np.ndarray,
) -> GraphPrediction:
    """Forward and backward mean-field propagation through ``nodes`` (module docstring).

    Args:
        nodes: the graph in execution order; ``input`` nodes start the forward pass.
        output: index of the output node (the backward pass starts there).
        measured: node index -> measured ``(diag, cross)`` maps of its output, used at the inputs and
            where the forward prediction restarts.
        measured_grad_sq: per node, the measured mean squared gradient norm (NaN where not measured), or
            per node and input (shape ``[nodes, inputs]``: the backward pass then runs per input, so that
            inputs of different variance keep their own factors), used at the output and where the backward
            prediction restarts.
        pair_a: the first input of each tracked pair.
        pair_b: the second input of each tracked pair.

    Returns:
        :class:`GraphPrediction`.

    References:
        Poole et al. 2016; Schoenholz et al. 2017 (gradients); Xiao et al. 2018 (convolutions); Yang &
        Schoenholz 2017 (residual networks).

    Examples:
        A reduced residual block ``h + W tanh(h)`` on inputs of unit variance:

        >>> nodes = [
        ...     GraphNode("input"),
        ...     GraphNode("act", (0,), activation="tanh"),
        ...     GraphNode("dense", (1,), layer=ChainLayer(2.0, 0.0), source="W"),
        ...     GraphNode("add", (0, 2)),
        ... ]
        >>> maps = {0: (np.ones(2), np.array([0.0]))}
        >>> grads = np.array([np.nan, np.nan, np.nan, 1.0])
        >>> out = propagate_graph(nodes, 3, maps, grads, np.array([0]), np.array([1]))
        >>> round(float(out.q[3]), 4)  # 1 + 2 E[tanh(z)^2]
        1.7886
        >>> round(float(out.grad_sq[0]), 4)  # 1 + 2 E[tanh'(z)^2]
        1.9287
    """
    n = len(nodes)
    pair_a, pair_b = np.asarray(pair_a, dtype=np.int64), np.asarray(pair_b, dtype=np.int64)
    states: list[Maps | None] = [None] * n
    out = GraphPrediction(np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for i, node in enumerate(nodes):
            state = _forward(i, node, nodes, states, measured, pair_a, pair_b, out)
            if state is not None and not (np.isfinite(state.diag).all() and np.isfinite(state.cross).all()):
                out.uncovered.setdefault(i, "the predicted variance is not finite")
                state = None
            states[i] = state
        _stats(states, pair_a, pair_b, out)
        _backward(nodes, output, measured_grad_sq, out)
    return out


def _input_state(
    j: int,
    states: list[Maps | None],
    measured: Mapping[int, tuple[np.ndarray, np.ndarray]],
    out: GraphPrediction,
) -> Maps | None:
    """The state of node j, or a restart from its measured maps (assumed zero-mean Gaussian)."""
    if states[j] is not None:
        return states[j]
    if j not in measured:
        return None
    diag, cross = measured[j]
    if j not in out.restarts:
        out.restarts.append(j)
    return Maps(
        np.asarray(diag, dtype=np.float64),
        np.asarray(cross, dtype=np.float64),
        True,
        True,
        frozenset({f"measured:{j}"}),
    )


def _forward(
    i: int,
    node: GraphNode,
    nodes: Sequence[GraphNode],
    states: list[Maps | None],
    measured: Mapping[int, tuple[np.ndarray, np.ndarray]],
    pair_a: np.ndarray,
    pair_b: np.ndarray,
    out: GraphPrediction,
) -> Maps | None:
    if node.kind == "input":
        if i not in measured:
            return None
        diag, cross = measured[i]
        return Maps(
            np.asarray(diag, dtype=np.float64),
            np.asarray(cross, dtype=np.float64),
            True,
            True,
            frozenset({f"input:{i}"}),
        )
    if node.kind == "opaque":
        out.uncovered[i] = node.reason or "operation not covered by the mean-field rules"
        return None
    inputs = [_input_state(j, states, measured, out) for j in node.inputs]
    if any(s is None for s in inputs) or not inputs:
        out.uncovered[i] = "its input is neither predicted nor measured"
        return None
    first = inputs[0]
    assert first is not None
    if node.kind == "dense":
        assert node.layer is not None
        positions = node.layer.positions
        diag = apply_layer(node.layer, adapt_positions(first.diag, positions))
        cross = apply_layer(node.layer, adapt_positions(first.cross, positions))
        out.factor[i] = node.layer.sigma_w2
        return Maps(diag, cross, True, True, frozenset({node.source or f"dense:{i}"}))
    if node.kind == "act":
        assert isinstance(node.activation, Activation)
        if not first.gaussian:
            out.uncovered[i] = (
                f"{node.activation.name} of a signal that is not Gaussian (an activation of an activation, "
                "or of a sum that includes one): not covered"
            )
            return None
        maps = _gaussian_maps(node.activation)
        m, d = maps.moments(first.diag)
        with np.errstate(invalid="ignore", divide="ignore"):
            qa, qb = first.diag[pair_a], first.diag[pair_b]
            corr = np.clip(first.cross / np.sqrt(qa * qb), -1.0, 1.0)
        cross = np.broadcast_to(maps.cross(qa, qb, np.nan_to_num(corr)), first.cross.shape)
        out.per_input[i] = np.asarray(d).reshape(np.shape(d)[0], -1).mean(axis=1)
        out.factor[i] = float(np.mean(out.per_input[i]))
        return Maps(np.asarray(m), np.asarray(cross), False, node.activation.parity == "odd", first.sources)
    if node.kind == "add":
        shapes = {s.diag.shape for s in inputs if s is not None}
        sources = [s.sources for s in inputs if s is not None]
        overlap = any(
            sources[a] & sources[b] for a in range(len(sources)) for b in range(a + 1, len(sources))
        )
        if len(node.inputs) != len(set(node.inputs)) or overlap:
            out.uncovered[i] = (
                "the summands share a source of randomness (the same signal, or weights used twice): their "
                "covariance is not zero, not covered"
            )
            return None
        if len(shapes) != 1:
            out.uncovered[i] = f"summands of different shapes {sorted(shapes)} (broadcasting): not covered"
            return None
        present = [s for s in inputs if s is not None]
        diag = sum((s.diag for s in present[1:]), start=present[0].diag)
        cross = sum((s.cross for s in present[1:]), start=present[0].cross)
        out.factor[i] = 1.0
        return Maps(
            np.asarray(diag),
            np.asarray(cross),
            all(s.gaussian for s in inputs if s is not None),
            all(s.centred for s in inputs if s is not None),
            frozenset().union(*sources),
        )
    if node.kind == "scale":
        s2 = node.scale**2
        out.factor[i] = s2
        return Maps(s2 * first.diag, s2 * first.cross, first.gaussian, first.centred, first.sources)
    if node.kind == "norm":
        assert node.norm is not None
        if not first.centred:
            out.uncovered[i] = (
                "normalisation of a signal with non-zero mean (e.g. after ReLU): its mean subtraction is not "
                "covered"
            )
            return None
        state, factor = _norm(node.norm, first, pair_a, pair_b)
        out.per_input[i] = factor
        out.factor[i] = float(np.mean(factor))
        return state
    out.factor[i] = 1.0  # pass
    diag, cross = first.diag, first.cross
    if diag.shape[1:] != node.positions:
        diag, cross = adapt_positions(diag, node.positions), adapt_positions(cross, node.positions)
    return Maps(diag, cross, first.gaussian, first.centred, first.sources)


def _backward(nodes: Sequence[GraphNode], output: int, measured: np.ndarray, out: GraphPrediction) -> None:
    """Squared gradient norms per input (a node's factor may differ between inputs: activations and
    normalisers see each input's own variance), reported as means over the inputs."""
    consumers: list[list[int]] = [[] for _ in nodes]
    for i, node in enumerate(nodes):
        for j in set(node.inputs):
            consumers[j].append(i)
    per_input = measured.ndim == 2
    grads: list[np.ndarray | None] = [None] * len(nodes)

    def value(i: int) -> np.ndarray:
        return measured[i] if per_input else np.asarray([measured[i]])

    grads[output] = value(output)
    for i in range(output - 1, -1, -1):
        users = [k for k in consumers[i] if k <= output]
        if not users:
            continue
        if all(np.isfinite(out.factor[k]) and grads[k] is not None for k in users):
            total = np.zeros(np.shape(value(i)))
            for k in users:
                factor = out.per_input.get(k, out.factor[k]) if per_input else out.factor[k]
                total = total + factor * grads[k]  # type: ignore[operator]
            grads[i] = total
        elif np.all(np.isfinite(value(i))):
            grads[i] = value(i)
            out.anchors.append(i)
    for i, g in enumerate(grads):
        if g is not None:
            out.grad_sq[i] = float(np.mean(g))
