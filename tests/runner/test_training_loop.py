import json
import math

import pytest
import torch

from dltheory.runner.runs import DamagedRunFileError, RunDir
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


def _fit(*, shuffle_seed=0, interrupt_at=None, **options):
    """A fresh :func:`_setup` model trained by ``train(**options)`` on :func:`_problem` with cross-entropy
    and batches of 32; returns ``(outcome, model)``."""
    x, y = _problem()
    model, opt = _setup()
    batches = _batches(x, y, EpochSampler(256, 32, shuffle_seed), interrupt_at=interrupt_at)
    return train(model, opt, batches, torch.nn.functional.cross_entropy, **options), model


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path):
    """Dropout makes the run depend on the RNG state: resume must restore it exactly."""
    x, y = _problem()
    evaluate = accuracy_evaluator(x, y, prefix="train")
    kwargs = dict(steps=40, evaluate=evaluate, eval_every=10, checkpoint_every=8, log_every=5, seed=7)

    full, model = _fit(shuffle_seed=1, run_dir=RunDir(tmp_path / "full", {"a": 1}), **kwargs)
    reference = [p.detach().clone() for p in model.parameters()]

    with pytest.raises(KeyboardInterrupt):
        _fit(shuffle_seed=1, interrupt_at=21, run_dir=RunDir(tmp_path / "cut", {"a": 1}), **kwargs)
    # a fresh process would start from scratch objects: _fit makes new ones
    resumed, model = _fit(shuffle_seed=1, run_dir=RunDir(tmp_path / "cut", {"a": 1}, resume=True), **kwargs)
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


class _FakeClock:
    """Time advances only when a step runs: get_batch ticks it by ``per_step`` seconds."""

    def __init__(self, per_step):
        self.now, self.per_step = 100.0, per_step

    def __call__(self):
        return self.now

    def tick(self):
        self.now += self.per_step


def test_budget_stops_cleanly_before_the_step_that_would_exceed_it(tmp_path):
    x, y = _problem()
    clock = _FakeClock(per_step=2.0)
    sampler = EpochSampler(256, 32, 1)

    def get_batch(step):
        clock.tick()
        idx = torch.from_numpy(sampler.indices(step))
        return x[idx], y[idx]

    run_dir = RunDir(tmp_path / "b", {"a": 1})
    model, opt = _setup()
    outcome = train(
        model,
        opt,
        get_batch,
        torch.nn.functional.cross_entropy,
        steps=100,
        run_dir=run_dir,
        evaluate=accuracy_evaluator(x, y, prefix="train"),
        eval_every=4,
        checkpoint_every=4,
        log_every=1,
        budget_s=15.0,
        clock=clock,
    )
    # 2 s per step: after 7 steps (14 s) an 8th would end at 16 s > 15 s
    assert outcome.status == "completed" and outcome.stopped_by_budget and outcome.step == 7
    assert outcome.final == outcome.history[-1]
    assert outcome.final["step"] == 7 and outcome.final["stopped_by_budget"] is True
    assert "train_accuracy" in outcome.final  # the final evaluation ran
    assert [h["step"] for h in outcome.history] == [1, 2, 3, 4, 5, 6, 7]
    state = torch.load(run_dir.checkpoints / "train.pt", weights_only=True)
    assert state["step"] == 7 and state["status"] == "completed" and state["stopped_by_budget"]
    assert run_dir.metrics()[-1]["stopped_by_budget"] is True
    calls = []
    again = train(model, opt, calls.append, torch.nn.functional.cross_entropy, steps=100, run_dir=run_dir)
    assert calls == [] and again.stopped_by_budget and again.step == 7  # a finished run stays finished


def test_budget_must_be_positive_and_a_large_one_changes_nothing(tmp_path):
    with pytest.raises(ValueError, match="budget_s must be > 0"):
        _fit(steps=3, budget_s=0)
    plain, _ = _fit(steps=5, log_every=1)
    bounded, _ = _fit(steps=5, log_every=1, budget_s=1e9, clock=_FakeClock(per_step=1.0))
    assert bounded.history == plain.history and not bounded.stopped_by_budget


def _train_linear(run_dir, steps=12, interrupt_at=None):
    outcome, _ = _fit(
        shuffle_seed=1,
        interrupt_at=interrupt_at,
        steps=steps,
        run_dir=run_dir,
        checkpoint_every=4,
        log_every=1,
        seed=3,
    )
    return outcome


def test_damaged_checkpoint_is_named_with_its_remedy(tmp_path):
    run_dir = RunDir(tmp_path / "r", {"a": 1})
    with pytest.raises(KeyboardInterrupt):
        _train_linear(run_dir, interrupt_at=6)
    checkpoint = run_dir.checkpoints / "train.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])  # truncated
    with pytest.raises(
        DamagedRunFileError, match=r"train\.pt is damaged \(cannot be loaded.*delete it to retrain"
    ):
        _train_linear(run_dir)
    torch.save({"model": {}, "step": "4"}, checkpoint)  # loads, but is not a checkpoint of ours
    with pytest.raises(DamagedRunFileError, match=r"missing or invalid entries \['optimizer', 'step'"):
        _train_linear(run_dir)
    checkpoint.unlink()  # the remedy: retrain from step 0, to the same result
    reference = _train_linear(RunDir(tmp_path / "ref", {"a": 1}))
    assert _train_linear(run_dir).history == reference.history


def test_resume_rebuilds_damaged_or_extra_metric_lines_from_the_checkpoint(tmp_path):
    reference = RunDir(tmp_path / "ref", {"a": 1})
    _train_linear(reference)
    run_dir = RunDir(tmp_path / "r", {"a": 1})
    run_dir.log_metrics({"note": "a line of another writer"})
    with pytest.raises(KeyboardInterrupt):
        _train_linear(run_dir, interrupt_at=10)  # checkpoint at 8, lines up to step 10 logged
    lines = run_dir.metrics_file.read_text().splitlines()
    lines[3] = lines[3][:10]  # a damaged line in the middle
    run_dir.metrics_file.write_text("\n".join(lines) + "\n" + '{"run": "train", "st')  # and a cut-off one
    with pytest.raises(DamagedRunFileError, match=r"metrics\.jsonl is damaged \(line 4"):
        run_dir.metrics()
    _train_linear(RunDir(tmp_path / "r", {"a": 1}, resume=True))
    assert run_dir.metrics() == [{"note": "a line of another writer"}] + reference.metrics()


def test_fresh_start_drops_lines_logged_before_the_first_checkpoint(tmp_path):
    run_dir = RunDir(tmp_path / "r", {"a": 1})
    with pytest.raises(KeyboardInterrupt):
        _train_linear(run_dir, interrupt_at=3)  # killed before the first checkpoint (step 4)
    assert [r["step"] for r in run_dir.metrics()] == [1, 2, 3]
    _train_linear(run_dir)
    assert [r["step"] for r in run_dir.metrics()] == list(range(1, 13))
