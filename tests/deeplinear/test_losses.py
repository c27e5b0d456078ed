"""Loss objects: gradients and Hessian-vector products against finite differences, convexity and the
subgradient inequality on random points, flags, and errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

from dltheory.deeplinear.losses import LOSS_NAMES, make_loss

N, K = 7, 3


def _targets(name: str, rng: np.random.Generator, k: int = K) -> np.ndarray:
    if name in ("cross_entropy", "hinge") and k > 1:
        return rng.integers(0, k, N)
    if name in ("logistic", "hinge"):
        return rng.choice([-1.0, 1.0], N)
    return rng.normal(size=(N, k))


CASES = [
    ("squared", {}, K),
    ("lp", {"p": 4.0}, K),
    ("lp", {"p": 3.0}, K),
    ("huber", {"delta": 0.7}, K),
    ("cross_entropy", {}, K),
    ("logistic", {}, 1),
    ("hinge", {}, 1),
    ("hinge", {}, K),
    ("l1", {}, K),
]


@pytest.mark.parametrize(("name", "params", "k"), CASES)
def test_gradient_matches_finite_differences(name, params, k):
    rng = np.random.default_rng(0)
    loss = make_loss(name, **params)
    T = loss.prepare_targets(_targets(name, rng, k), N, k)
    P = 2.0 * rng.normal(size=(N, k))
    dP = rng.normal(size=(N, k))
    h = 1e-6
    numeric = (loss.value(P + h * dP, T) - loss.value(P - h * dP, T)) / (2 * h)
    analytic = np.sum(loss.gradient(P, T) * dP)
    # random points are almost surely away from the kinks of hinge and l1
    assert numeric == pytest.approx(analytic, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(("name", "params", "k"), [c for c in CASES if c[0] not in ("hinge", "l1")])
def test_hessian_vector_matches_finite_differences_of_gradient(name, params, k):
    rng = np.random.default_rng(1)
    loss = make_loss(name, **params)
    T = loss.prepare_targets(_targets(name, rng, k), N, k)
    P = 2.0 * rng.normal(size=(N, k))
    dP = rng.normal(size=(N, k))
    h = 1e-6
    numeric = (loss.gradient(P + h * dP, T) - loss.gradient(P - h * dP, T)) / (2 * h)
    np.testing.assert_allclose(loss.hessian_vector(P, T, dP), numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(("name", "params", "k"), CASES)
def test_convexity_and_subgradient_inequality(name, params, k):
    """f(Q) >= f(P) + <g(P), Q - P> for every (sub)gradient g: convexity checked on random pairs."""
    rng = np.random.default_rng(2)
    loss = make_loss(name, **params)
    assert loss.convex
    T = loss.prepare_targets(_targets(name, rng, k), N, k)
    for _ in range(50):
        P, Q = 3.0 * rng.normal(size=(2, N, k))
        lhs = loss.value(Q, T)
        rhs = loss.value(P, T) + np.sum(loss.gradient(P, T) * (Q - P))
        assert lhs >= rhs - 1e-12


def test_value_matches_direct_formulas():
    rng = np.random.default_rng(3)
    P = rng.normal(size=(N, K))
    Y = rng.normal(size=(N, K))
    labels = rng.integers(0, K, N)
    assert make_loss("squared").value(P, Y) == pytest.approx(0.5 * np.mean(np.sum((P - Y) ** 2, axis=1)))
    assert make_loss("l1").value(P, Y) == pytest.approx(np.mean(np.sum(np.abs(P - Y), axis=1)))
    ce = make_loss("cross_entropy")
    direct = np.mean([np.log(np.sum(np.exp(P[i]))) - P[i, labels[i]] for i in range(N)])
    assert ce.value(P, ce.prepare_targets(labels, N, K)) == pytest.approx(direct)
    hinge = make_loss("hinge")
    direct = np.mean(
        [max(0.0, 1.0 + max(P[i, j] for j in range(K) if j != labels[i]) - P[i, labels[i]]) for i in range(N)]
    )
    assert hinge.value(P, hinge.prepare_targets(labels, N, K)) == pytest.approx(direct)


def test_batched_values_match_loop():
    rng = np.random.default_rng(4)
    loss = make_loss("huber", delta=0.3)
    T = rng.normal(size=(N, K))
    P = rng.normal(size=(5, N, K))
    batched = loss.value(P, T)
    assert batched.shape == (5,)
    np.testing.assert_allclose(batched, [loss.value(p, T) for p in P])


def test_flags():
    assert not make_loss("hinge").differentiable
    assert not make_loss("l1").differentiable
    assert make_loss("huber").differentiable and not make_loss("huber").twice_differentiable
    assert make_loss("lp", p=4).twice_differentiable
    assert not make_loss("lp", p=1.5).twice_differentiable
    assert set(LOSS_NAMES) == {"squared", "lp", "cross_entropy", "logistic", "huber", "hinge", "l1"}


def test_bad_input_errors():
    with pytest.raises(ValueError, match="loss must be one of"):
        make_loss("mse")
    with pytest.raises(ValueError, match="p must be > 1"):
        make_loss("lp", p=1.0)
    with pytest.raises(ValueError, match="delta must be > 0"):
        make_loss("huber", delta=0.0)
    with pytest.raises(ValueError, match="takes parameters"):
        make_loss("squared", p=2)
    with pytest.raises(ValueError, match="integers in"):
        make_loss("cross_entropy").prepare_targets(np.array([0, 3]), 2, 3)
    with pytest.raises(ValueError, match="1 output"):
        make_loss("logistic").prepare_targets(np.array([0, 1]), 2, 2)
    with pytest.raises(ValueError, match=r"\{0, 1\} or \{-1, \+1\}"):
        make_loss("logistic").prepare_targets(np.array([0.0, 2.0]), 2, 1)
    with pytest.raises(ValueError, match=r"shape \(4, 2\)"):
        make_loss("squared").prepare_targets(np.zeros((3, 2)), 4, 2)
    with pytest.raises(ValueError, match="no Hessian"):
        make_loss("l1").hessian_vector(np.zeros((2, 1)), np.zeros((2, 1)), np.zeros((2, 1)))
