"""Training steps: the eager step, the CUDA-graph step and the fallback between them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dltheory.nn.models import VanillaCNN
from dltheory.nn.recipe import TrainingRecipe, build_optimizer
from dltheory.runner.graphed import GraphedStep, eager_step, graph_capture_problem, make_train_step


def _model_and_batches(device: str = "cpu", steps: int = 6):
    model = VanillaCNN(4, 4, generator=torch.Generator().manual_seed(0)).to(device)
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 1, 28, 28, generator=generator), torch.randint(0, 10, (8,), generator=generator)
    # one batch over and over: the loss must fall
    return model, [(x.to(device), y.to(device))] * steps


def _train(model, optimizer, scheduler, step, batches):
    losses = []
    for x, y in batches:
        losses.append(float(step(x, y)))
        scheduler.step()
    return losses, [p.detach().cpu().clone() for p in model.parameters()]


def test_auto_falls_back_to_the_eager_step_on_a_cpu_and_says_why():
    model, batches = _model_and_batches()
    optimizer, scheduler = build_optimizer(model, TrainingRecipe(warmup_steps=2))
    step, reason = make_train_step(model, optimizer, F.cross_entropy)
    assert reason == "CUDA graphs need the model on a CUDA device"
    assert not isinstance(step, GraphedStep)
    losses, params = _train(model, optimizer, scheduler, step, batches)

    # the same trajectory as the textbook loop, bitwise
    reference, batches = _model_and_batches()
    optimizer, scheduler = build_optimizer(reference, TrainingRecipe(warmup_steps=2))
    expected = []
    for x, y in batches:
        optimizer.zero_grad()
        loss = F.cross_entropy(reference(x), y)
        loss.backward()
        optimizer.step()
        scheduler.step()
        expected.append(float(loss.detach()))
    assert losses == expected
    assert all(torch.equal(a, b) for a, b in zip(params, reference.parameters(), strict=True))
    assert losses[-1] < losses[0]


def test_capture_problems_are_named():
    model, _ = _model_and_batches()
    optimizer, _ = build_optimizer(model, TrainingRecipe())
    assert graph_capture_problem(model, optimizer) == "CUDA graphs need the model on a CUDA device"
    with pytest.raises(ValueError, match="mode='graph'.*CUDA device"):
        make_train_step(model, optimizer, F.cross_entropy, mode="graph")
    with pytest.raises(ValueError, match="cannot capture"):
        GraphedStep(model, optimizer, F.cross_entropy)
    with pytest.raises(ValueError, match="mode must be one of"):
        make_train_step(model, optimizer, F.cross_entropy, mode="fast")
    step, reason = make_train_step(model, optimizer, F.cross_entropy, mode="eager")
    assert reason == "eager mode requested"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (graph capture)")
def test_the_graphed_step_follows_the_eager_trajectory_on_cuda():
    results = []
    for graphed in (False, True):
        model, batches = _model_and_batches("cuda", steps=8)
        optimizer, scheduler = build_optimizer(model, TrainingRecipe(warmup_steps=3), capturable=True)
        step = (
            GraphedStep(model, optimizer, F.cross_entropy, warmup=2)
            if graphed
            else eager_step(model, optimizer, F.cross_entropy)
        )
        results.append(_train(model, optimizer, scheduler, step, batches))
        if graphed:
            assert step.captured
    (eager_losses, eager_params), (graph_losses, graph_params) = results
    assert graph_losses == pytest.approx(eager_losses, rel=1e-4)
    for a, b in zip(eager_params, graph_params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (graph capture)")
def test_the_graphed_step_refuses_a_batch_of_another_shape():
    model, batches = _model_and_batches("cuda", steps=3)
    optimizer, _ = build_optimizer(model, TrainingRecipe(), capturable=True)
    step = GraphedStep(model, optimizer, F.cross_entropy, warmup=1)
    for x, y in batches[:2]:
        step(x, y)
    with pytest.raises(ValueError, match="must match the captured one"):
        step(batches[2][0][:4], batches[2][1][:4])


def test_the_training_loop_uses_the_eager_step_on_a_cpu_and_refuses_graph_mode(tmp_path):
    from dltheory.runner.train import train

    model, batches = _model_and_batches(steps=4)
    optimizer, scheduler = build_optimizer(model, TrainingRecipe(warmup_steps=2))
    outcome = train(
        model, optimizer, lambda step: batches[step], F.cross_entropy, steps=4, scheduler=scheduler
    )
    assert outcome.step_mode == "eager" and outcome.status == "completed"
    with pytest.raises(ValueError, match="mode='graph'"):
        train(model, optimizer, lambda step: batches[step], F.cross_entropy, steps=4, step_mode="graph")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (graph capture)")
def test_the_training_loop_replays_a_cuda_graph_for_a_capturable_optimizer():
    from dltheory.runner.train import train

    model, batches = _model_and_batches("cuda", steps=8)
    optimizer, scheduler = build_optimizer(model, TrainingRecipe(warmup_steps=2), capturable=True)
    outcome = train(
        model, optimizer, lambda step: batches[step], F.cross_entropy, steps=8, scheduler=scheduler
    )
    assert outcome.step_mode == "graph" and outcome.status == "completed"
    assert outcome.history[-1]["loss"] < 2.3
