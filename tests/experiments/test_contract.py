"""Every registered experiment honours the contract of dltheory.experiments.base."""

import dataclasses
import json

import pytest

from dltheory.experiments.base import PAPERS, config_to_dict, config_with_overrides
from dltheory.experiments.registry import REQUIRED_PROFILES, experiments

ALL = list(experiments().values())


@pytest.mark.parametrize("experiment", ALL, ids=[e.name for e in ALL])
def test_experiment_contract(experiment):
    module = experiment.module
    assert experiment.paper in PAPERS
    assert experiment.description and len(experiment.description) < 200
    for profile in REQUIRED_PROFILES:
        config = experiment.config(profile)
        assert dataclasses.is_dataclass(config) and type(config).__dataclass_params__.frozen
        assert "seed" in config_to_dict(config)
        json.dumps(config_to_dict(config))
    assert callable(module.run) and callable(module.plot)


def test_overrides_parse_to_field_types():
    config = experiments()["foundation-mnist-linear"].config("quick")
    changed = config_with_overrides(config, {"steps": "7", "lr": "0.25"})
    assert changed.steps == 7 and changed.lr == 0.25
