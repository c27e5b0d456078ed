"""The training recipe: one rate per part of the vanilla CNN (stem, head, stack), warm-up."""

from __future__ import annotations

import pytest
import torch

from dltheory.nn.models import VanillaCNN
from dltheory.nn.recipe import TrainingRecipe, build_optimizer


def _rates(recipe: TrainingRecipe, depth: int = 10) -> dict[str, float]:
    model = VanillaCNN(depth, 4)
    optimizer, _ = build_optimizer(model, recipe)
    groups = model.parameter_groups()
    rate_of = {id(p): group["initial_lr"] for group in optimizer.param_groups for p in group["params"]}
    return {part: rate_of[id(params[0])] for part, params in groups.items()}


def test_each_part_gets_its_rate():
    assert _rates(TrainingRecipe(lr=0.01)) == pytest.approx({"stem": 0.01, "head": 0.01, "stack": 0.001})
    rates = _rates(TrainingRecipe(lr=0.01, head_lr=0.3, stack_lr=1e-5))
    assert rates == pytest.approx({"stem": 0.01, "head": 0.3, "stack": 1e-5})


def test_every_parameter_is_optimised_once():
    model = VanillaCNN(3, 4)
    optimizer, _ = build_optimizer(model, TrainingRecipe(head_lr=0.1))
    optimised = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert sorted(optimised) == sorted(id(p) for p in model.parameters())


def test_warmup_ramps_every_rate_linearly():
    model = VanillaCNN(5, 4)
    optimizer, scheduler = build_optimizer(model, TrainingRecipe(lr=0.01, head_lr=0.2, warmup_steps=4))
    seen = []
    for _ in range(5):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert seen[0] == pytest.approx([0.0025, 0.05, 0.0005])
    assert seen[3] == seen[4] == pytest.approx([0.01, 0.2, 0.002])


@pytest.mark.parametrize("field", ["head_lr", "lr"])
def test_bad_rates_raise_naming_the_argument(field):
    with pytest.raises(ValueError, match=field):
        TrainingRecipe(**{field: -1.0})


def test_a_capturable_optimizer_needs_adam_on_a_gpu():
    model = VanillaCNN(2, 4)
    with pytest.raises(ValueError, match="optimizer='adam'"):
        build_optimizer(model, TrainingRecipe(optimizer="sgd"), capturable=True)
    with pytest.raises(ValueError, match="CUDA device"):
        build_optimizer(model, TrainingRecipe(), capturable=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (capturable Adam runs on CUDA only)")
def test_capturable_rates_are_device_tensors_the_scheduler_updates_in_place():
    model = VanillaCNN(2, 4).cuda()
    optimizer, scheduler = build_optimizer(model, TrainingRecipe(lr=0.01, warmup_steps=2), capturable=True)
    rates = [group["lr"] for group in optimizer.param_groups]
    assert all(isinstance(r, torch.Tensor) and r.is_cuda for r in rates)
    model(torch.randn(2, 1, 28, 28, device="cuda")).sum().backward()
    optimizer.step()
    scheduler.step()
    assert [group["lr"] for group in optimizer.param_groups] == rates  # same tensors, new values
    assert float(rates[0]) == pytest.approx(0.01)
