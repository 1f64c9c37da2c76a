"""YOLOv5 hyp files as data: the seed files shipped in ``hyps/data`` and the hyp.yaml export."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources

import yaml

# YOLOv5 v7.0's data/hyps files, verbatim: the three for training from scratch, then VOC (evolved
# while fine-tuning yolov5m6.pt on VOC) and no-augmentation (every augmentation off).
SEED_HYPS: tuple[str, ...] = ("scratch-low", "scratch-med", "scratch-high", "VOC", "no-augmentation")

# YOLOv5's key order in data/hyps/hyp.scratch-*.yaml. train.py reads every key but iou_t, so an
# exported file must carry all 28 of them, in this order, for `python train.py --hyp` to accept it.
HYP_KEYS: tuple[str, ...] = (
    "lr0", "lrf", "momentum", "weight_decay", "warmup_epochs", "warmup_momentum", "warmup_bias_lr",
    "box", "cls", "cls_pw", "obj", "obj_pw", "iou_t", "anchor_t", "fl_gamma",
    "hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear", "perspective",
    "flipud", "fliplr", "mosaic", "mixup", "copy_paste",
)  # fmt: skip


def read_data_file(name: str) -> str:
    return resources.files("hyps").joinpath("data", name).read_text(encoding="utf-8")


@cache
def _seed_hyp_text(name: str) -> str:
    if name not in SEED_HYPS:
        raise ValueError(f"unknown seed hyp {name!r}; valid names: {', '.join(SEED_HYPS)}")
    return read_data_file(f"hyp.{name}.yaml")


def load_seed_hyp(name: str) -> dict[str, float]:
    """Return the values of YOLOv5's ``hyp.<name>.yaml`` (e.g. ``scratch-low``) in file order."""
    values = yaml.safe_load(_seed_hyp_text(name))
    return {key: float(values[key]) for key in HYP_KEYS}


def _comments(name: str) -> dict[str, str]:
    """The inline comment of each key in the seed file, reused so exports read like YOLOv5's own
    (hyp.VOC.yaml has none: scratch-low's stand in)."""
    comments = {} if name == "scratch-low" else _comments("scratch-low")
    for line in _seed_hyp_text(name).splitlines():
        key, sep, rest = line.partition(":")
        if sep and key in HYP_KEYS and "#" in rest:
            comments[key] = rest.split("#", 1)[1].strip()
    return comments


def _format_value(value: float) -> str:
    # The exact value the trial trained with: a file that rounds would hand back other hyps than
    # the ones that earned the fitness in its header.
    return repr(float(value))


def render_hyp_yaml(values: Mapping[str, float], header: Iterable[str], seed_hyp: str = "scratch-low") -> str:
    """Render a complete YOLOv5 hyp file: all 28 keys in YOLOv5's order, ``header`` as comment lines.

    Keys missing from ``values`` are taken from ``seed_hyp``.
    """
    unknown = sorted(set(values) - set(HYP_KEYS))
    if unknown:
        raise ValueError(f"unknown YOLOv5 hyp keys {unknown}; valid keys: {', '.join(HYP_KEYS)}")
    seed = load_seed_hyp(seed_hyp)
    comments = _comments(seed_hyp)
    lines = [f"# {line}" if line else "#" for line in header]
    lines.append("")
    for key in HYP_KEYS:
        value = values.get(key, seed[key])
        lines.append(f"{key}: {_format_value(value)}  # {comments[key]}")
        if key == "anchor_t":
            lines.append("# anchors: 3  # anchors per output layer (0 to ignore)")
    return "\n".join(lines) + "\n"
