import json
import math

import pytest
import torch

from dltheory.runner.runs import RunDir
from dltheory.runner.train import EpochSampler, accuracy_evaluator, train


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 10, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return x, y


def _setup(lr=0.1):
    torch.manual_seed(123)
    model = torch.nn.Sequential(
        torch.nn.Linear(10, 16), torch.nn.Dropout(0.2), torch.nn.Tanh(), torch.nn.Linear(16, 2)
    )
    return model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def _batches(x, y, sampler, interrupt_at=None):
    def get_batch(step):
        if step == interrupt_at:
            raise KeyboardInterrupt("simulated kill")
        idx = torch.from_numpy(sampler.indices(step))
        return x[idx], y[idx]

    return get_batch


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path):
    """Dropout makes the run depend on the RNG state: resume must restore it exactly."""
    x, y = _problem()
    evaluate = accuracy_evaluator(x, y, prefix="train")
    kwargs = dict(steps=40, evaluate=evaluate, eval_every=10, checkpoint_every=8, log_every=5, seed=7)

    model, opt = _setup()
    full = train(
        model,
        opt,
        _batches(x, y, EpochSampler(256, 32, 1)),
        torch.nn.functional.cross_entropy,
        run_dir=RunDir(tmp_path / "full", {"a": 1}),
        **kwargs,
    )
    reference = [p.detach().clone() for p in model.parameters()]

    run_dir = RunDir(tmp_path / "cut", {"a": 1})
    model, opt = _setup()
    with pytest.raises(KeyboardInterrupt):
        train(
            model,
            opt,
            _batches(x, y, EpochSampler(256, 32, 1), interrupt_at=21),
            torch.nn.functional.cross_entropy,
            run_dir=run_dir,
            **kwargs,
        )
    model, opt = _setup()  # a fresh process would start from scratch objects
    resumed = train(
        model,
        opt,
        _batches(x, y, EpochSampler(256, 32, 1)),
        torch.nn.functional.cross_entropy,
        run_dir=RunDir(tmp_path / "cut", {"a": 1}, resume=True),
        **kwargs,
    )
    assert resumed.resumed_from == 16
    assert resumed.status == full.status == "completed"
    for a, b in zip(reference, model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert resumed.history == full.history
    lines = [json.loads(s) for s in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [r["step"] for r in full.history]


def test_completed_run_is_not_retrained(tmp_path):
    x, y = _problem()
    model, opt = _setup()
    run_dir = RunDir(tmp_path / "r", {"a": 1})
    first = train(
        model,
        opt,
        _batches(x, y, EpochSampler(256, 32)),
        torch.nn.functional.cross_entropy,
        steps=5,
        run_dir=run_dir,
    )
    calls = []
    again = train(
        model, opt, lambda s: calls.append(s), torch.nn.functional.cross_entropy, steps=5, run_dir=run_dir
    )
    assert calls == [] and again.history == first.history


def test_divergence_is_a_result_not_a_crash(tmp_path):
    x, y = _problem()
    model, opt = _setup(lr=1e6)
    outcome = train(
        model,
        opt,
        _batches(x, y * 1.0, EpochSampler(256, 32)),
        lambda out, target: ((out[:, 0] - target * 1e8) ** 4).mean(),
        steps=50,
        run_dir=RunDir(tmp_path / "d", {"a": 1}),
        log_every=1,
    )
    assert outcome.status == "diverged"
    assert outcome.step < 50
    assert not math.isfinite(outcome.history[-1]["loss"])


def test_caller_rng_state_untouched():
    x, y = _problem()
    model, opt = _setup()
    state = torch.get_rng_state()
    train(model, opt, _batches(x, y, EpochSampler(256, 32)), torch.nn.functional.cross_entropy, steps=3)
    assert torch.equal(state, torch.get_rng_state())


def test_sampler_covers_each_epoch_once_and_rejects_bad_sizes():
    sampler = EpochSampler(10, 3, seed=5)
    epoch = sorted(int(i) for s in range(3) for i in sampler.indices(s))
    assert len(set(epoch)) == 9
    assert sampler.indices(4).tolist() == EpochSampler(10, 3, seed=5).indices(4).tolist()
    with pytest.raises(ValueError, match="batch_size must be <= n"):
        EpochSampler(3, 5)
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        train(
            torch.nn.Linear(1, 1),
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1),
            None,
            None,
            steps=-1,
        )
