"""Local tests at a point W of ``L(W) = f(W_L ... W_1)``: descent directions that certify W is not a local
minimum, random-perturbation tests that support that it is, and a Clarke-stationarity measure for
non-differentiable f.

Every escape is verified on function values: a displacement direction D and steps ``t`` (shrinking
geometrically towards 0) with ``L(W + t D) < L(W)``. The searches, in order of cost:

- the negative gradient (a non-critical point);
- a Hessian eigenvector of negative curvature (a strict saddle);
- product chains: for layers i..j, rank-one perturbations ``E_i = a_i b^T, E_k = a_k a_{k-1}^T,
  E_j = c a_{j-1}^T`` move the product by ``t^{j-i+1} P_j c b^T Q_i`` at leading order; with (c, b) the
  top singular pair of ``M_ij = P_j^T grad f(A) Q_i^T`` this lowers f at order ``t^{j-i+1}``. This finds
  the degenerate saddles that no second-order test sees (Kawaguchi 2016: W = 0 at depth >= 3);
- perturbed descent: a small random perturbation followed by (sub)gradient steps with backtracking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize

from dltheory.deeplinear.objective import EndToEndObjective
from dltheory.deeplinear.product_map import (
    backward_products,
    end_to_end,
    flatten,
    layer_gradients,
    prefix_products,
    unflatten,
)


@dataclass
class Escape:
    """A verified descent: ``L(W + t D) < L(W)`` for every step in ``steps`` (decreases in
    ``decreases``); ``direction`` D has unit Frobenius norm over all layers."""

    method: str
    direction: list[np.ndarray]
    steps: list[float]
    decreases: list[float]

    @property
    def best_step(self) -> float:
        return self.steps[int(np.argmax(self.decreases))]

    @property
    def best_decrease(self) -> float:
        return float(max(self.decreases))

    @property
    def smallest_step(self) -> float:
        return float(min(self.steps))


@dataclass
class PerturbationTest:
    """Random perturbations ``W + r U`` (U uniform on the unit sphere of weight space) at each radius r:
    the smallest change ``L(W + r U) - L(W)`` seen over ``samples`` draws."""

    radii: list[float]
    min_change: list[float]
    samples: int
    descent: Escape | None = field(default=None)

    @property
    def passed(self) -> bool:
        return self.descent is None


def weights_loss(objective: EndToEndObjective, weights: Sequence[np.ndarray]) -> float:
    return float(objective.value(end_to_end(weights)))


def _normalise(direction: Sequence[np.ndarray]) -> list[np.ndarray] | None:
    norm = float(np.sqrt(sum(np.sum(d * d) for d in direction)))
    if not np.isfinite(norm) or norm == 0.0:
        return None
    return [d / norm for d in direction]


def scan_direction(
    objective: EndToEndObjective,
    weights: Sequence[np.ndarray],
    direction: Sequence[np.ndarray],
    base_value: float,
    *,
    radius: float,
    noise: float,
    method: str,
    halvings: int = 12,
    both_signs: bool = True,
) -> Escape | None:
    """Evaluate ``L(W + t D)`` for ``t = radius 2^-j`` (and ``-t``); an :class:`Escape` when some sign
    gives a decrease larger than ``noise`` (the list keeps every step of that sign that decreases)."""
    unit = _normalise(direction)
    if unit is None:
        return None
    best: Escape | None = None
    for sign in (1.0, -1.0) if both_signs else (1.0,):
        steps, decreases = [], []
        for j in range(halvings + 1):
            t = sign * radius * 0.5**j
            value = weights_loss(objective, [w + t * d for w, d in zip(weights, unit, strict=True)])
            if base_value - value > noise:
                steps.append(abs(t))
                decreases.append(base_value - value)
        if steps and (best is None or len(steps) > len(best.steps)):
            best = Escape(method, [sign * d for d in unit], steps, decreases)
    return best


def product_chain_escape(
    objective: EndToEndObjective,
    weights: Sequence[np.ndarray],
    G: np.ndarray,
    base_value: float,
    *,
    radius: float,
    noise: float,
    rng: np.random.Generator,
    tries: int = 2,
    max_blocks: int = 60,
) -> Escape | None:
    """Search the rank-one product chains over contiguous blocks of layers (shortest blocks first)."""
    L = len(weights)
    Q = prefix_products(weights)
    Z = backward_products(weights, G)
    scale = float(np.linalg.norm(G))
    blocks = sorted(((i, j) for i in range(L) for j in range(i + 1, L)), key=lambda b: (b[1] - b[0], b[0]))
    for i, j in blocks[:max_blocks]:
        Qi = Q[i]
        M = Z[j] if Qi is None else Z[j] @ Qi.T
        if np.linalg.norm(M) <= 1e-12 * max(scale, 1e-300):
            continue
        U, _, Vt = np.linalg.svd(M)
        c, b = U[:, 0], -Vt[0]
        for _ in range(tries):
            direction = [np.zeros_like(w) for w in weights]
            previous = b
            for k in range(i, j):
                a = np.asarray(rng.normal(size=weights[k].shape[0]))
                a = a / np.linalg.norm(a)
                direction[k] = np.outer(a, previous)
                previous = a
            direction[j] = np.outer(c, previous)
            escape = scan_direction(
                objective,
                weights,
                direction,
                base_value,
                radius=radius,
                noise=noise,
                method=f"product chain over layers {i + 1}..{j + 1} (order {j - i + 1} in the step)",
            )
            if escape is not None:
                return escape
    return None


def _descent_run(
    objective: EndToEndObjective,
    weights: list[np.ndarray],
    start: list[np.ndarray],
    *,
    radius: float,
    steps: int,
) -> list[np.ndarray]:
    """(Sub)gradient descent with backtracking from ``start``, kept inside the ball of ``radius`` around
    ``weights``; returns the last iterate."""
    current = start
    value = weights_loss(objective, current)
    lr = 1.0
    for _ in range(steps):
        grads = layer_gradients(current, objective.gradient(end_to_end(current)))
        gnorm2 = float(sum(np.sum(g * g) for g in grads))
        if gnorm2 == 0.0:
            break
        while lr > 1e-14:
            trial = [w - lr * g for w, g in zip(current, grads, strict=True)]
            dist = float(np.sqrt(sum(np.sum((t - w) ** 2) for t, w in zip(trial, weights, strict=True))))
            trial_value = weights_loss(objective, trial)
            if dist <= radius and trial_value < value:
                current, value = trial, trial_value
                lr *= 2.0
                break
            lr *= 0.5
        else:
            break
    return current


def perturbed_descent_escape(
    objective: EndToEndObjective,
    weights: Sequence[np.ndarray],
    base_value: float,
    *,
    radius: float,
    noise: float,
    rng: np.random.Generator,
    trials: int = 3,
    steps: int = 60,
) -> Escape | None:
    """Perturb by ``radius/10`` in a random direction, run descent inside the ball of ``radius``, and
    verify the displacement found by a scan along it."""
    weights = list(weights)
    for _ in range(trials):
        noise_dir = _normalise([rng.normal(size=w.shape) for w in weights])
        assert noise_dir is not None
        start = [w + 0.1 * radius * d for w, d in zip(weights, noise_dir, strict=True)]
        end = _descent_run(objective, weights, start, radius=radius, steps=steps)
        displacement = [e - w for e, w in zip(end, weights, strict=True)]
        size = float(np.sqrt(sum(np.sum(d * d) for d in displacement)))
        if size == 0.0 or weights_loss(objective, end) >= base_value - noise:
            continue
        escape = scan_direction(
            objective,
            weights,
            displacement,
            base_value,
            radius=size,
            noise=noise,
            method="random perturbation followed by descent",
            both_signs=False,
        )
        if escape is not None:
            return escape
    return None


def random_perturbation_test(
    objective: EndToEndObjective,
    weights: Sequence[np.ndarray],
    base_value: float,
    *,
    radii: Sequence[float],
    samples: int,
    noise: float,
    rng: np.random.Generator,
) -> PerturbationTest:
    """Evidence for local minimality: ``L(W + r U) >= L(W) - noise`` for random unit U at each radius.

    A passed test is evidence, not proof (a descent cone of small measure can be missed); a failed one
    returns the descent it found.
    """
    min_change = []
    descent = None
    for r in radii:
        worst = float("inf")
        for _ in range(samples):
            direction = _normalise([rng.normal(size=w.shape) for w in weights])
            assert direction is not None
            value = weights_loss(objective, [w + r * d for w, d in zip(weights, direction, strict=True)])
            change = float(value - base_value)
            if change < worst:
                worst = change
                if change < -noise and descent is None:
                    descent = scan_direction(
                        objective,
                        weights,
                        direction,
                        base_value,
                        radius=r,
                        noise=noise,
                        method="random perturbation",
                        both_signs=False,
                    )
        min_change.append(float(worst))
    return PerturbationTest([float(r) for r in radii], min_change, samples, descent)


def sampled_stationarity(
    objective: EndToEndObjective,
    weights: Sequence[np.ndarray],
    *,
    radius: float,
    samples: int,
    rng: np.random.Generator,
) -> tuple[float, list[np.ndarray]]:
    """Gradient sampling (Burke, Lewis & Overton 2005): the norm of the smallest element of the convex hull
    of gradients at W and at ``samples`` points uniformly drawn from the ball of ``radius`` around W,
    an estimate of ``dist(0, Clarke epsilon-subdifferential)``; returns it and the element's negative
    (a descent direction for the ball when the norm is not ~0)."""
    shapes = [w.shape for w in weights]
    rows = [flatten(layer_gradients(weights, objective.gradient(end_to_end(weights))))]
    size = rows[0].size
    for _ in range(samples):
        u = rng.normal(size=size)
        u *= radius * rng.random() ** (1.0 / size) / np.linalg.norm(u)
        point = [w + d for w, d in zip(weights, unflatten(u, shapes), strict=True)]
        rows.append(flatten(layer_gradients(point, objective.gradient(end_to_end(point)))))
    grads = np.array(rows)
    gram = grads @ grads.T
    eigval, eigvec = np.linalg.eigh(gram)
    root = (eigvec * np.sqrt(np.clip(eigval, 0.0, None))).T
    weight = 1e3 * max(float(np.sqrt(np.max(np.diag(gram)))), 1e-300)
    system = np.vstack([root, weight * np.ones((1, len(rows)))])
    rhs = np.concatenate([np.zeros(len(rows)), [weight]])
    lam, _ = scipy.optimize.nnls(system, rhs, maxiter=50 * len(rows))
    lam = lam / lam.sum()
    element = lam @ grads
    return float(np.linalg.norm(element)), unflatten(-element, shapes)
