from __future__ import annotations

import optuna
import pytest

from service.studies.samplers import SAMPLER_NAMES, build_sampler


@pytest.mark.parametrize(
    ("name", "kind"),
    [("tpe", optuna.samplers.TPESampler), ("random", optuna.samplers.RandomSampler),
     ("cmaes", optuna.samplers.CmaEsSampler)],
)  # fmt: skip
def test_each_name_builds_its_sampler(name: str, kind: type) -> None:
    assert isinstance(build_sampler(name, seed=0), kind)


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown sampler 'grid'; valid names: tpe, random, cmaes"):
        build_sampler("grid", seed=0)
    assert SAMPLER_NAMES == ("tpe", "random", "cmaes")


def test_same_seed_proposes_the_same_first_trial() -> None:
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    first = [optuna.create_study(sampler=build_sampler("tpe", seed=3)).ask(dist).params for _ in range(2)]
    assert first[0] == first[1]
