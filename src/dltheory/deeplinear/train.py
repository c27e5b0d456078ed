"""Random restarts of gradient descent on deep linear networks ``L(W) = f(W_L ... W_1)``.

All restarts run at once (weights carry a leading restart axis; every product is a batched ``matmul``).
Each restart keeps its own step size: a step is accepted when it satisfies the Armijo condition
``L(W - lr g) <= L(W) - 1e-4 lr ||g||^2`` (then the step size grows by 1.2), otherwise it is halved.
A restart stops when its gradient norm falls below ``grad_tol * max(1, |L|)`` ("converged", the
tolerance of :func:`dltheory.deeplinear.analyze`) or its step size underflows ("stalled", e.g. at a
kink of a non-smooth loss). ``polish=True`` finishes smooth problems with L-BFGS on the weights, which
reaches tight criticality in far fewer steps than gradient descent; both only ever move downhill.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize

from dltheory.core.validation import check_int, check_positive
from dltheory.deeplinear.objective import EndToEndObjective, make_objective
from dltheory.deeplinear.product_map import end_to_end, flatten, layer_gradients, unflatten


@dataclass
class TrainResult:
    """Per restart: final weights (first layer first), loss, gradient norm, steps taken and status
    ("converged", "stalled" or "max_steps"); ``history[r]`` is the loss every ``record_every`` steps."""

    weights: list[list[np.ndarray]]
    losses: np.ndarray
    gradient_norms: np.ndarray
    steps: np.ndarray
    status: list[str]
    history: np.ndarray
    objective: EndToEndObjective

    @property
    def converged(self) -> np.ndarray:
        return np.array([s == "converged" for s in self.status])


def init_weights(
    widths: Sequence[int], restarts: int, rng: np.random.Generator, scale: float = 1.0
) -> list[np.ndarray]:
    """Gaussian weights ``N(0, scale^2 / d_{k-1})`` for ``restarts`` networks (leading axis)."""
    return [
        rng.normal(scale=scale / np.sqrt(widths[k]), size=(restarts, widths[k + 1], widths[k]))
        for k in range(len(widths) - 1)
    ]


def _loss_and_grads(
    objective: EndToEndObjective, weights: list[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    A = end_to_end(weights)
    return np.asarray(objective.value(A)), layer_gradients(weights, objective.gradient(A))


def train(
    widths: Sequence[int],
    loss: Any,
    X: Any = None,
    Y: Any = None,
    *,
    restarts: int = 10,
    steps: int = 5000,
    lr: float = 0.1,
    init_scale: float = 1.0,
    init: Sequence[Sequence[np.ndarray]] | None = None,
    grad_tol: float = 1e-7,
    polish: bool = False,
    l2: float = 0.0,
    loss_params: Mapping[str, Any] | None = None,
    differentiable: bool | None = None,
    convex: bool | None = None,
    record_every: int = 50,
    seed: int = 0,
) -> TrainResult:
    """Train ``restarts`` networks with widths ``(d_0, ..., d_L)`` from independent Gaussian inits
    (``init``: explicit starting weights per restart instead) by gradient descent with per-restart
    backtracking; ``loss``, ``X``, ``Y``, ``l2``, ``loss_params``, ``differentiable``, ``convex`` as in
    :func:`dltheory.deeplinear.analyze`."""
    dims = [check_int(f"widths[{k}]", int(w), minimum=1) for k, w in enumerate(widths)]
    if len(dims) < 2:
        raise ValueError(f"widths must list at least input and output width, got {list(widths)}")
    check_int("restarts", restarts, minimum=1)
    check_int("steps", steps, minimum=0)
    check_int("record_every", record_every, minimum=1)
    check_positive("lr", lr)
    check_positive("grad_tol", grad_tol)
    objective = make_objective(
        loss,
        X,
        Y,
        (dims[-1], dims[0]),
        l2=l2,
        differentiable=differentiable,
        convex=convex,
        **dict(loss_params or {}),
    )
    rng = np.random.default_rng(seed)
    if init is None:
        W = init_weights(dims, restarts, rng, init_scale)
    else:
        if len(init) != restarts:
            raise ValueError(f"init must hold {restarts} weight lists (one per restart), got {len(init)}")
        W = [np.stack([np.asarray(ws[k], dtype=np.float64) for ws in init]) for k in range(len(dims) - 1)]
        for k, w in enumerate(W):
            if w.shape[1:] != (dims[k + 1], dims[k]):
                raise ValueError(
                    f"init weights of layer {k} have shape {w.shape[1:]}, the widths need "
                    f"{(dims[k + 1], dims[k])}"
                )

    rate = np.full(restarts, float(lr))
    active = np.ones(restarts, dtype=bool)
    status = ["max_steps"] * restarts
    taken = np.zeros(restarts, dtype=np.int64)
    value, grads = _loss_and_grads(objective, W)
    history = [value.copy()]
    for step in range(steps):
        gnorm2 = sum(np.sum(g * g, axis=(-2, -1)) for g in grads)
        tol = grad_tol * np.maximum(1.0, np.abs(value))
        done = active & (np.sqrt(gnorm2) <= tol)
        stalled = active & (rate < 1e-14)
        for index in np.flatnonzero(done | stalled):
            status[int(index)] = "converged" if done[index] else "stalled"
        active &= ~(done | stalled)
        if not active.any():
            break
        step_size = np.where(active, rate, 0.0)[:, None, None]
        trial = [w - step_size * g for w, g in zip(W, grads, strict=True)]
        trial_value = np.asarray(objective.value(end_to_end(trial)))
        accept = active & (trial_value <= value - 1e-4 * rate * gnorm2)
        rate = np.where(accept, rate * 1.2, np.where(active, rate * 0.5, rate))
        mask = accept[:, None, None]
        W = [np.where(mask, t, w) for t, w in zip(trial, W, strict=True)]
        taken += accept
        if accept.any():
            value, grads = _loss_and_grads(objective, W)
        if (step + 1) % record_every == 0:
            history.append(value.copy())

    weights = [[np.array(w[r]) for w in W] for r in range(restarts)]
    if polish and objective.differentiable:
        for r in range(restarts):
            weights[r] = _polish(objective, weights[r], grad_tol)
    final_values = np.array([float(objective.value(end_to_end(ws))) for ws in weights])
    final_norms = np.array(
        [
            float(np.linalg.norm(flatten(layer_gradients(ws, objective.gradient(end_to_end(ws))))))
            for ws in weights
        ]
    )
    for r in range(restarts):
        if final_norms[r] <= grad_tol * max(1.0, abs(final_values[r])):
            status[r] = "converged"
    return TrainResult(weights, final_values, final_norms, taken, status, np.array(history).T, objective)


def _polish(objective: EndToEndObjective, weights: list[np.ndarray], grad_tol: float) -> list[np.ndarray]:
    """L-BFGS on the flattened weights until the gradient norm is below ``grad_tol * max(1, |L|) / 10``."""
    shapes = [w.shape for w in weights]

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        ws = unflatten(x, shapes)
        A = end_to_end(ws)
        return float(objective.value(A)), flatten(layer_gradients(ws, objective.gradient(A)))

    x0 = flatten(weights)
    start_value = fun(x0)[0]
    target = 0.1 * grad_tol * max(1.0, abs(start_value)) / np.sqrt(x0.size)
    options = {"maxiter": 5000, "maxcor": 20, "ftol": 1e-16, "gtol": target}
    result = scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", options=options)
    return unflatten(result.x, shapes) if result.fun <= start_value else weights
