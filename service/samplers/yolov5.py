"""YOLOv5's classic ``train.py --evolve`` (v7.0) as an Optuna sampler.

Each new trial: take the top ``min(5, n)`` completed trials, weights ``fitness - min + 1e-6``, draw
one parent by weight ('single' selection); mutate every key with probability 0.8 by a factor
``(gain * randn * r * 0.2 + 1).clip(0.3, 3.0)`` (``r`` one uniform draw per generation), redrawn until
something changes; clip to bounds; round to 5 decimals. Before any trial completes, the parent is
the seed trial's params.

One change from YOLOv5: the step multiplies, so a key at 0 (degrees, shear, mixup, flipud, ... in
the scratch files) never moves there. Here a key at 0 moves additively instead, by
``|factor - 1| x (high - low)``: the same random draw, scaled to the key's range. Whole-number
arguments (ultralytics' close_mosaic; YOLOv5 has none) always step additively, by
``(factor - 1) x (high - low)`` rounded, for the same reason. And a key YOLOv5 v7.0 never mutates
(gain 0: fliplr, perspective) moves with gain 1 when a study names it: naming a key searches it.

Probes (a study's ``probe_keys``): before evolution, the sampler proposes the seed hyps with one
probe key moved far, up then down (``first_probes``: x2 and x0.5, clipped to the key's range; a key
at 0 steps up by a quarter of its range instead), one probe per trial in order. Evolution's mutations
step by a few percent of a key, too little to tell apart at short lengths
(bench/results/length_signal); a loss gain doubled or halved changed 15-epoch fitness by 0.03-0.06
on small-objects, and quadrupled by more than doubled (bench/results/length_signal_far). So the
probes go on as a line search: once the seed trial and both of a key's first probes have completed,
if the better of them beat the seed trial, the key moves again the same way (x4, then x8 of the seed
value, at most PROBE_STEPS moves in all), for as long as each move beats the one before. Two
probes combine keys: once every first probe has completed, where two or more keys' first probes beat
the seed trial, each such key's better first probe together, ahead of the lines' next moves (a
screening of a few trials may end before the lines do); and when every line has ended, where two or
more keys ended away from the seed value, each key's best value together. Each probe is proposed
once: a probe any other trial already has (asked, running, ended, or enqueued as a retry) is not
proposed again, so a resumed study goes on with the next (a final combination equal to the first is
not trained twice); a probe due after results that are not in yet waits, and evolution runs
meanwhile. A probe whose trial failed for good ends its key's line there (with no combined probe).
The probes are screening trials like any other, tagged with the move they made (``TrialTags.probe``):
the best of them can be the parent evolution mutates, and the screening candidate the study
confirms. A study that names no probe keys probes DEFAULT_PROBE_KEYS, those it searches
(``default_probe_keys``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from hyps import KeyRange
from workers.trial_tags import TrialTags, probe_attrs, write_tags

MUTATION_PROB = 0.8
SIGMA = 0.2
PARENTS = 5
NAMED_GAIN = 1.0
PROBE_FACTORS = (2.0, 0.5)  # each probe key moved up, then down, by these factors of its seed value
PROBE_FROM_ZERO = 0.25  # a probe key at 0 steps up by this share of its range
PROBE_STEPS = 3  # the most moves along one probe key's line: x2, x4, x8 (or x0.5, x0.25, x0.125)
# What a study probes unless it says (probe_keys null): the loss gains and mosaic, where it searches
# them. The loss gains were chosen on bench/results/users_get_lines (small-objects +0.046 over
# scratch-low at 15 epochs over 6 searches, against +0.014 without probes; shapes: no change); mosaic,
# whose best probe confirmation judges whatever its screening rank (confirm_probe_keys), on
# bench/results/users_get_confirm_mosaic (shapes +0.032, where the loss gains did nothing).
DEFAULT_PROBE_KEYS = ("box", "cls", "mosaic")


def select_parent(fitnesses: Sequence[float], rng: np.random.RandomState, parents: int = PARENTS) -> int:
    """Index of the parent: one of the top ``parents`` by fitness, drawn with weight fitness - min + 1e-6.
    A non-finite fitness (which requests can no longer produce) counts as the lowest, so the draw's
    probabilities stay finite."""
    values = np.asarray(fitnesses, dtype=float)
    finite = np.isfinite(values)
    floor = values[finite].min() if finite.any() else 0.0
    values = np.where(finite, values, floor)
    order = np.argsort(-values, kind="stable")[:parents]
    top = values[order]
    weights = top - top.min() + 1e-6
    return int(order[rng.choice(len(order), p=weights / weights.sum())])


def mutate(
    parent: Mapping[str, float],
    ranges: Mapping[str, KeyRange],
    rng: np.random.RandomState,
    mutation_prob: float = MUTATION_PROB,
    sigma: float = SIGMA,
) -> dict[str, float]:
    """One YOLOv5 mutation of ``parent`` over the keys of ``ranges`` (see the module docstring)."""
    keys = list(ranges)
    # Every key in ``ranges`` is searched: one YOLOv5 v7.0 froze (gain 0: fliplr, perspective) steps
    # with NAMED_GAIN when a study names it, as YOLOv5's main branch marks those keys evolvable.
    gains = np.array([ranges[k].gain or NAMED_GAIN for k in keys], dtype=float)
    factors = np.ones(len(keys))
    if keys:  # with no key nothing can change, and YOLOv5's loop would never end
        while (factors == 1).all():
            draw = (rng.random_sample(len(keys)) < mutation_prob) * rng.randn(len(keys)) * rng.random_sample()
            factors = (gains * draw * sigma + 1).clip(0.3, 3.0)
    child: dict[str, float] = {}
    for key, factor in zip(keys, factors, strict=True):
        bounds, value = ranges[key], float(parent[key])
        if bounds.integer:
            # A whole-number argument (close_mosaic): a step of a few percent would round back to the
            # same number, so it steps additively, by (factor - 1) of its range, then rounds.
            step = round(value + (factor - 1.0) * (bounds.high - bounds.low))
            child[key] = int(min(max(step, bounds.low), bounds.high))
            continue
        if value == 0.0 and factor != 1.0:
            value = abs(factor - 1.0) * (bounds.high - bounds.low)
        else:
            value *= factor
        child[key] = min(max(round(value, 5), bounds.low), bounds.high)
    return child


@dataclass(frozen=True)
class Probe:
    """One probe: the params it trains and the move it made from the seed hyps, as its trial's tag."""

    params: dict[str, float]
    label: str


def _step(value: float, factor: float, bounds: KeyRange, first: bool) -> float:
    """``value`` moved by ``factor`` and clipped; on the first move a key at 0 steps up by
    PROBE_FROM_ZERO of its range instead (no factor moves 0); whole-number keys stay whole."""
    if value == 0.0 and first:
        moved = PROBE_FROM_ZERO * (bounds.high - bounds.low) if factor > 1 else 0.0
    else:
        moved = value * factor
    moved = float(math.floor(moved + 0.5)) if bounds.integer else round(moved, 5)
    return bounds.clip(moved)


def default_probe_keys(sampler: str, searched: Collection[str]) -> list[str]:
    """The keys a study probes when its request names none: DEFAULT_PROBE_KEYS that it searches, with
    the yolov5 sampler; none with another (only the yolov5 sampler probes)."""
    return [key for key in DEFAULT_PROBE_KEYS if key in searched] if sampler == "yolov5" else []


def _label(start: Mapping[str, float], moved: Mapping[str, float]) -> str:
    return ", ".join(f"{key} {start[key]:g} -> {moved[key]:g}" for key in moved if moved[key] != start[key])


def first_probes(start: Mapping[str, float], ranges: Mapping[str, KeyRange], keys: Sequence[str]) -> list[Probe]:
    """``start`` with one of ``keys`` moved by each of PROBE_FACTORS (see ``_step``), in the order of
    ``keys``. Moves that clip back onto ``start`` or onto an earlier move are left out."""
    probes: list[Probe] = []
    for key in keys:
        for factor in PROBE_FACTORS:
            value = _step(float(start[key]), factor, ranges[key], first=True)
            params = {**start, key: value}
            if value != start[key] and all(p.params != params for p in probes):
                probes.append(Probe(params, _label(start, params)))
    return probes


class _Scores:
    """The fitness of completed screening trials, looked up by params."""

    def __init__(self, screened: Sequence[FrozenTrial]) -> None:
        self._done = [(t.params, float(t.value)) for t in screened]  # type: ignore[arg-type]

    def of(self, params: Mapping[str, float]) -> float | None:
        return next((value for done, value in self._done if _same(params, done)), None)


def due_probes(
    start: Mapping[str, float],
    ranges: Mapping[str, KeyRange],
    keys: Sequence[str],
    screened: Sequence[FrozenTrial],
) -> list[Probe]:
    """Every probe due given ``screened``, the study's completed screening trials, in order: the first
    probes, each key's next move along its line (see the module docstring), then the combined probe once
    every line has ended. Probes some trial already has are in it too: the caller leaves those out."""
    firsts = first_probes(start, ranges, keys)
    due = list(firsts)
    scores = _Scores(screened)
    seed_score = scores.of(start)
    if seed_score is None:
        return due
    best: dict[str, float] = {}
    early: dict[str, float] = {}  # each key's better first probe, where it beat the seed trial
    lines: list[Probe] = []
    firsts_scored = True
    ended = True
    for key in keys:
        # (score, value, the factor its line goes on by) of each of this key's first probes.
        moves = [p.params[key] for p in firsts if p.params[key] != start[key]]
        line = [(scores.of({**start, key: value}), value, _factor(value, start[key])) for value in moves]
        scored = [(score, value, factor) for score, value, factor in line if score is not None]
        if len(scored) < len(line):
            firsts_scored = ended = False
            continue
        if not scored or max(scored)[0] <= seed_score:
            continue
        score, value, factor = max(scored)
        early[key] = value
        for _ in range(PROBE_STEPS - 1):
            moved = _step(value, factor, ranges[key], first=False)
            if moved == value:
                break
            params = {**start, key: moved}
            next_score = scores.of(params)
            if next_score is None:
                lines.append(Probe(params, _label(start, params)))
                ended = False
                break
            if next_score <= score:
                break
            score, value = next_score, moved
        best[key] = value
    if firsts_scored and len(early) >= 2:
        # The first probes' combination, ahead of the lines' next moves: screening may end before the
        # lines do, and keys that help alone tend to help together (bench/results/length_signal_close_mosaic).
        combined = {**start, **early}
        due.append(Probe(combined, _label(start, combined)))
    due += lines
    if ended and len(best) >= 2:
        combined = {**start, **best}
        due.append(Probe(combined, _label(start, combined)))
    return due


def _factor(moved: float, start: float) -> float:
    """The factor a line goes on by: up or down, as its first move went."""
    return PROBE_FACTORS[0] if moved > start else PROBE_FACTORS[1]


class YOLOv5EvolutionSampler(BaseSampler):
    """Proposes each trial as a mutation of a fitness-weighted parent, as YOLOv5's --evolve does; the
    study's probes first."""

    def __init__(
        self,
        ranges: Mapping[str, KeyRange],
        start: Mapping[str, float],
        seed: int | None = None,
        probe_keys: Sequence[str] = (),
    ) -> None:
        self._ranges = dict(ranges)
        self._start = {k: float(start[k]) for k in self._ranges}
        self._probe_keys = list(probe_keys)
        self._rng = np.random.RandomState(seed)
        self._fallback = RandomSampler(seed=seed)
        self._pending: dict[int, dict[str, float]] = {}
        self._lock = threading.Lock()

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._fallback.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        # One generation per trial: all keys are mutated together here, then handed out per key.
        trials = study.get_trials(deepcopy=False)
        # Confirmation and diagnostics trainings repeat earlier params at other seeds and lengths: not
        # part of the history evolution selects parents from, or that probes are judged by.
        screened = [t for t in trials if t.state == TrialState.COMPLETE and TrialTags.of(t).is_screening]
        usable = [t for t in screened if set(self._ranges) <= set(t.params)]
        fixed = trial.system_attrs.get("fixed_params", {})  # enqueued: the seed trial, a retry, a confirmation
        with self._lock:
            probing = self._probe_keys and not set(self._ranges) <= set(fixed)
            probe = self._next_probe(trials, screened, trial) if probing else None
            if probe is not None:
                self._pending[trial.number] = dict(probe.params)
                # Optuna's own samplers (NSGA-II's generation) write their trial attributes this way.
                write_tags(study._storage, trial._trial_id, probe_attrs(probe.label))
                return
            if usable:
                fitnesses = [float(t.value) for t in usable]  # type: ignore[arg-type]
                parent = usable[select_parent(fitnesses, self._rng)].params
            else:
                parent = self._start
            # Keyed by number: unique within the study, and this sampler serves one study.
            self._pending[trial.number] = mutate(parent, self._ranges, self._rng)

    def _next_probe(
        self, trials: Sequence[FrozenTrial], screened: Sequence[FrozenTrial], trial: FrozenTrial
    ) -> Probe | None:
        """The first probe due (judged by ``screened``) that no other of ``trials`` has had: asked,
        running, ended, or enqueued (a retry)."""
        others = [t for t in trials if t.number != trial.number]
        proposed = [dict(t.params) or dict(t.system_attrs.get("fixed_params", {})) for t in others]
        proposed += [p for number, p in self._pending.items() if number != trial.number]
        for probe in due_probes(self._start, self._ranges, self._probe_keys, screened):
            if not any(_same(probe.params, params) for params in proposed):
                return probe
        return None

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        with self._lock:
            value = self._pending.get(trial.number, {}).get(param_name)
        bounds = self._ranges.get(param_name)
        if value is None or bounds is None or not bounds.contains(value):
            return self._fallback.sample_independent(study, trial, param_name, param_distribution)
        return value

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        with self._lock:
            self._pending.pop(trial.number, None)


def _same(probe: Mapping[str, float], params: Mapping[str, Any]) -> bool:
    return all(key in params and math.isclose(float(params[key]), value) for key, value in probe.items())


__all__ = [
    "DEFAULT_PROBE_KEYS",
    "PROBE_FACTORS",
    "PROBE_STEPS",
    "Probe",
    "YOLOv5EvolutionSampler",
    "default_probe_keys",
    "due_probes",
    "first_probes",
    "mutate",
    "select_parent",
]
