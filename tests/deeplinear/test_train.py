"""Random-restart gradient descent: monotone decrease, agreement of the batched run with single runs,
convergence of wide networks to the least-squares optimum (computed here by numpy lstsq), errors."""

from __future__ import annotations

import numpy as np
import pytest

from dltheory.deeplinear import analyze, train
from dltheory.deeplinear.train import init_weights


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 5))
    Y = X @ rng.normal(size=(5, 3)) + 0.3 * rng.normal(size=(60, 3))
    return X, Y


def test_loss_never_increases_and_wide_nets_reach_the_least_squares_optimum():
    X, Y = _data()
    result = train((5, 6, 6, 3), "squared", X, Y, restarts=4, steps=3000, lr=0.05, polish=True, seed=1)
    assert np.all(np.diff(result.history, axis=1) <= 1e-12)
    A_ls = np.linalg.lstsq(X, Y, rcond=None)[0].T
    optimum = 0.5 * np.mean(np.sum((X @ A_ls.T - Y) ** 2, axis=1))
    np.testing.assert_allclose(result.losses, optimum, rtol=1e-10)
    assert result.converged.all()
    for weights in result.weights:
        assert analyze(weights, "squared", X, Y).verdict == "global_minimum"


def test_batched_restarts_equal_single_runs():
    X, Y = _data(1)
    starts = init_weights((5, 4, 3), 3, np.random.default_rng(2))
    init = [[w[r] for w in starts] for r in range(3)]
    batched = train((5, 4, 3), "huber", X, Y, restarts=3, steps=200, init=init, loss_params={"delta": 0.5})
    for r in range(3):
        single = train(
            (5, 4, 3), "huber", X, Y, restarts=1, steps=200, init=[init[r]], loss_params={"delta": 0.5}
        )
        assert single.losses[0] == pytest.approx(batched.losses[r], rel=1e-12)
        for a, b in zip(single.weights[0], batched.weights[r], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_non_smooth_callable_stalls_or_converges():
    from dltheory.deeplinear import counterexample_function

    result = train((1, 1, 2), counterexample_function(), restarts=6, steps=2000, seed=3)
    assert set(result.status) <= {"converged", "stalled", "max_steps"}
    assert np.all(result.losses >= -1.0 - 1e-12)
    assert np.all(np.diff(result.history, axis=1) <= 1e-12)


def test_bad_input_errors():
    X, Y = _data()
    with pytest.raises(ValueError, match="at least input and output"):
        train((5,), "squared", X, Y)
    with pytest.raises(ValueError, match=r"X must have shape \(n, 4\)"):
        train((4, 3), "squared", X, Y)
    with pytest.raises(ValueError, match="restarts must be an integer >= 1"):
        train((5, 3), "squared", X, Y, restarts=0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        train((5, 3), "squared", X, Y, lr=-1.0)
    with pytest.raises(ValueError, match="init must hold 2"):
        train((5, 3), "squared", X, Y, restarts=2, init=[[np.zeros((3, 5))]])
    with pytest.raises(ValueError, match="init weights of layer 0"):
        train((5, 3), "squared", X, Y, restarts=1, init=[[np.zeros((3, 4))]])
