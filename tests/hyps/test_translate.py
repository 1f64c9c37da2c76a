from __future__ import annotations

from pathlib import Path

from ultralytics.cfg import CFG_INT_KEYS, DEFAULT_CFG_DICT
from ultralytics.engine.tuner import Tuner

from hyps import (
    HELD_KEYS,
    HYP_ARGS,
    HYP_KEYS,
    YOLOV5_PARITY_ARGS,
    load_seed_hyp,
    load_ultralytics_space,
    translate_hyp,
    ultralytics_only_defaults,
    untranslate_args,
)


def test_every_translated_argument_exists_in_the_installed_ultralytics() -> None:
    args = translate_hyp(load_seed_hyp("scratch-low"))
    missing = sorted(set(args) - set(DEFAULT_CFG_DICT))
    assert missing == []
    assert sorted(set(YOLOV5_PARITY_ARGS) - set(DEFAULT_CFG_DICT)) == []


def test_every_yolov5_key_is_translated_or_held_on_purpose() -> None:
    args = translate_hyp(load_seed_hyp("scratch-low"))
    assert set(args) | set(HELD_KEYS) == set(HYP_KEYS)
    assert not set(args) & set(HELD_KEYS)


def test_loss_gains_are_converted_relative_to_each_frameworks_default() -> None:
    # YOLOv5's defaults land on ultralytics' defaults; never the raw 0.05 (150 times too small).
    assert translate_hyp({"box": 0.05, "cls": 0.5}) == {"box": DEFAULT_CFG_DICT["box"], "cls": DEFAULT_CFG_DICT["cls"]}
    assert translate_hyp({"box": 0.1})["box"] == 2 * DEFAULT_CFG_DICT["box"]
    # The ratio's rounding error stays out of an args.yaml (7.5 x 0.02 / 0.05 is 2.9999999999999996 in
    # floats), and a converted value converts back to the hyp it came from.
    assert translate_hyp({"box": 0.02}) == {"box": 3.0}
    for box in (0.02, 0.0312, 0.07, 0.2):
        assert untranslate_args(translate_hyp({"box": box})) == {"box": box}


def test_held_keys_never_reach_the_trainer() -> None:
    assert translate_hyp({"cls_pw": 1.0, "obj": 0.7, "fl_gamma": 1.5}) == {}


def test_same_meaning_keys_pass_through_unchanged() -> None:
    assert translate_hyp({"lr0": 0.02, "mosaic": 0.5}) == {"lr0": 0.02, "mosaic": 0.5}


def test_yolov5_parity_uses_sgd_so_lr0_takes_effect() -> None:
    assert YOLOV5_PARITY_ARGS["optimizer"] == "SGD"


def test_ultralytics_only_arguments_exist_with_their_stated_defaults_types_and_tuner_bounds(tmp_path: Path) -> None:
    space = load_ultralytics_space()
    assert not set(space) & (set(HYP_KEYS) | set(HYP_ARGS) - set(YOLOV5_PARITY_ARGS))
    # What an unnamed argument trains with: ultralytics' default, or the parity value where we set one.
    assert ultralytics_only_defaults() == {k: YOLOV5_PARITY_ARGS.get(k, DEFAULT_CFG_DICT[k]) for k in space}
    assert {k for k, r in space.items() if r.integer} == set(space) & CFG_INT_KEYS
    # The bounds are those of ultralytics' own tuner (built here without a model or a training).
    tuner = Tuner({"project": str(tmp_path), "name": "tune"}, model=object())
    assert {k: (r.low, r.high) for k, r in space.items()} == {k: tuner.space[k][:2] for k in space}
