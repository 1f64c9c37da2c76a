"""The resolved search of a study: defaults, overrides, and what each refusal names."""

from __future__ import annotations

from typing import Any

import pytest
from optuna.distributions import IntDistribution

from hyps import HYP_KEYS, default_evolve_keys, load_seed_hyp
from service.errors import InvalidRequest
from service.studies.plan import StudyPlan, build_plan
from tests.service.studies.plan_refusals import REFUSALS


def test_defaults_search_the_effective_keys_from_scratch_low() -> None:
    plan = build_plan("scratch-low")
    assert plan.evolve == default_evolve_keys()
    assert plan.start_params() == {k: load_seed_hyp("scratch-low")[k] for k in plan.evolve}
    assert plan.fitness_weights == (0.0, 0.0, 0.1, 0.9)


def test_fixed_keys_leave_the_default_search_and_win_over_the_seed() -> None:
    plan = build_plan("scratch-med", fixed={"mosaic": 0.5, "hsv_h": 0.02})
    assert "mosaic" not in plan.evolve
    hyp = plan.hyp_for({"lr0": 0.02})
    assert (hyp["lr0"], hyp["mosaic"], hyp["hsv_h"], hyp["cls"]) == (0.02, 0.5, 0.02, 0.3)
    assert list(hyp) == list(HYP_KEYS)


def test_bounds_narrow_the_range_and_trial_0_is_clipped_into_it() -> None:
    plan = build_plan("scratch-low", evolve=["lr0", "mosaic"], bounds={"lr0": [0.02, 0.05]})
    assert plan.evolve == ("lr0", "mosaic")
    dist = plan.distributions()["lr0"]
    assert (dist.low, dist.high, dist.log) == (0.02, 0.05, True)
    assert plan.start_params() == {"lr0": 0.02, "mosaic": 1.0}


def test_uploaded_seed_as_yaml_text_fills_missing_keys_from_scratch_low() -> None:
    plan = build_plan("lr0: 0.02  # mine\nmomentum: 0.9\nanchors: 3\n")
    assert plan.seed_name == "uploaded"
    assert (plan.seed["lr0"], plan.seed["momentum"], plan.seed["box"]) == (0.02, 0.9, 0.05)


def test_key_sets_and_keys_that_cannot_act_without_segments() -> None:
    augmentation = build_plan("scratch-low", keys_from="augmentation")
    # YOLOv5's --evolve since 2024: the augmentation keys, the optimizer and loss keys at the seed's values.
    assert augmentation.evolve == ("hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear",
                                   "perspective", "flipud", "fliplr", "mosaic", "mixup", "copy_paste")  # fmt: skip
    assert "lr0" not in augmentation.evolve
    assert augmentation.hyp_for({})["lr0"] == load_seed_hyp("scratch-low")["lr0"]
    # Box labels only: copy_paste cannot act, so no key set searches it...
    for keys_from in ("yolov5-v7.0", "augmentation"):
        plan = build_plan("scratch-low", keys_from=keys_from, segments=False)
        assert "copy_paste" not in plan.evolve
        assert set(plan.evolve) == set(build_plan("scratch-low", keys_from=keys_from).evolve) - {"copy_paste"}
    # ... and naming it, to search or to hold, is refused.
    with pytest.raises(InvalidRequest) as named:
        build_plan("scratch-low", evolve=["lr0", "copy_paste"], segments=False)
    assert (named.value.field, named.value.value) == ("evolve", "copy_paste")
    assert "segments" in named.value.reason
    with pytest.raises(InvalidRequest) as held:
        build_plan("scratch-low", fixed={"copy_paste": 0.5}, segments=False)
    assert (held.value.field, held.value.value) == ("fixed.copy_paste", 0.5)


def test_plan_survives_its_json_form() -> None:
    plan = build_plan({"lr0": 0.02}, evolve=["lr0", "hsv_h"], fixed={"mixup": 0.1}, bounds={"hsv_h": [0.0, 0.05]},
                      fitness_weights=[0.1, 0.1, 0.4, 0.4])  # fmt: skip
    assert StudyPlan.from_json(plan.to_json()) == plan


def test_ultralytics_only_arguments_are_searched_and_fixed_by_name_and_never_reach_the_hyp_file() -> None:
    plan = build_plan("scratch-low", evolve=["lr0", "close_mosaic", "dfl"], fixed={"cutmix": 0.2},
                      bounds={"close_mosaic": [2, 8]})  # fmt: skip
    # YOLOv5 keys first, in YOLOv5's order, then the ultralytics-only ones.
    assert plan.evolve == ("lr0", "dfl", "close_mosaic")
    close_mosaic = plan.distributions()["close_mosaic"]
    assert isinstance(close_mosaic, IntDistribution)
    assert (close_mosaic.low, close_mosaic.high) == (2, 8)
    # Trial 0: the seed, and for the others what an unnamed argument trains with, clipped (0 -> 2).
    assert plan.start_params() == {"lr0": 0.01, "dfl": 1.5, "close_mosaic": 2}
    assert isinstance(plan.start_params()["close_mosaic"], int)
    params = {"lr0": 0.02, "dfl": 3.0, "close_mosaic": 5}
    assert list(plan.hyp_for(params)) == list(HYP_KEYS)
    assert plan.ultralytics_args_for(params) == {"cutmix": 0.2, "dfl": 3.0, "close_mosaic": 5}
    assert StudyPlan.from_json(plan.to_json()) == plan


def test_plans_stored_before_integer_ranges_still_load() -> None:
    stored = build_plan("scratch-low", evolve=["lr0"]).to_json()
    stored["ranges"] = {k: entry[:4] for k, entry in stored["ranges"].items()}
    assert StudyPlan.from_json(stored) == build_plan("scratch-low", evolve=["lr0"])


@pytest.mark.parametrize(("settings", "field", "value", "message"), REFUSALS)
def test_each_refusal_names_the_field_and_the_value(
    settings: dict[str, Any], field: str, value: Any, message: str
) -> None:
    settings = dict(settings)  # the cases are shared with the HTTP tests: leave them as they are
    seed_hyp = settings.pop("seed_hyp", "scratch-low")
    with pytest.raises(InvalidRequest, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        build_plan(seed_hyp, **settings)
    assert (info.value.field, info.value.value) == (field, value)
