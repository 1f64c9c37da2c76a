"""A study's plan: the request's search settings checked and resolved into what the runner needs.

The request says what the user asked for (``seed_hyp`` by name, by values or as YAML text,
``evolve``, ``fixed``, ``bounds``, ``fitness_weights``); the plan holds the resolved seed values of
all 28 keys, the searched keys with their final ranges, the fixed values and the fitness weights.
``evolve``, ``fixed`` and ``bounds`` may also name ultralytics-only arguments (dfl, close_mosaic,
...): they reach the trainings and args.yaml, never the YOLOv5 hyp file. Every refusal is an
InvalidRequest naming the field and the value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
import yaml

from hyps import (
    HELD_KEYS,
    HYP_KEYS,
    NEEDS_SEGMENTS,
    SEED_HYPS,
    YOLOV5_FITNESS_WEIGHTS,
    KeyRange,
    KeySet,
    key_set,
    load_search_space,
    load_seed_hyp,
    load_ultralytics_space,
    ultralytics_only,
    ultralytics_only_defaults,
)
from service.errors import InvalidRequest

# YOLOv5's own files may carry `anchors: 3` uncommented; it has no meaning for an anchor-free head.
_IGNORED_SEED_KEYS = ("anchors",)


@dataclass(frozen=True)
class StudyPlan:
    """What to search and how to judge it, fully resolved."""

    seed: dict[str, float]  # all 28 YOLOv5 keys
    seed_name: str  # "scratch-low", ... or "uploaded"
    evolve: tuple[str, ...]  # YOLOv5 keys in YOLOv5's order, then ultralytics-only arguments
    ranges: dict[str, KeyRange]  # one per evolve key, overrides applied
    fixed: dict[str, float] = field(default_factory=dict)  # YOLOv5 keys and ultralytics-only arguments
    fitness_weights: tuple[float, ...] = YOLOV5_FITNESS_WEIGHTS

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {key: self.ranges[key].distribution() for key in self.evolve}

    def start_params(self) -> dict[str, float]:
        """Trial 0: the seed's values for the searched keys (for ultralytics-only arguments, what a
        trial gets when unnamed), clipped into narrowed ranges."""
        start = {**ultralytics_only_defaults(), **self.seed}
        return {k: self.ranges[k].clip(start[k]) for k in self.evolve}

    def hyp_for(self, params: Mapping[str, float]) -> dict[str, float]:
        """All 28 YOLOv5 keys for a trial: its params over the fixed values over the seed."""
        chosen = {**self.fixed, **params}
        return {k: chosen.get(k, v) for k, v in self.seed.items()}

    def ultralytics_args_for(self, params: Mapping[str, float]) -> dict[str, float | int]:
        """The ultralytics-only arguments the study names, with a trial's values: its params over the
        fixed values."""
        return ultralytics_only({**self.fixed, **params})

    def searched_params(self, values: Mapping[str, float], field_name: str, where: str) -> dict[str, float]:
        """The entries of ``values`` that this study searches, checked against its ranges (whole-number
        keys as ints): how earlier results join the study. InvalidRequest(field_name, where, ...) when
        none is searched or one lies outside its range."""
        params = {k: v for k, v in values.items() if k in self.ranges}
        if not params:
            raise InvalidRequest(field_name, where, f"has none of the searched keys {list(self.evolve)}")
        for key, value in params.items():
            check_in_range(field_name, where, key, value, self.ranges[key], "the study's range")
            if self.ranges[key].integer:
                params[key] = int(value)
        return params

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "seed_name": self.seed_name,
            "evolve": list(self.evolve),
            "ranges": {k: [r.low, r.high, r.gain, r.log, r.integer] for k, r in self.ranges.items()},
            "fixed": self.fixed,
            "fitness_weights": list(self.fitness_weights),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StudyPlan:
        ranges = {k: KeyRange(k, *entry) for k, entry in data["ranges"].items()}  # 4 entries before integer
        return cls(
            seed=dict(data["seed"]),
            seed_name=data["seed_name"],
            evolve=tuple(data["evolve"]),
            ranges=ranges,
            fixed=dict(data["fixed"]),
            fitness_weights=tuple(data["fitness_weights"]),
        )


def _number(field_name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(field_name, value, "must be a number")
    if not math.isfinite(value):
        raise InvalidRequest(field_name, value, "must be a finite number")
    return float(value)


def _space() -> dict[str, KeyRange]:
    return {**load_search_space(), **load_ultralytics_space()}


def check_in_range(field_name: str, shown: Any, key: str, value: float, bounds: KeyRange, whose: str) -> None:
    """InvalidRequest(field_name, shown, ...) unless ``value`` lies in ``bounds`` (``whose``: the
    plan's bounds or the study's range, for the message)."""
    if bounds.contains(value):
        return
    if bounds.integer and not float(value).is_integer():
        reason = f"{key}={value} is not a whole number in [{bounds.low:g}, {bounds.high:g}] ({whose})"
    else:
        reason = f"{key}={value} lies outside {whose}; it must lie within [{bounds.low}, {bounds.high}]"
    raise InvalidRequest(field_name, shown, reason)


def _check_allowed(field_name: str, key: str, value: float) -> None:
    whose = "YOLOv5's bounds" if key in HYP_KEYS else "ultralytics' tuner's bounds"
    check_in_range(field_name, value, key, value, _space()[key], whose)


def _known_key(field_name: str, key: str, ultralytics_only_ok: bool = True) -> None:
    extras = load_ultralytics_space()
    if key in HYP_KEYS or (ultralytics_only_ok and key in extras):
        return
    if key in extras:
        raise InvalidRequest(
            field_name, key, "is an ultralytics-only argument, not a YOLOv5 hyp key; name it in fixed or evolve"
        )
    valid = f"valid keys: {', '.join(HYP_KEYS)}"
    if ultralytics_only_ok:
        valid += f"; ultralytics-only arguments: {', '.join(extras)}"
    raise InvalidRequest(field_name, key, f"unknown YOLOv5 hyp key; {valid}")


def resolve_seed(seed_hyp: str | Mapping[str, Any]) -> tuple[dict[str, float], str]:
    """The 28 seed values and a name for them: a shipped file by name, or uploaded values (a mapping
    or YAML text; keys it leaves out come from scratch-low)."""
    if isinstance(seed_hyp, str) and seed_hyp in SEED_HYPS:
        return load_seed_hyp(seed_hyp), seed_hyp
    values: Any = seed_hyp
    if isinstance(seed_hyp, str):
        try:
            values = yaml.safe_load(seed_hyp)
        except yaml.YAMLError as exc:
            raise InvalidRequest("seed_hyp", seed_hyp, f"is neither a seed name nor valid YAML: {exc}") from None
        if not isinstance(values, dict):
            raise InvalidRequest("seed_hyp", seed_hyp, f"unknown seed hyp; valid names: {', '.join(SEED_HYPS)}")
    seed = load_seed_hyp("scratch-low")
    for key, value in values.items():
        if key in _IGNORED_SEED_KEYS:
            continue
        _known_key("seed_hyp", key, ultralytics_only_ok=False)
        seed[key] = _number(f"seed_hyp.{key}", value)
        _check_allowed(f"seed_hyp.{key}", key, seed[key])
    return seed, "uploaded"


def build_plan(
    seed_hyp: str | Mapping[str, Any],
    evolve: Sequence[str] | None = None,
    fixed: Mapping[str, float] | None = None,
    bounds: Mapping[str, Sequence[float]] | None = None,
    fitness_weights: Sequence[float] = YOLOV5_FITNESS_WEIGHTS,
    keys_from: KeySet = "yolov5-v7.0",
    segments: bool = True,
) -> StudyPlan:
    """Check the search settings of a request against each other and YOLOv5's bounds. Without
    ``evolve``, the keys of the key set ``keys_from``; on data without segment labels
    (``segments`` False), less the keys that need them, and a key that needs them may not be named."""
    seed, seed_name = resolve_seed(seed_hyp)
    fixed = dict(fixed or {})
    for key, value in fixed.items():
        _known_key("fixed", key)
        if key in HELD_KEYS:
            raise InvalidRequest(f"fixed.{key}", value, f"has no effect on the ultralytics backend: {HELD_KEYS[key]}")
        if not segments and key in NEEDS_SEGMENTS:
            raise InvalidRequest(f"fixed.{key}", value, f"cannot act on this data set: {NEEDS_SEGMENTS[key]}")
        _check_allowed(f"fixed.{key}", key, value)

    if evolve is None:
        keys = [k for k in key_set(keys_from) if k not in fixed and (segments or k not in NEEDS_SEGMENTS)]
    else:
        keys = list(evolve)
        for key in keys:
            _known_key("evolve", key)
            if key in HELD_KEYS:
                raise InvalidRequest("evolve", key, f"has no effect on the ultralytics backend: {HELD_KEYS[key]}")
            if not segments and key in NEEDS_SEGMENTS:
                raise InvalidRequest("evolve", key, f"cannot act on this data set: {NEEDS_SEGMENTS[key]}")
            if key in fixed:
                raise InvalidRequest("evolve", key, "is also in fixed; a key is either searched or held constant")
        if len(set(keys)) != len(keys):
            raise InvalidRequest("evolve", list(evolve), "lists a key twice")
    if not keys:
        raise InvalidRequest("evolve", list(evolve or []), "must name at least one key to search")

    space = _space()
    ranges = {k: space[k] for k in space if k in keys}  # YOLOv5's key order, then ultralytics-only
    for key, pair in (bounds or {}).items():
        _known_key("bounds", key)
        if key not in ranges:
            raise InvalidRequest(f"bounds.{key}", list(pair), f"{key} is not searched; add it to evolve")
        low, high = float(pair[0]), float(pair[1])
        if low >= high:
            raise InvalidRequest(f"bounds.{key}", list(pair), "low must be below high")
        default = space[key]
        if default.integer and not (low.is_integer() and high.is_integer()):
            raise InvalidRequest(f"bounds.{key}", list(pair), f"{key} takes whole numbers only")
        whose = "YOLOv5's" if key in HYP_KEYS else "ultralytics' tuner's"
        # Narrowing only: YOLOv5's bounds are where a value still means something (probabilities,
        # non-negative gains), and the sampler must not propose a training that cannot run.
        if low < default.low or high > default.high:
            raise InvalidRequest(
                f"bounds.{key}", list(pair), f"must lie within {whose} bounds [{default.low}, {default.high}]"
            )
        ranges[key] = KeyRange(key, low, high, default.gain, default.log and low > 0, default.integer)

    if len(fitness_weights) != 4 or not any(w > 0 for w in fitness_weights):
        raise InvalidRequest(
            "fitness_weights", list(fitness_weights), "needs 4 weights [P, R, mAP50, mAP50-95], not all 0"
        )
    return StudyPlan(
        seed=seed,
        seed_name=seed_name,
        evolve=tuple(ranges),
        ranges=ranges,
        fixed=fixed,
        fitness_weights=tuple(float(w) for w in fitness_weights),
    )
