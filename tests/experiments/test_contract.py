"""Every registered experiment honours the contract of dltheory.experiments.base."""

import dataclasses
import importlib
import json

import pytest

from dltheory.core.papers import PAPERS
from dltheory.experiments.base import REQUIRED_PROFILES, ExperimentSpec, config_to_dict, config_with_overrides
from dltheory.experiments.registry import experiments

ALL = list(experiments().values())


@pytest.mark.parametrize("experiment", ALL, ids=[e.name for e in ALL])
def test_experiment_contract(experiment):
    module = importlib.import_module(f"dltheory.experiments.{experiment.module_name}")
    assert module.EXPERIMENT is experiment  # the module's file name is the id with underscores
    assert experiment.paper in PAPERS
    assert experiment.description and len(experiment.description) < 200
    for profile in REQUIRED_PROFILES:
        config = experiment.config(profile)
        assert dataclasses.is_dataclass(config) and type(config).__dataclass_params__.frozen
        assert "seed" in config_to_dict(config)
        json.dumps(config_to_dict(config))
    assert callable(experiment.run) and callable(experiment.plot)


def test_specs_refuse_unknown_papers_and_missing_profiles():
    quick = experiments()["foundation-mnist-linear"].config("quick")
    spec = dict(name="x", description="d", run=print, plot=print)
    with pytest.raises(ValueError, match="paper must be one of"):
        ExperimentSpec(paper="nope", profiles={p: quick for p in REQUIRED_PROFILES}, **spec)
    with pytest.raises(ValueError, match="lacks the profiles"):
        ExperimentSpec(paper="xiao", profiles={"quick": quick}, **spec)
    with pytest.raises(ValueError, match="profile must be one of"):
        experiments()["foundation-mnist-linear"].config("huge")


def test_overrides_parse_to_field_types():
    config = experiments()["foundation-mnist-linear"].config("quick")
    changed = config_with_overrides(config, {"steps": "7", "lr": "0.25"})
    assert changed.steps == 7 and changed.lr == 0.25
