"""The search space: YOLOv5's evolution bounds and gains per hyp key, loaded from ``data/search_space.yaml``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache

import optuna
import yaml

from hyps.files import HYP_KEYS, read_data_file
from hyps.translate import HELD_KEYS


@dataclass(frozen=True)
class KeyRange:
    """Where one hyp key may move: ``[low, high]``, YOLOv5's mutation gain, and log-scale sampling."""

    key: str
    low: float
    high: float
    gain: float
    log: bool = False

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def distribution(self) -> optuna.distributions.FloatDistribution:
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)


@cache
def load_search_space() -> dict[str, KeyRange]:
    """All 28 YOLOv5 keys with their bounds and gains, in YOLOv5's key order."""
    raw = yaml.safe_load(read_data_file("search_space.yaml"))
    if list(raw) != list(HYP_KEYS):
        raise ValueError(f"search_space.yaml must list the YOLOv5 keys in order; got {list(raw)}")
    space = {}
    for key, spec in raw.items():
        entry = KeyRange(key, float(spec["low"]), float(spec["high"]), float(spec["gain"]), bool(spec.get("log")))
        if entry.low >= entry.high or (entry.log and entry.low <= 0):
            raise ValueError(f"search_space.yaml: bad range for {key!r}: {spec}")
        space[key] = entry
    return space


def default_evolve_keys() -> tuple[str, ...]:
    """Keys searched when a study names none: those that change an ultralytics training (not held)
    and that YOLOv5's own --evolve mutates (gain > 0)."""
    return tuple(k for k, r in load_search_space().items() if k not in HELD_KEYS and r.gain > 0)


def distributions(keys: Iterable[str]) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna distributions for ``keys``, in YOLOv5's key order."""
    wanted = set(keys)
    space = load_search_space()
    unknown = sorted(wanted - set(space))
    if unknown:
        raise ValueError(f"unknown hyp keys {unknown}; valid keys: {', '.join(space)}")
    return {k: r.distribution() for k, r in space.items() if k in wanted}


def out_of_bounds(values: Mapping[str, float]) -> dict[str, float]:
    """The entries of ``values`` that lie outside YOLOv5's bounds (empty when all are inside)."""
    space = load_search_space()
    return {k: v for k, v in values.items() if k in space and not space[k].contains(v)}
