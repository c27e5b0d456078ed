"""Following a model's dataflow graph (``torch.fx``) for :func:`dltheory.diagnose`: which operations it runs,
how they connect, and what every intermediate tensor looked like.

:func:`trace` symbolically traces the model; :class:`GraphRecorder` runs the traced graph on the inputs
(a ``torch.fx.Interpreter``) and, for every node whose output is a batch tensor, records at once (before
any in-place op changes it) the per-input mean square, the pair correlations and the per-position maps
(means over features, as :mod:`dltheory.nn.diagnose._trace` does for layers; a scaling by a constant or a
pass-through that keeps the shape takes them exactly from its input's), registers a hook for its squared
gradient (on the output of a Linear layer called once, also the norm of its weight gradient), and
classifies the operation for the torch-free mean-field rules of
:mod:`dltheory.signalprop.graph`: dense (Linear / Conv), activation, addition, scaling by a constant,
LayerNorm / RMSNorm / one-group GroupNorm, shape-only pass-through, or opaque (with the reason, e.g.
BatchNorm, attention, pooling).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dltheory.core.activations import Activation, get_activation
from dltheory.nn.diagnose._theory import conv_geometry, weight_variances
from dltheory.nn.diagnose._trace import DROPOUT_TYPES, LAYER_TYPES, POOL_TYPES, declared_activation
from dltheory.signalprop.graph import GraphNode, NormSpec
from dltheory.signalprop.layerwise import ChainLayer

_ADD = {operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub}
_MUL = {operator.mul, operator.imul, torch.mul}
_DIV = {operator.truediv, operator.itruediv, torch.div}
_FUNCTION_ACTIVATIONS: dict[Any, str] = {
    torch.tanh: "tanh",
    F.tanh: "tanh",
    torch.relu: "relu",
    F.relu: "relu",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    torch.erf: "erf",
    F.silu: "silu",
    F.selu: "selu",
}
_METHOD_ACTIVATIONS = {"tanh": "tanh", "tanh_": "tanh", "relu": "relu", "relu_": "relu", "sigmoid": "sigmoid"}
_PASS_FUNCTIONS = {torch.flatten, torch.reshape}
_PASS_METHODS = {"flatten", "view", "reshape", "contiguous", "clone"}
_NORM_MODULES = (nn.LayerNorm, nn.RMSNorm, nn.GroupNorm)
_ATTENTION = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.Transformer)


@dataclass(frozen=True)
class TracedModel:
    """A model and its symbolic ``torch.fx`` graph, whose node targets are the model's own submodules and
    attributes: the graph runs on the model itself, without the code generation and module copies of a
    ``torch.fx.GraphModule`` (a third of the cost of tracing a 1,000-block network)."""

    root: nn.Module
    graph: torch.fx.Graph
    modules: dict[str, nn.Module]

    def get_submodule(self, target: str) -> nn.Module:
        module = self.modules.get(target)
        return module if module is not None else self.root.get_submodule(target)


def trace(model: nn.Module) -> TracedModel | None:
    """The ``torch.fx`` graph of ``model``, or None when it cannot be traced symbolically."""
    try:
        graph = torch.fx.Tracer().trace(model)
    except Exception:  # noqa: BLE001 - any tracing failure only means "use the hooks"
        return None
    return TracedModel(model, graph, dict(model.named_modules()))


def has_structure(graph_module: TracedModel) -> bool:
    """True when the graph adds two computed tensors (a skip connection) or normalises with a LayerNorm,
    RMSNorm or GroupNorm: then the chain theory of vanilla networks does not describe it."""
    for node in graph_module.graph.nodes:
        tensors = [a for a in node.args if isinstance(a, torch.fx.Node)]
        if node.op == "call_function" and node.target in _ADD and len(tensors) >= 2:
            return True
        if node.op == "call_method" and node.target in ("add", "add_", "sub") and len(tensors) >= 2:
            return True
        if node.op == "call_function" and node.target is F.layer_norm:
            return True
        if node.op == "call_module" and isinstance(graph_module.get_submodule(node.target), _NORM_MODULES):
            return True
    return False


@dataclass
class NodeRecord:
    """What was measured at one graph node (a batch tensor)."""

    index: int
    name: str
    label: str
    node: GraphNode
    module: str | None
    q_samples: np.ndarray
    c_pairs: np.ndarray
    diag: np.ndarray
    cross: np.ndarray
    grad_sq: np.ndarray | None = None
    weight_grad_norm: float | None = None


def _layouts(graph_module: TracedModel) -> dict[str, str]:
    """Feature axis of every node's output: "last" (Linear-style, features last) or "first" (channels at
    axis 1, convolutions), propagated forward from the layers and backward to the inputs."""
    layout: dict[str, str] = {}
    nodes = list(graph_module.graph.nodes)
    for node in nodes:
        if node.op == "call_module":
            module = graph_module.get_submodule(node.target)
            if isinstance(module, nn.Linear):
                layout[node.name] = "last"
                continue
            if isinstance(module, LAYER_TYPES):
                layout[node.name] = "first"
                continue
        inherited = [layout[a.name] for a in node.all_input_nodes if a.name in layout]
        if inherited:
            layout[node.name] = inherited[0]
    for node in reversed(nodes):
        if node.name in layout:
            continue
        for user in node.users:
            if user.op == "call_module":
                module = graph_module.get_submodule(user.target)
                if isinstance(module, nn.Linear):
                    layout[node.name] = "last"
                    break
                if isinstance(module, LAYER_TYPES):
                    layout[node.name] = "first"
                    break
            if user.name in layout:
                layout[node.name] = layout[user.name]
                break
    return layout


def _maps(
    x: torch.Tensor, layout: str, pair_a: torch.Tensor, pair_b: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    xd = x.detach().to(torch.float64)
    if xd.dim() == 2:
        diag = xd.square().mean(dim=1)
        cross = (xd[pair_a] * xd[pair_b]).mean(dim=1)
    else:
        axis = -1 if layout == "last" else 1
        diag = xd.square().mean(dim=axis)
        cross = (xd[pair_a] * xd[pair_b]).mean(dim=axis)
    return diag.cpu().numpy(), cross.cpu().numpy()


def _positions(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    if len(shape) <= 2:
        return ()
    return shape[1:-1] if layout == "last" else shape[2:]


def _single_call_linears(graph_module: TracedModel) -> set[str]:
    """Targets of the ``nn.Linear`` modules that the graph calls once and whose weight nothing else uses
    (no other module holds it, no graph node reads it as an attribute): the gradient of such a weight is
    that one call's ``g^T x``."""
    calls: dict[str, int] = {}
    attributes: list[str] = []
    for node in graph_module.graph.nodes:
        if node.op == "call_module":
            calls[str(node.target)] = calls.get(str(node.target), 0) + 1
        elif node.op == "get_attr":
            attributes.append(str(node.target))
    holders: dict[int, int] = {}
    for module in graph_module.modules.values():
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor):
            holders[id(weight)] = holders.get(id(weight), 0) + 1
    return {
        target
        for target, count in calls.items()
        if count == 1
        and isinstance(module := graph_module.get_submodule(target), nn.Linear)
        and holders.get(id(module.weight)) == 1
        and not any(a == target or a.startswith(target + ".") for a in attributes)
    }


def linear_weight_grad_norm(layer_input: torch.Tensor, grad_output: torch.Tensor) -> float:
    """``||dL/dW||_F`` of a Linear layer ``y = x W^T + b`` from its input ``x`` and the gradient ``g`` at
    its output, rows running over the batch and any position axes: ``dL/dW = g^T x``. When the N rows are
    few (``N^2 <= fan_in fan_out``) it uses the N x N Gram matrices, ``||g^T x||_F^2 = sum_ab (x x^T)_ab
    (g g^T)_ab``, a fraction of the cost of forming ``g^T x``. Products in the tensors' dtype, the final sum
    in float64."""
    x = layer_input.reshape(-1, layer_input.shape[-1])
    g = grad_output.reshape(-1, grad_output.shape[-1]).to(x.dtype)
    if x.shape[0] ** 2 <= x.shape[1] * g.shape[1]:
        value = float(((x @ x.T) * (g @ g.T)).sum(dtype=torch.float64))
        return math.sqrt(max(value, 0.0))
    return float(torch.linalg.vector_norm(g.T @ x, dtype=torch.float64))


def _as_slice(index: np.ndarray) -> slice | None:
    """``index`` as a slice when it is an increasing arithmetic progression (e.g. the default pairs
    (0, 1), (2, 3), ...: a view instead of a gathered copy), else None."""
    if index.size == 0 or index[0] < 0:
        return None
    step = int(index[1] - index[0]) if index.size > 1 else 1
    if step <= 0 or not np.array_equal(index, index[0] + step * np.arange(index.size)):
        return None
    return slice(int(index[0]), int(index[-1]) + 1, step)


def _as_slices(pair_a: np.ndarray, pair_b: np.ndarray) -> tuple[slice, slice] | None:
    first, second = _as_slice(pair_a), _as_slice(pair_b)
    return (first, second) if first is not None and second is not None else None


def _scalar(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
        return float(value.detach())
    return None


class GraphRecorder(torch.fx.Interpreter):
    """Runs a traced model and records every batch tensor (see the module docstring). With
    ``weight_grads`` the gradient hooks on the outputs of single-call Linear layers also compute the norm
    of the layer's weight gradient (:attr:`weight_grads`: module -> record), for a backward pass that
    reaches the model's input."""

    def __init__(
        self,
        graph_module: TracedModel,
        batch: int,
        pair_a: torch.Tensor,
        pair_b: torch.Tensor,
        *,
        weight_grads: bool = True,
    ):
        super().__init__(graph_module.root, graph=graph_module.graph)
        self.graph_module = graph_module
        self.batch = batch
        self.pair_a, self.pair_b = pair_a, pair_b
        self._pa, self._pb = pair_a.numpy(), pair_b.numpy()
        self.records: list[NodeRecord] = []
        self.index: dict[str, int] = {}
        self.output_index: int | None = None
        self.layout = _layouts(graph_module)
        self._slices = _as_slices(self._pa, self._pb)
        self._shapes: dict[int, tuple[int, ...]] = {}  # shape of each measured or derived record's tensor
        self._own_weight = _single_call_linears(graph_module) if weight_grads else set()
        self._from_input: set[int] = set()  # records computed from the model's (first) input
        #: Linear modules whose weight-gradient norm the hook on their output computes (the backward pass
        #: then need not form their weight gradients)
        self.weight_grads: dict[nn.Module, NodeRecord] = {}

    def fetch_attr(self, target: str) -> Any:
        """The submodule ``target`` from the traced model's table (the base class walks the attribute
        path, which costs as much as the module call itself in a deep network)."""
        module = self.graph_module.modules.get(target)
        return module if module is not None else super().fetch_attr(target)

    # ------------------------------------------------------------------------------------ running

    def run_node(self, n: torch.fx.Node) -> Any:
        with self._set_current_node(n):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            result = getattr(self, n.op)(n.target, args, kwargs)
        if n.op == "output":
            value = n.args[0]
            if isinstance(value, torch.fx.Node) and value.name in self.index:
                self.output_index = self.index[value.name]
            return result
        if n.op == "get_attr":
            return result
        if self._is_batch(result):
            self._record(n, args, kwargs, result)
        elif isinstance(result, tuple | list) and n.op == "call_module":
            first = next((r for r in result if self._is_batch(r)), None)
            if first is not None:  # e.g. attention returns (output, weights): record it as one opaque node
                self._record(n, args, kwargs, first)
        return result

    def _is_batch(self, value: Any) -> bool:
        return isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == self.batch

    def _signal_inputs(self, n: torch.fx.Node) -> tuple[int, ...]:
        return tuple(self.index[a.name] for a in n.all_input_nodes if a.name in self.index)

    def _record(
        self, n: torch.fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any], result: torch.Tensor
    ) -> None:
        layout = self.layout.get(n.name, "first")
        inputs = self._signal_inputs(n)
        node, label, module_name = self._classify(n, args, kwargs, inputs, result, layout)
        index = len(self.records)
        derived = self._derived(node, result)
        if derived is not None:
            record = NodeRecord(index, n.name, label, node, module_name, *derived)
        else:
            record = self._measured(index, n.name, label, node, module_name, result, layout)
        self.index[n.name] = record.index
        self.records.append(record)
        if (n.op == "placeholder" and index == 0) or any(i in self._from_input for i in inputs):
            self._from_input.add(index)
        if result.requires_grad:
            layer = self._own_weight_layer(n, args, inputs)
            layer_input = None
            if layer is not None:
                module, layer_input = layer
                self.weight_grads[module] = record
            result.register_hook(self._grad_hook(record, layer_input))

    def _own_weight_layer(
        self, n: torch.fx.Node, args: tuple[Any, ...], inputs: tuple[int, ...]
    ) -> tuple[nn.Module, torch.Tensor] | None:
        """The module and input of a call of a Linear module with a trainable weight of its own (see
        :func:`_single_call_linears`) that computes from the model's input (so that the backward pass to
        the input reaches it), else None."""
        if n.op != "call_module" or n.target not in self._own_weight or not args:
            return None
        if len(inputs) != 1 or inputs[0] not in self._from_input:
            return None
        module = self.graph_module.get_submodule(str(n.target))
        x = args[0]
        if not isinstance(x, torch.Tensor) or not module.weight.requires_grad:
            return None
        return module, x.detach()

    def _measured(
        self,
        index: int,
        name: str,
        label: str,
        node: GraphNode,
        module_name: str | None,
        result: torch.Tensor,
        layout: str,
    ) -> NodeRecord:
        """The statistics of ``result`` itself: squares and pair products summed in float64."""
        flat = result.detach().reshape(self.batch, -1)
        if not flat.is_floating_point():  # e.g. token ids
            flat = flat.to(torch.float64)
        sq = torch.linalg.vector_norm(flat, dim=1, dtype=torch.float64).cpu().numpy() ** 2
        if self._slices is not None:
            first, second = flat[self._slices[0]], flat[self._slices[1]]
        else:
            first, second = flat[self.pair_a], flat[self.pair_b]
        dots = (first * second).sum(dim=1, dtype=torch.float64).cpu().numpy()
        self._shapes[index] = tuple(result.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            c = dots / np.sqrt(sq[self._pa] * sq[self._pb])
        size = flat.shape[1]
        if result.dim() == 2:  # no positions: the maps are the per-input means themselves
            diag, cross = sq / size, dots / size
        else:
            diag, cross = _maps(result, layout, self.pair_a, self.pair_b)
        return NodeRecord(index, name, label, node, module_name, sq / size, c, diag, cross)

    def _derived(
        self, node: GraphNode, result: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """The statistics of a scaling by a non-zero constant s (``s^2`` times its input's, the same
        correlations) or of a pass-through that keeps the shape (its input's), exactly, without touching the
        tensor: ``(q_samples, c_pairs, diag, cross)``; None for any other node."""
        if node.kind not in ("scale", "pass") or len(node.inputs) != 1:
            return None
        if node.scale == 0.0 or not math.isfinite(node.scale):
            return None
        source = self.records[node.inputs[0]]
        if self._shapes.get(source.index) != tuple(result.shape):
            return None
        s2 = node.scale**2
        self._shapes[len(self.records)] = tuple(result.shape)
        return s2 * source.q_samples, source.c_pairs.copy(), s2 * source.diag, s2 * source.cross

    @staticmethod
    def _grad_hook(record: NodeRecord, layer_input: torch.Tensor | None):  # type: ignore[no-untyped-def]
        def hook(grad: torch.Tensor) -> None:
            flat = grad.detach().reshape(grad.shape[0], -1)
            record.grad_sq = torch.linalg.vector_norm(flat, dim=1, dtype=torch.float64).cpu().numpy() ** 2
            if layer_input is not None:
                record.weight_grad_norm = linear_weight_grad_norm(layer_input, grad.detach())

        return hook

    # ------------------------------------------------------------------------------------ classification

    def _classify(
        self,
        n: torch.fx.Node,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        inputs: tuple[int, ...],
        result: torch.Tensor,
        layout: str,
    ) -> tuple[GraphNode, str, str | None]:
        positions = _positions(tuple(result.shape), layout)
        if n.op == "placeholder":
            kind = "input" if not self.records else "opaque"
            return GraphNode(kind, (), positions, reason="a second model input"), f"input {n.name}", None
        if n.op == "call_module":
            module = self.graph_module.get_submodule(str(n.target))
            label = f"{n.target} ({type(module).__name__})"
            return self._module(n, module, args, inputs, positions, layout), label, str(n.target)
        name = getattr(n.target, "__name__", str(n.target))
        label = f"{n.name} ({name})"
        if n.op == "call_function" and n.target is operator.getitem and len(inputs) == 1:
            producer = self.records[inputs[0]]
            if producer.node.kind == "opaque":
                return GraphNode("opaque", inputs, positions, reason=producer.node.reason), label, None
            return GraphNode("pass", inputs, positions), label, None
        if len(inputs) != 1 and not (len(inputs) == 2 and self._is_add(n)):
            return (
                GraphNode(
                    "opaque", inputs, positions, reason=f"{label} combines {len(inputs)} computed tensors"
                ),
                label,
                None,
            )
        if self._is_add(n):
            tensor_args = [a for a in args if isinstance(a, torch.Tensor)]
            if len(inputs) == 2 and len(tensor_args) == 2 and kwargs.get("alpha", 1) == 1:
                return GraphNode("add", inputs, positions), label, None
            return (
                GraphNode(
                    "opaque", inputs, positions, reason=f"{label} adds a constant tensor or scales a summand"
                ),
                label,
                None,
            )
        activation = self._function_activation(n, args, kwargs)
        if activation is not None:
            return GraphNode("act", inputs, positions, activation=activation), label, None
        scale = self._scale(n, args)
        if scale is not None:
            return GraphNode("scale", inputs, positions, scale=scale), label, None
        if (n.op == "call_function" and n.target in _PASS_FUNCTIONS) or (
            n.op == "call_method" and n.target in _PASS_METHODS
        ):
            return GraphNode("pass", inputs, positions), label, None
        if n.op == "call_function" and n.target is F.dropout:
            training = kwargs.get("training", args[2] if len(args) > 2 else True)
            if not training:
                return GraphNode("pass", inputs, positions), label, None
            return (
                GraphNode("opaque", inputs, positions, reason=f"{label}: dropout in training mode"),
                label,
                None,
            )
        if n.op == "call_function" and n.target is F.layer_norm:
            return (
                self._layer_norm_function(args, kwargs, inputs, positions, label, result, layout),
                label,
                None,
            )
        return (
            GraphNode("opaque", inputs, positions, reason=f"{label} is not covered by the mean-field rules"),
            label,
            None,
        )

    @staticmethod
    def _is_add(n: torch.fx.Node) -> bool:
        return (n.op == "call_function" and n.target in _ADD) or (
            n.op == "call_method" and n.target in ("add", "add_", "sub", "sub_")
        )

    def _function_activation(
        self, n: torch.fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Activation | None:
        if n.op == "call_method":
            key = _METHOD_ACTIVATIONS.get(str(n.target))
            return get_activation(key) if key else None
        if n.op != "call_function":
            return None
        if n.target in _FUNCTION_ACTIVATIONS:
            return get_activation(_FUNCTION_ACTIVATIONS[n.target])
        if n.target is F.gelu and kwargs.get("approximate", "none") == "none":
            return get_activation("gelu")
        if n.target is F.leaky_relu:
            slope = kwargs.get("negative_slope", args[1] if len(args) > 1 else 0.01)
            return get_activation("leaky_relu", slope=float(slope))
        if n.target is F.hardtanh:
            lo = kwargs.get("min_val", args[1] if len(args) > 1 else -1.0)
            hi = kwargs.get("max_val", args[2] if len(args) > 2 else 1.0)
            return get_activation("hard_tanh") if (lo, hi) == (-1.0, 1.0) else None
        return None

    def _scale(self, n: torch.fx.Node, args: tuple[Any, ...]) -> float | None:
        target: Any = n.target
        if n.op == "call_method":
            target = {
                "mul": operator.mul,
                "mul_": operator.mul,
                "div": operator.truediv,
                "neg": operator.neg,
            }.get(str(n.target), n.target)
        if target in (operator.neg, torch.neg):
            return -1.0
        if len(args) != 2:
            return None
        a, b = args
        if target in _MUL:
            other = b if isinstance(a, torch.Tensor) and a.dim() >= 1 and a.shape[0] == self.batch else a
            return _scalar(other)
        if target in _DIV and isinstance(a, torch.Tensor):
            value = _scalar(b)
            return None if value in (None, 0.0) else 1.0 / value  # type: ignore[operator]
        return None

    def _module(
        self,
        n: torch.fx.Node,
        module: nn.Module,
        args: tuple[Any, ...],
        inputs: tuple[int, ...],
        positions: tuple[int, ...],
        layout: str,
    ) -> GraphNode:
        label = f"{n.target} ({type(module).__name__})"
        x = args[0] if args else None
        if isinstance(module, LAYER_TYPES):
            sigma_w2, sigma_b2 = weight_variances(module)
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else ()
            if isinstance(module, nn.Linear):
                layer = ChainLayer(sigma_w2, sigma_b2, shape[1:-1])
            else:
                weight = module.weight.detach().to(torch.float64)
                taps = weight.square().mean(dim=(0, 1))
                total = float(taps.sum())
                profile = (
                    (taps / total).cpu().numpy()
                    if total > 0
                    else np.full(tuple(taps.shape), 1.0 / taps.numel())
                )
                layer = ChainLayer(sigma_w2, sigma_b2, shape[2:], profile, conv_geometry(module))
            return GraphNode("dense", inputs, positions, layer=layer, source=str(n.target))
        if isinstance(module, nn.Identity | nn.Flatten | nn.Unflatten):
            return GraphNode("pass", inputs, positions)
        activation = declared_activation(module)
        if activation is not None:
            return GraphNode("act", inputs, positions, activation=activation)
        if isinstance(module, DROPOUT_TYPES):
            if module.training:
                return GraphNode(
                    "opaque",
                    inputs,
                    positions,
                    reason=f"{label}: dropout in training mode (call model.eval())",
                )
            return GraphNode("pass", inputs, positions)
        if isinstance(module, _NORM_MODULES):
            return self._norm_module(module, inputs, positions, label, x, layout)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            reason = (
                f"{label}: BatchNorm normalises each feature with statistics over the batch (or running "
                "averages in eval mode), which couples the inputs; the per-input mean field does not cover it"
            )
            return GraphNode("opaque", inputs, positions, reason=reason)
        if isinstance(module, _ATTENTION):
            reason = f"{label}: attention mixes positions with data-dependent weights, not covered"
            return GraphNode("opaque", inputs, positions, reason=reason)
        if isinstance(module, POOL_TYPES):
            return GraphNode("opaque", inputs, positions, reason=f"{label}: pooling is not covered")
        return GraphNode(
            "opaque", inputs, positions, reason=f"{label} is not covered by the mean-field rules"
        )

    def _norm_module(
        self,
        module: nn.Module,
        inputs: tuple[int, ...],
        positions: tuple[int, ...],
        label: str,
        x: Any,
        layout: str,
    ) -> GraphNode:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else ()
        weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
        gamma2 = float(weight.detach().double().square().mean()) if weight is not None else 1.0
        beta2 = float(bias.detach().double().square().mean()) if bias is not None else 0.0
        if isinstance(module, nn.GroupNorm):
            if module.num_groups != 1:
                return GraphNode(
                    "opaque",
                    inputs,
                    positions,
                    reason=f"{label}: GroupNorm with {module.num_groups} groups is not covered",
                )
            spec = NormSpec(
                "layer", module.eps, gamma2, beta2, math.prod(shape[1:]), over_positions=len(shape) > 2
            )
            return GraphNode("norm", inputs, positions, norm=spec)
        normalized = tuple(module.normalized_shape)  # type: ignore[arg-type]
        kind = "layer" if isinstance(module, nn.LayerNorm) else "rms"
        module_eps: Any = getattr(module, "eps", None)
        if module_eps is None:  # RMSNorm(eps=None) uses the dtype's machine epsilon
            module_eps = torch.finfo(x.dtype).eps if isinstance(x, torch.Tensor) else 1e-6
        eps = float(module_eps)
        return self._norm_spec(
            kind, float(eps), gamma2, beta2, normalized, shape, inputs, positions, label, layout
        )

    def _norm_spec(
        self,
        kind: str,
        eps: float,
        gamma2: float,
        beta2: float,
        normalized: tuple[int, ...],
        shape: tuple[int, ...],
        inputs: tuple[int, ...],
        positions: tuple[int, ...],
        label: str,
        layout: str,
    ) -> GraphNode:
        if len(shape) == 2 or (layout == "last" and len(normalized) == 1):
            return GraphNode("norm", inputs, positions, norm=NormSpec(kind, eps, gamma2, beta2, shape[-1]))
        if len(shape) > 2 and normalized == shape[1:]:
            spec = NormSpec(kind, eps, gamma2, beta2, math.prod(shape[1:]), over_positions=True)
            return GraphNode("norm", inputs, positions, norm=spec)
        reason = f"{label}: normalising over {normalized} of a {shape} tensor is not covered"
        return GraphNode("opaque", inputs, positions, reason=reason)

    def _layer_norm_function(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        inputs: tuple[int, ...],
        positions: tuple[int, ...],
        label: str,
        result: torch.Tensor,
        layout: str,
    ) -> GraphNode:
        normalized = tuple(kwargs.get("normalized_shape", args[1] if len(args) > 1 else ()))
        weight = kwargs.get("weight", args[2] if len(args) > 2 else None)
        bias = kwargs.get("bias", args[3] if len(args) > 3 else None)
        eps = float(kwargs.get("eps", args[4] if len(args) > 4 else 1e-5))
        gamma2 = float(weight.detach().double().square().mean()) if isinstance(weight, torch.Tensor) else 1.0
        beta2 = float(bias.detach().double().square().mean()) if isinstance(bias, torch.Tensor) else 0.0
        return self._norm_spec(
            "layer", eps, gamma2, beta2, normalized, tuple(result.shape), inputs, positions, label, layout
        )


def measured_inputs(records: list[NodeRecord]) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """The measured maps of every recorded node and its squared gradient norm per input ``[nodes, inputs]``
    (NaN where none)."""
    maps = {r.index: (r.diag, r.cross) for r in records}
    batch = next((r.grad_sq.shape[0] for r in records if r.grad_sq is not None), 1)
    grads = np.stack([r.grad_sq if r.grad_sq is not None else np.full(batch, np.nan) for r in records])
    return maps, grads
