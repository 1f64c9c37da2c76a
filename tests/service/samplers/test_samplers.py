from __future__ import annotations

import optuna
import pytest

from hyps import load_search_space, load_ultralytics_space
from service.errors import InvalidRequest
from service.samplers import SAMPLER_NAMES, YOLOv5EvolutionSampler, build_sampler
from service.studies.plan import build_plan

PLAN = build_plan("scratch-low", evolve=["lr0", "momentum"])


@pytest.mark.parametrize(
    ("name", "kind"),
    [("tpe", optuna.samplers.TPESampler), ("cmaes", optuna.samplers.CmaEsSampler),
     ("gp", optuna.samplers.GPSampler), ("nsga2", optuna.samplers.NSGAIISampler),
     ("qmc", optuna.samplers.QMCSampler), ("random", optuna.samplers.RandomSampler),
     ("yolov5", YOLOv5EvolutionSampler)],
)  # fmt: skip
def test_each_name_builds_its_sampler(name: str, kind: type) -> None:
    assert isinstance(build_sampler(name, 0, PLAN.ranges, PLAN.start_params()), kind)


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(
        ValueError, match="unknown sampler 'grid'; valid names: tpe, cmaes, gp, nsga2, qmc, random, yolov5"
    ):
        build_sampler("grid", 0, PLAN.ranges, PLAN.start_params())
    assert SAMPLER_NAMES == ("tpe", "cmaes", "gp", "nsga2", "qmc", "random", "yolov5")


@pytest.mark.parametrize("name", ["tpe", "random", "yolov5"])
def test_same_seed_proposes_the_same_first_trial(name: str) -> None:
    def first_params() -> dict[str, float]:
        sampler = build_sampler(name, 3, PLAN.ranges, PLAN.start_params())
        return optuna.create_study(sampler=sampler).ask(PLAN.distributions()).params

    assert first_params() == first_params()


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_every_sampler_proposes_whole_numbers_for_whole_number_arguments(name: str) -> None:
    plan = build_plan("scratch-low", evolve=["lr0", "dfl", "close_mosaic"], bounds={"close_mosaic": [1, 6]})
    study = optuna.create_study(direction="maximize", sampler=build_sampler(name, 0, plan.ranges, plan.start_params()))
    study.enqueue_trial(plan.start_params())
    for _ in range(8):
        trial = study.ask(plan.distributions())
        study.tell(trial, trial.params["dfl"] - abs(trial.params["close_mosaic"] - 4))
    values = [t.params["close_mosaic"] for t in study.trials]
    assert all(isinstance(v, int) and 1 <= v <= 6 for v in values)
    assert values[0] == 1  # the unnamed default 0, clipped into the narrowed range


def _nameable_keys() -> list[str]:
    """Every key a study may name in evolve: YOLOv5's keys the plan accepts and the ultralytics-only
    arguments (keys without effect on this backend are refused, saying why: tested in test_plan)."""
    keys = []
    for key in [*load_search_space(), *load_ultralytics_space()]:
        try:
            build_plan("scratch-low", evolve=[key])
        except InvalidRequest:
            continue
        keys.append(key)
    return keys


NAMEABLE = _nameable_keys()


def test_the_keys_yolov5_froze_are_nameable() -> None:
    # YOLOv5 v7.0's --evolve never mutates them (gain 0); a study may still name them.
    assert {"fliplr", "perspective"} <= set(NAMEABLE)


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_every_key_a_study_names_is_searched(name: str) -> None:
    # All nameable keys at once, and each alone (the yolov5 sampler draws one factor per generation).
    plans = [build_plan("scratch-low", evolve=NAMEABLE)] + [build_plan("scratch-low", evolve=[k]) for k in NAMEABLE]
    for plan in plans:
        sampler = build_sampler(name, 0, plan.ranges, plan.start_params())
        study = optuna.create_study(sampler=sampler, direction="maximize")
        study.enqueue_trial(plan.start_params())  # trial 0: the seed hyps, as every study starts
        seen: dict[str, set[float]] = {key: set() for key in plan.evolve}
        for number in range(8):
            trial = study.ask(plan.distributions())
            for key, value in trial.params.items():
                seen[key].add(value)
            study.tell(trial, float(number % 3))
        # A named key that kept one value over 8 trials was not searched, whatever the header says.
        assert all(len(values) > 1 for values in seen.values()), {k: v for k, v in seen.items() if len(v) == 1}
