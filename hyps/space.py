"""The search space: YOLOv5's evolution bounds and gains per hyp key (``data/search_space.yaml``), and
the ultralytics-only arguments a study may name (``data/ultralytics_space.yaml``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, get_args

import optuna
import yaml

from hyps.files import HYP_KEYS, read_data_file
from hyps.translate import HELD_KEYS


@dataclass(frozen=True)
class KeyRange:
    """Where one key may move: ``[low, high]``, YOLOv5's mutation gain, log-scale sampling, and
    whether only whole numbers are allowed."""

    key: str
    low: float
    high: float
    gain: float
    log: bool = False
    integer: bool = False

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high and (not self.integer or float(value).is_integer())

    def clip(self, value: float) -> float:
        """``value`` moved into ``[low, high]``; an int for whole-number keys."""
        clipped = min(max(value, self.low), self.high)
        return int(clipped) if self.integer else clipped

    def distribution(self) -> optuna.distributions.BaseDistribution:
        if self.integer:
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log)
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)


def _key_range(key: str, spec: Mapping[str, Any], source: str) -> KeyRange:
    entry = KeyRange(
        key, float(spec["low"]), float(spec["high"]), float(spec["gain"]), bool(spec.get("log")), bool(spec.get("int"))
    )
    bad_int = entry.integer and not (entry.low.is_integer() and entry.high.is_integer())
    if entry.low >= entry.high or (entry.log and entry.low <= 0) or bad_int:
        raise ValueError(f"{source}: bad range for {key!r}: {spec}")
    return entry


@cache
def load_search_space() -> dict[str, KeyRange]:
    """All 28 YOLOv5 keys with their bounds and gains, in YOLOv5's key order."""
    raw = yaml.safe_load(read_data_file("search_space.yaml"))
    if list(raw) != list(HYP_KEYS):
        raise ValueError(f"search_space.yaml must list the YOLOv5 keys in order; got {list(raw)}")
    return {key: _key_range(key, spec, "search_space.yaml") for key, spec in raw.items()}


@cache
def _ultralytics_space_file() -> dict[str, dict[str, Any]]:
    raw = yaml.safe_load(read_data_file("ultralytics_space.yaml"))
    clash = sorted(set(raw) & set(HYP_KEYS))
    if clash:
        raise ValueError(f"ultralytics_space.yaml: {clash} are YOLOv5 keys, not ultralytics-only arguments")
    return dict(raw)


@cache
def _ultralytics_space() -> dict[str, KeyRange]:
    return {k: _key_range(k, spec, "ultralytics_space.yaml") for k, spec in _ultralytics_space_file().items()}


def load_ultralytics_space() -> dict[str, KeyRange]:
    """The ultralytics-only arguments a study may search or fix by name: bounds, gains, integer or not.
    Parsed once per process; each call returns a fresh dict the caller may change."""
    return dict(_ultralytics_space())


def ultralytics_only_defaults() -> dict[str, float | int]:
    """What a trial trains with for each ultralytics-only argument its study does not name."""
    return ultralytics_only({k: spec["default"] for k, spec in _ultralytics_space_file().items()})


def ultralytics_only(values: Mapping[str, Any]) -> dict[str, float | int]:
    """The entries of ``values`` that are ultralytics-only arguments, as ints where ultralytics wants ints."""
    space = _ultralytics_space()
    return {k: int(v) if space[k].integer else float(v) for k, v in values.items() if k in space}


def default_evolve_keys() -> tuple[str, ...]:
    """Keys searched when a study names none: those that change an ultralytics training (not held)
    and that YOLOv5's own --evolve mutates (gain > 0)."""
    return tuple(k for k, r in load_search_space().items() if k not in HELD_KEYS and r.gain > 0)


# The key sets a study can search without naming keys. yolov5-v7.0: default_evolve_keys (v7.0's
# --evolve, every key it mutates that acts on ultralytics). augmentation: YOLOv5's --evolve on its
# main branch since 2024, which holds the optimizer and loss keys at the hyp file's values (they
# depend on the training's length) and evolves these only.
KeySet = Literal["yolov5-v7.0", "augmentation"]
KEY_SETS: tuple[KeySet, ...] = get_args(KeySet)
AUGMENTATION_KEYS = (
    "hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear", "perspective", "flipud", "fliplr",
    "mosaic", "mixup", "copy_paste",
)  # fmt: skip
# Keys that act only on data with segment labels (polygons), and why.
NEEDS_SEGMENTS = {
    "copy_paste": "ultralytics' copy_paste pastes segments (polygon labels); with box labels only it does nothing",
}


def key_set(name: KeySet) -> tuple[str, ...]:
    """The keys of a named key set, in YOLOv5's order."""
    if name == "augmentation":
        return tuple(k for k in load_search_space() if k in AUGMENTATION_KEYS and k not in HELD_KEYS)
    return default_evolve_keys()
