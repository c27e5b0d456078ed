"""Recording a model's forward and backward pass for :func:`dltheory.diagnose` (hooks on modules).

Forward hooks on every leaf module note the order in which modules run. On every ``nn.Linear`` and
``nn.Conv1d/2d/3d`` (the "layers") they also measure, at once (before any in-place op can change the
tensors):

- per input ``b`` the mean squared pre-activation ``q_b = |h_b|^2 / n`` (n units of the layer, all channels
  and positions), and for each chosen pair of inputs ``(a, b)`` the correlation
  ``c_ab = <h_a, h_b> / (|h_a| |h_b|)`` (the finite-width q^l and c^l of Poole et al. 2016);
- the layer's input statistics per spatial position, averaged over channels (``E_i[x_{b,i}(p)^2]`` and
  ``E_i[x_{a,i}(p) x_{b,i}(p)]``): where a mean-field prediction starts;
- a fixed subsample of the input and output values, from which consecutive layers are tested for being
  joined by an elementwise activation (:func:`analyse_links`).

A tensor hook on each layer output records, during the backward pass, the squared norm of the gradient
with respect to the pre-activation for every input, ``|g_b^l|^2``. Hooks registered before an in-place op
(``nn.ReLU(inplace=True)``) receive the gradient of the value before that op, i.e. of the pre-activation.
"""

from __future__ import annotations

import bisect
import math
import operator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dltheory.core.activations import Activation, get_activation

if TYPE_CHECKING:
    from dltheory.nn.diagnose._graph import TracedModel

LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
SHAPE_ONLY_TYPES = (nn.Identity, nn.Flatten, nn.Unflatten)
DROPOUT_TYPES = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.RMSNorm,
)
POOL_TYPES = (
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.modules.pooling._LPPoolNd,
)
SUBSAMPLE = 4096
_EMPTY = torch.zeros(0, dtype=torch.float64)
_NONE = np.zeros(0)
_MATCH_RTOL = 1e-4
_MATCH_ATOL = 1e-6

#: elementwise torch functions of the activations the mean-field code knows, tried in this order
_CANDIDATES: dict[str, Any] = {
    "linear": lambda h: h,
    "relu": torch.relu,
    "tanh": torch.tanh,
    "hard_tanh": F.hardtanh,
    "sigmoid": torch.sigmoid,
    "erf": torch.erf,
    "gelu": F.gelu,
    "silu": F.silu,
    "selu": F.selu,
}


# ------------------------------------------------------------------------------------ records


@dataclass
class LayerTrace:
    """What the hooks measured on one execution of a layer (see the module docstring)."""

    index: int
    name: str
    module: nn.Module
    position: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    q_samples: np.ndarray
    c_pairs: np.ndarray
    input_q_map: np.ndarray
    input_pair_map: np.ndarray
    input_sub: torch.Tensor
    output_sub: torch.Tensor
    input_numel: int
    output_numel: int
    grad_sq: np.ndarray | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({type(self.module).__name__})"

    @property
    def kind(self) -> str:
        if isinstance(self.module, nn.Linear):
            return "linear"
        return f"conv{len(self.input_shape) - 2}d"


@dataclass(frozen=True)
class LeafCall:
    """One execution of a leaf module that is not a layer."""

    position: int
    name: str
    module: nn.Module


@dataclass
class Link:
    """How layer ``index`` feeds layer ``index + 1``: through a known elementwise activation (``covered``)
    or not, with the reason."""

    index: int
    covered: bool
    activation: Activation | None
    reason: str
    kind: str
    between: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------ statistics


@lru_cache(maxsize=64)
def _sub_index(numel: int) -> torch.Tensor:
    """At most :data:`SUBSAMPLE` evenly spread flat indices (the same ones for tensors of equal size)."""
    return torch.from_numpy(np.linspace(0, numel - 1, min(numel, SUBSAMPLE)).round().astype(np.int64))


def subsample(t: torch.Tensor) -> torch.Tensor:
    flat = t.detach().reshape(-1)
    return flat[_sub_index(flat.numel()).to(flat.device)].to(torch.float64).cpu()


def _feature_dim(module: nn.Module, x: torch.Tensor) -> int:
    """The channel / feature axis: -1 for Linear, 1 for convolutions."""
    return -1 if isinstance(module, nn.Linear) else 1


def _position_maps(
    x: torch.Tensor, feature_dim: int, pair_a: torch.Tensor, pair_b: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """(E_i[x_b,i(p)^2] per input and position, E_i[x_a,i(p) x_b,i(p)] per pair and position)."""
    xd = x.detach().to(torch.float64)
    diag = xd.square().mean(dim=feature_dim)
    cross = (xd[pair_a] * xd[pair_b]).mean(dim=feature_dim)
    return diag.cpu().numpy(), cross.cpu().numpy()


def _output_stats(
    h: torch.Tensor, pair_a: torch.Tensor, pair_b: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    flat = h.detach().reshape(h.shape[0], -1)  # products in the tensor's dtype, sums in float64
    sq = flat.square().sum(dim=1, dtype=torch.float64)
    q = sq / flat.shape[1]
    dots = (flat[pair_a] * flat[pair_b]).sum(dim=1, dtype=torch.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (dots / torch.sqrt(sq[pair_a] * sq[pair_b])).cpu().numpy()
    return q.cpu().numpy(), c


class Recorder:
    """Installs the hooks on ``model``; :attr:`layers` and :attr:`leaves` fill up during a forward pass."""

    def __init__(
        self, model: nn.Module, batch: int, pair_a: torch.Tensor, pair_b: torch.Tensor, *, light: bool = False
    ):
        self.model = model
        self.batch = batch
        self.pair_a, self.pair_b = pair_a, pair_b
        self.light = light  # graph mode: only which layers ran (the graph recorder measures the tensors)
        self.layers: list[LayerTrace] = []
        self.leaves: list[LeafCall] = []
        self.skipped: list[str] = []
        self._position = 0
        self._calls: dict[str, int] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> Recorder:
        for name, module in self.model.named_modules():
            label = name or type(module).__name__
            if isinstance(module, LAYER_TYPES):
                self._handles.append(module.register_forward_hook(self._layer_hook(label)))
            elif not any(True for _ in module.children()):
                self._handles.append(module.register_forward_hook(self._leaf_hook(label)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _next_position(self) -> int:
        self._position += 1
        return self._position

    def _leaf_hook(self, name: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            self.leaves.append(LeafCall(self._next_position(), name, module))

        return hook

    def _layer_hook(self, name: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            position = self._next_position()
            calls = self._calls.get(name, 0) + 1
            self._calls[name] = calls
            label = name if calls == 1 else f"{name}#{calls}"
            x = inputs[0] if inputs else None
            if not isinstance(x, torch.Tensor) or not isinstance(output, torch.Tensor):
                self.skipped.append(f"{label}: input or output is not a tensor")
                return
            if x.dim() < 2 or x.shape[0] != self.batch or output.shape[0] != self.batch:
                self.skipped.append(
                    f"{label}: input shape {tuple(x.shape)} has no leading batch dimension of size "
                    f"{self.batch}"
                )
                return
            if self.light:  # the graph recorder measures these tensors; fill_from_graph copies them in
                q, c, q_map, pair_map = _NONE, _NONE, _NONE, _NONE
            else:
                q, c = _output_stats(output, self.pair_a, self.pair_b)
                q_map, pair_map = _position_maps(x, _feature_dim(module, x), self.pair_a, self.pair_b)
            trace = LayerTrace(
                index=len(self.layers),
                name=label,
                module=module,
                position=position,
                input_shape=tuple(x.shape),
                output_shape=tuple(output.shape),
                q_samples=q,
                c_pairs=c,
                input_q_map=q_map,
                input_pair_map=pair_map,
                input_sub=_EMPTY if self.light else subsample(x),
                output_sub=_EMPTY if self.light else subsample(output),
                input_numel=x.numel(),
                output_numel=output.numel(),
            )
            self.layers.append(trace)
            if output.requires_grad and not self.light:
                output.register_hook(self._grad_hook(trace))

        return hook

    @staticmethod
    def _grad_hook(trace: LayerTrace):  # type: ignore[no-untyped-def]
        def hook(grad: torch.Tensor) -> None:
            flat = grad.detach().reshape(grad.shape[0], -1).to(torch.float64)
            trace.grad_sq = flat.square().sum(dim=1).cpu().numpy()

        return hook


# ------------------------------------------------------------------------------------ links


def declared_activation(module: nn.Module) -> Activation | None:
    """The registry activation a torch module computes, or None if dltheory does not know it."""
    if isinstance(module, nn.Tanh):
        return get_activation("tanh")
    if isinstance(module, nn.ReLU):
        return get_activation("relu")
    if isinstance(module, nn.LeakyReLU):
        return get_activation("leaky_relu", slope=float(module.negative_slope))
    if isinstance(module, nn.Sigmoid):
        return get_activation("sigmoid")
    if isinstance(module, nn.SELU):
        return get_activation("selu")
    if isinstance(module, nn.GELU) and module.approximate == "none":
        return get_activation("gelu")
    if isinstance(module, nn.SiLU):
        return get_activation("silu")
    if isinstance(module, nn.Hardtanh) and not isinstance(module, nn.ReLU6):
        if module.min_val == -1.0 and module.max_val == 1.0:
            return get_activation("hard_tanh")
    if isinstance(module, nn.Identity):
        return get_activation("linear")
    return None


def _torch_fn(activation: Activation) -> Any:
    if activation.name == "leaky_relu":
        slope = activation.params["slope"]
        return lambda h: F.leaky_relu(h, slope)
    return _CANDIDATES[activation.name]


def _matches(fn: Any, h: torch.Tensor, x: torch.Tensor) -> bool:
    scale = float(torch.nan_to_num(x.abs(), posinf=0.0).max()) if x.numel() else 0.0
    return bool(
        torch.allclose(fn(h), x, rtol=_MATCH_RTOL, atol=_MATCH_ATOL * max(1.0, scale), equal_nan=True)
    )


def _leaky_slope(h: torch.Tensor, x: torch.Tensor) -> float | None:
    negative = h < -1e-6
    if int(negative.sum()) < 3:
        return None
    slope = float(torch.median(x[negative] / h[negative]))
    return slope if math.isfinite(slope) and 0.0 < abs(slope) < 1.0 else None


def identify_activation(h: torch.Tensor, x: torch.Tensor, declared: Activation | None) -> Activation | None:
    """The known activation phi with ``x = phi(h)`` elementwise on the subsample, or None. A module's
    declared activation is tried first (it resolves look-alikes such as hard tanh on |h| < 1)."""
    if declared is not None and _matches(_torch_fn(declared), h, x):
        return declared
    for name, fn in _CANDIDATES.items():
        if _matches(fn, h, x):
            return get_activation(name)
    slope = _leaky_slope(h, x)
    if slope is not None:
        leaky = get_activation("leaky_relu", slope=slope)
        if _matches(_torch_fn(leaky), h, x):
            return leaky
    return None


def _describe(call: LeafCall) -> str:
    return f"{call.name} ({type(call.module).__name__})"


def analyse_links(layers: list[LayerTrace], leaves: list[LeafCall]) -> list[Link]:
    """For each pair of consecutive layers, whether the second one's input is a known elementwise
    activation of the first one's output (then the mean-field maps apply to that link) and, if not, why."""
    links = []
    positions = [call.position for call in leaves]  # increasing: the order the hooks fired in
    for a, b in zip(layers, layers[1:], strict=False):
        between = leaves[
            bisect.bisect_right(positions, a.position) : bisect.bisect_left(positions, b.position)
        ]
        names = [_describe(call) for call in between]
        norms = [call for call in between if isinstance(call.module, NORM_TYPES)]
        if norms:
            reason = (
                f"normalisation {', '.join(_describe(c) for c in norms)} between {a.label} and {b.label}: "
                "it rescales every layer, the mean-field maps of vanilla networks do not apply"
            )
            links.append(Link(a.index, False, None, reason, "normalisation", names))
            continue
        if a.output_numel != b.input_numel:
            pools = [call for call in between if isinstance(call.module, POOL_TYPES)]
            what = f"pooling {', '.join(_describe(c) for c in pools)}" if pools else "a shape-changing op"
            reason = (
                f"{b.label} does not take {a.label}'s output elementwise ({what}; {a.output_numel} values "
                f"in, {b.input_numel} out): not covered by the mean-field chain"
            )
            links.append(Link(a.index, False, None, reason, "pooling" if pools else "structure", names))
            continue
        activations = [
            call for call in between if not isinstance(call.module, SHAPE_ONLY_TYPES + DROPOUT_TYPES)
        ]
        declared = declared_activation(activations[-1].module) if len(activations) == 1 else None
        found = identify_activation(a.output_sub, b.input_sub, declared)
        if found is not None:
            links.append(Link(a.index, True, found, f"{found.name} activation", "activation", names))
            continue
        unknown = [call for call in activations if declared_activation(call.module) is None]
        dropout = [c for c in between if isinstance(c.module, DROPOUT_TYPES) and c.module.training]
        if unknown:
            reason = (
                f"unknown activation {', '.join(_describe(c) for c in unknown)} between {a.label} and "
                f"{b.label}: measured, not predicted"
            )
            kind = "unknown-activation"
        elif dropout:
            reason = (
                f"dropout in training mode {', '.join(_describe(c) for c in dropout)}: call model.eval() "
                "before diagnosing"
            )
            kind = "dropout"
        else:
            reason = (
                f"the input of {b.label} is not an elementwise activation of {a.label}'s output (a skip "
                "connection or another functional op joins them): not covered by the mean-field chain"
            )
            kind = "structure"
        links.append(Link(a.index, False, None, reason, kind, names))
    return links


# ------------------------------------------------------------------------------------ structure


_ADD_TARGETS = (operator.add, operator.iadd, torch.add)


def skip_connections(graph_module: TracedModel | None) -> list[str] | None:
    """Names of tensor-tensor additions and concatenations in a ``torch.fx`` graph (skip connections), or
    None when there is no graph (the model could not be traced symbolically)."""
    if graph_module is None:
        return None
    found = []
    for node in graph_module.graph.nodes:
        tensor_args = [arg for arg in node.args if isinstance(arg, torch.fx.Node)]
        if node.op == "call_function" and node.target in _ADD_TARGETS and len(tensor_args) >= 2:
            found.append(f"add {node.name}")
        elif node.op == "call_method" and node.target in ("add", "add_") and len(tensor_args) >= 2:
            found.append(f"add {node.name}")
        elif node.op == "call_function" and node.target is torch.cat:
            found.append(f"concatenation {node.name}")
    return found
