"""YOLOv5 hyperparameters as data and pure functions: seed files, the search space, translation to
ultralytics arguments, fitness. Imports nothing from ``workers`` or ``service``."""

from __future__ import annotations

from hyps.files import HYP_KEYS, SEED_HYPS, load_seed_hyp, render_hyp_yaml
from hyps.fitness import METRIC_NAMES, ULTRALYTICS_METRIC_COLUMNS, YOLOV5_FITNESS_WEIGHTS, fitness
from hyps.space import (
    AUGMENTATION_KEYS,
    KEY_SETS,
    NEEDS_SEGMENTS,
    KeyRange,
    KeySet,
    default_evolve_keys,
    key_set,
    load_search_space,
    load_ultralytics_space,
    ultralytics_only,
    ultralytics_only_defaults,
)
from hyps.translate import HELD_KEYS, HYP_ARGS, YOLOV5_PARITY_ARGS, hyp_train_args, translate_hyp, untranslate_args

__all__ = [
    "AUGMENTATION_KEYS",
    "HELD_KEYS",
    "HYP_ARGS",
    "HYP_KEYS",
    "KEY_SETS",
    "METRIC_NAMES",
    "NEEDS_SEGMENTS",
    "SEED_HYPS",
    "ULTRALYTICS_METRIC_COLUMNS",
    "YOLOV5_FITNESS_WEIGHTS",
    "YOLOV5_PARITY_ARGS",
    "KeyRange",
    "KeySet",
    "default_evolve_keys",
    "fitness",
    "hyp_train_args",
    "key_set",
    "load_search_space",
    "load_seed_hyp",
    "load_ultralytics_space",
    "render_hyp_yaml",
    "translate_hyp",
    "ultralytics_only",
    "ultralytics_only_defaults",
    "untranslate_args",
]
