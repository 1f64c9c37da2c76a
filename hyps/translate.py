"""Where YOLOv5 hyp keys become ultralytics train arguments.

Each of YOLOv5's 28 keys is, on the ultralytics backend, one of:

* the same argument with the same meaning (passed through);
* a converted argument: the loss gains ``box`` and ``cls``. YOLOv5 rescales them at train time
  (box *= 3/nl, cls *= nc/80 * 3/nl) and ultralytics does not, and their scales differ (YOLOv5's
  default box 0.05 against ultralytics' 7.5), so a value is carried as its ratio to YOLOv5's default:
  ``ultralytics_box = 7.5 * box / 0.05`` and ``ultralytics_cls = 0.5 * cls / 0.5``;
* held: no effect on this backend (anchor-free, no objectness) or a different meaning under the
  same name (ultralytics ``cls_pw`` is a class-frequency weighting power, where YOLOv5's neutral
  1.0 would switch on full re-weighting). Held keys are never searched nor passed, and exports carry
  them unchanged from the seed file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PASSTHROUGH_KEYS: tuple[str, ...] = (
    "lr0", "lrf", "momentum", "weight_decay", "warmup_epochs", "warmup_momentum", "warmup_bias_lr",
    "hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear", "perspective",
    "flipud", "fliplr", "mosaic", "mixup", "copy_paste",
)  # fmt: skip

# key -> (YOLOv5 reference value, ultralytics reference value): the defaults of each framework.
CONVERTED_KEYS: dict[str, tuple[float, float]] = {"box": (0.05, 7.5), "cls": (0.5, 0.5)}

HELD_KEYS: dict[str, str] = {
    "cls_pw": "ultralytics' cls_pw is an inverse class-frequency power in [0, 1], not a BCE positive weight",
    "obj": "anchor-free head: no objectness loss",
    "obj_pw": "anchor-free head: no objectness loss",
    "iou_t": "anchor-free assigner: no IoU training threshold (YOLOv5's train.py ignores it too)",
    "anchor_t": "anchor-free head: no anchors",
    "fl_gamma": "no focal-loss gamma argument in ultralytics",
}

# Arguments that make an ultralytics training behave like YOLOv5's train.py: SGD so lr0 and momentum
# take effect ('auto' picks AdamW and its own lr for short runs), mosaic kept to the last epoch
# (YOLOv5 has no close_mosaic), ultralytics' class re-weighting off.
YOLOV5_PARITY_ARGS: dict[str, Any] = {"optimizer": "SGD", "close_mosaic": 0, "cls_pw": 0.0}


# Every ultralytics argument a YOLOv5 hyp file can set, plus the parity arguments: what a trial's
# recorded train_args are compared against.
HYP_ARGS: tuple[str, ...] = (*PASSTHROUGH_KEYS, *CONVERTED_KEYS, *YOLOV5_PARITY_ARGS)


def _clean(value: float) -> float:
    """``value`` to 12 significant digits: a converted 0.02 is 3.0 in an args.yaml, not 2.9999999999999996
    (the ratio's rounding error), and converts back to 0.02."""
    return float(f"{value:.12g}")


def hyp_train_args(hyp: Mapping[str, float], ultralytics_args: Mapping[str, float | int]) -> dict[str, Any]:
    """The hyperparameter arguments of an ultralytics training for YOLOv5 ``hyp``: the parity
    arguments, overridden by the translated hyps, overridden by the ultralytics-only arguments a
    study names. Trainings and args.yaml both use this, so an export reproduces the training that
    earned its score."""
    return {**YOLOV5_PARITY_ARGS, **translate_hyp(hyp), **ultralytics_args}


def translate_hyp(hyp: Mapping[str, float]) -> dict[str, float]:
    """Map YOLOv5 hyp values to ultralytics train arguments; held keys are dropped, unknown keys rejected."""
    args: dict[str, float] = {}
    for key, value in hyp.items():
        if key in PASSTHROUGH_KEYS:
            args[key] = float(value)
        elif key in CONVERTED_KEYS:
            yolov5_ref, ultralytics_ref = CONVERTED_KEYS[key]
            args[key] = _clean(ultralytics_ref * float(value) / yolov5_ref)
        elif key not in HELD_KEYS:
            raise ValueError(f"unknown YOLOv5 hyp key {key!r}")
    return args


def untranslate_args(args: Mapping[str, Any]) -> dict[str, float]:
    """The inverse of translate_hyp for ultralytics results (a tuner's log): YOLOv5 values for the
    arguments that have a YOLOv5 key; ultralytics-only arguments (dfl, bgr, cutmix, ...) are dropped."""
    hyp: dict[str, float] = {}
    for key, value in args.items():
        if key in PASSTHROUGH_KEYS:
            hyp[key] = float(value)
        elif key in CONVERTED_KEYS:
            yolov5_ref, ultralytics_ref = CONVERTED_KEYS[key]
            hyp[key] = _clean(yolov5_ref * float(value) / ultralytics_ref)
    return hyp
