"""The confirmation stage: which screening trials to train again, on which seeds, and what the
repeated trainings say.

Screening trials all train at one seed, so the top screening fitness is partly luck, and short
trainings favour what helps early. Confirmation trains the top ``confirm_top_k`` distinct
candidates and the baseline (the seed hyps, trial 0) again on the same ``confirm_seeds`` fresh
training seeds, for ``confirm_epochs`` epochs, and compares each candidate with the baseline seed
by seed (paired). The verdict:

* ``improved``: the winner (highest mean) is a candidate and its interval on the paired
  difference to the baseline lies above 0;
* ``inconclusive``: the winner is a candidate but the interval reaches 0 or below;
* ``defaults``: the baseline has the highest mean.

A study's ``confirm_probe_keys`` take places among the candidates whatever their screening rank:
each key's best probe (the screening trial that moved that key alone) in place of the lowest-ranked
candidate, so that a key short trainings cannot rank (mosaic) is judged at the confirmation length.
The places are filled before any confirmation training, so k and the correction below stay as they are.

The interval is Student's t on the paired differences (mean +- t(1 - a/2, n-1) x sd / sqrt(n)).
The winner is picked among k candidates on the very seeds that measure its gain, so a 95% interval
per candidate would say ``improved`` too often when no candidate is better (the best of k noisy
draws). The intervals are therefore Bonferroni-corrected: each at confidence 1 - 0.05 / k, so that
all k hold together with 95% confidence: with seed noise alone ``improved`` came out in 1.1-2.9% of
simulated studies, k 1-5 and 2-8 seeds (bench/simulate_verdict.py; the goal is at most 5%).
With 2 seeds t is 12.7 even for k = 1, so a verdict of ``improved`` needs more seeds or a very
steady gain.

Rungs (``confirm_rungs`` > 1): confirmation climbs toward its length through rungs of independent
trainings, each RUNG_FACTOR times longer than the one below. The lowest rung trains
``confirm_top_k`` x RUNG_FACTOR^(rungs-1) candidates; each rung promotes the 1/RUNG_FACTOR of its
candidates with the highest mean paired gain over the seed hyps; the top rung's ``confirm_top_k``
give the verdict, as above. Every rung trains on seeds of its own, so the top rung's seeds measure
candidates they did not choose (the correction for the top rung's own pick stays). No rung's
trainings reach the sampler: it is never asked again once screening has ended.

Racing (``confirm_seeds_max`` above ``confirm_seeds``, the top rung only): every entry starts on
``confirm_seeds`` seeds; once their trainings have ended, a candidate drops when its own 95%
interval lies below 0, or when its mean gain is not above 0 after NO_GAIN_DROP_SEEDS seeds; the
race ends when none is left, when the leader's corrected interval lies above 0, or at the cap;
otherwise the seed hyps and the candidates left train on one more seed. Each interval is corrected
for k candidates x looks (looks = cap - confirm_seeds + 1, every time the race may stop), so the
union of all the looks' claims still holds at 95%: dropping only removes claims.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import optuna
from optuna.trial import FrozenTrial, TrialState
from scipy.stats import spearmanr
from scipy.stats import t as student_t

from service.schemas import StudyRequest
from service.studies.optuna_internals import full_params
from service.studies.plan import StudyPlan
from workers.trial_tags import CONFIRMATION, DIAGNOSTICS, TrialTags, planned_attrs

BASELINE_TRIAL = 0  # trial 0 is the seed hyps, enqueued when the study is created
CONFIDENCE = 0.95
# The Optuna study user attribute that records the confirmation plan once screening has ended, so
# a restarted service confirms the same candidates on the same seeds.
PLAN_ATTR = "hypevolve_confirmation"  # the top rung's (the only one's, with one rung)
# Racing drops a candidate whose mean paired gain is not above 0 after this many seeds.
NO_GAIN_DROP_SEEDS = 3
RUNGS_ATTR = "hypevolve_rungs"  # the rungs' below the top, lowest first, each once it is planned

# What takes a place among confirmation's candidates unless a study says (confirm_probe_keys null),
# where the study probes it: mosaic, whose effect 3-epoch screening cannot rank (halved: +0.003
# +- 0.13 at 3 epochs, +0.031 [+0.024, +0.037] at 15 on shapes; bench/results/length_signal_aug).
DEFAULT_CONFIRM_PROBE_KEYS = ("mosaic",)

Verdict = Literal["improved", "inconclusive", "defaults"]


def default_confirm_probe_keys(probe_keys: Sequence[str], top_k: int) -> list[str]:
    """The keys whose best probe takes a place in confirmation when a study names none: those of
    DEFAULT_CONFIRM_PROBE_KEYS it probes, as many as confirm_top_k - 1 places allow."""
    return [key for key in DEFAULT_CONFIRM_PROBE_KEYS if key in probe_keys][: max(top_k - 1, 0)]


def draws_plots(tags: TrialTags, screening_seed: int) -> bool:
    """Whether a training keeps ultralytics' diagnostic plots: every confirmation entry's training on
    the first confirmation seed (the winner's and the baseline's are the ones shown), and the
    diagnostics training. Screening trials train without them, for speed."""
    if tags.stage == DIAGNOSTICS:
        return True
    return tags.stage == CONFIRMATION and tags.train_seed == plotting_seed(screening_seed)


def plotting_seed(screening_seed: int) -> int:
    """The confirmation seed whose trainings keep their plots: the top rung's first."""
    return confirmation_seeds(screening_seed, 1)[0]


def start_diagnostics(study: optuna.Study, best: int, seed: int) -> None:
    """Enqueue, once, the diagnostics training of trial ``best`` (screening's best, the one exported):
    its params, the study's ``seed`` and epochs, plots on."""
    trials = study.get_trials(deepcopy=False)
    if any(TrialTags.of(t).stage == DIAGNOSTICS for t in trials):
        return
    trial = next(t for t in trials if t.number == best)
    study.enqueue_trial(full_params(trial), user_attrs=planned_attrs(DIAGNOSTICS, best, seed))


def confirmation_seeds(screening_seed: int, count: int) -> list[int]:
    """``count`` training seeds, none equal to the screening seed (the seeds right after it)."""
    return [(screening_seed + i) % 2**31 for i in range(1, count + 1)]


def rung_seeds(screening_seed: int, count: int, rung: int, rungs: int, top_cap: int | None = None) -> list[int]:
    """Rung ``rung``'s first ``count`` seeds: the top rung takes the first after the screening seed
    (as a study of one rung does) and keeps the next up to ``top_cap`` for racing; each rung below
    takes the next ``count`` after those, so that no two rungs share a seed."""
    if rung == rungs - 1:
        return confirmation_seeds(screening_seed, count)
    start = (top_cap or count) + (rungs - 2 - rung) * count
    return confirmation_seeds(screening_seed, start + count)[start:]


@dataclass(frozen=True)
class ConfirmationPlan:
    """What confirmation trains: the baseline and candidates (screening trial numbers with the full
    params each trains with), the seeds and the epochs."""

    baseline: dict[str, Any]
    candidates: dict[int, dict[str, Any]]  # screening trial number -> params
    screening_fitness: dict[int, float]
    seeds: list[int]
    epochs: int
    rung: int = 0  # 0 the lowest; the top rung's plan is the one the verdict reads
    # Racing (the top rung, confirm_seeds_max above confirm_seeds): the most seeds an entry may get,
    # and each seed added so far with the candidates that raced on it (the seed hyps train every one).
    seed_cap: int | None = None
    added: list[tuple[int, list[int]]] = field(default_factory=list)

    @property
    def cap(self) -> int:
        return max(self.seed_cap or 0, len(self.seeds))

    @property
    def looks(self) -> int:
        """How many times racing may judge the candidates: at the first seeds, then after each seed added."""
        return self.cap - len(self.seeds) + 1

    def all_seeds(self) -> list[int]:
        return [*self.seeds, *(seed for seed, _ in self.added)]

    def racing(self) -> list[int]:
        """The candidates still racing: those the last seed added was trained for (at first, all)."""
        return list(self.added[-1][1]) if self.added else list(self.candidates)

    def entries(self) -> dict[int, dict[str, Any]]:
        """Every confirmed entry by trial number, the baseline first."""
        return {BASELINE_TRIAL: self.baseline, **self.candidates}

    def trainings(self) -> list[tuple[int, int, dict[str, Any]]]:
        """(trial confirmed, seed, params) of every confirmation training, seed by seed: every entry
        on the first seeds, then the seed hyps and the candidates still racing on each seed added."""
        first = [(number, seed, params) for seed in self.seeds for number, params in self.entries().items()]
        for seed, racing in self.added:
            first += [(BASELINE_TRIAL, seed, self.baseline), *((n, seed, self.candidates[n]) for n in racing)]
        return first

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "candidates": [[n, p] for n, p in self.candidates.items()],
            "screening_fitness": [[n, v] for n, v in self.screening_fitness.items()],
            "seeds": self.seeds,
            "epochs": self.epochs,
            "rung": self.rung,
            "seed_cap": self.seed_cap,
            "added": [[seed, racing] for seed, racing in self.added],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConfirmationPlan:
        return cls(
            baseline=dict(data["baseline"]),
            candidates={int(n): dict(p) for n, p in data["candidates"]},
            screening_fitness={int(n): float(v) for n, v in data["screening_fitness"]},
            seeds=[int(s) for s in data["seeds"]],
            epochs=int(data["epochs"]),
            rung=int(data.get("rung", 0)),  # plans from before rungs: the one rung
            seed_cap=data.get("seed_cap"),
            added=[(int(seed), [int(n) for n in racing]) for seed, racing in data.get("added", [])],
        )


def plan_confirmation(
    plan: StudyPlan,
    trials: Sequence[FrozenTrial],
    top_k: int,
    seeds: list[int],
    epochs: int,
    rung: int = 0,
    seed_cap: int | None = None,
    probe_keys: Sequence[str] = (),
) -> ConfirmationPlan:
    """The top ``top_k`` completed screening trials by fitness (ties: the earlier trial), distinct in
    the hyps they train with and other than the baseline's, plus the baseline. Imported trials count
    like any other; keys a trial lacks take the seed trial's values, as its export would.

    Each of ``probe_keys`` (a study's confirm_probe_keys, at most ``top_k`` - 1) takes a place whatever
    its screening rank: the best screening trial that moved that key alone from the seed hyps (its
    probes) goes in, in place of the lowest-ranked candidate. A key with no such trial, or whose best
    is among the candidates already, leaves its place to the ranking."""
    start = plan.start_params()

    def full(params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: params.get(k, start[k]) for k in plan.evolve}

    def key(params: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(sorted(full(params).items()))

    completed = [
        t for t in trials if t.state == TrialState.COMPLETE and TrialTags.of(t).is_screening and t.value is not None
    ]
    ranked = sorted(completed, key=lambda t: (-float(t.value), t.number))  # type: ignore[arg-type]
    distinct: list[FrozenTrial] = []  # the ranking, one trial per set of hyps, the seed hyps left out
    seen = {key(start)}
    for trial in ranked:
        if key(trial.params) not in seen:
            seen.add(key(trial.params))
            distinct.append(trial)
    reserved = list(probe_keys)[: max(top_k - 1, 0)]
    chosen = [t.number for t in distinct[: top_k - len(reserved)]]
    for probe_key in reserved:
        moved = [t for t in distinct if _moved_keys(full(t.params), start) == [probe_key]]
        if moved and moved[0].number not in chosen:
            chosen.append(moved[0].number)
    chosen += [t.number for t in distinct if t.number not in chosen][: top_k - len(chosen)]
    candidates = {t.number: full(t.params) for t in distinct if t.number in chosen}  # in screening's order
    fitness = {t.number: float(t.value) for t in ranked}  # type: ignore[arg-type]
    screening_fitness = {n: fitness[n] for n in (BASELINE_TRIAL, *candidates) if n in fitness}
    return ConfirmationPlan(full(start), candidates, screening_fitness, list(seeds), epochs, rung, seed_cap)


def _moved_keys(params: Mapping[str, Any], start: Mapping[str, Any]) -> list[str]:
    return [k for k, v in params.items() if not math.isclose(float(v), float(start[k]))]


def saved_plan(study: optuna.Study) -> ConfirmationPlan | None:
    """The top rung's confirmation plan recorded on ``study``, once it is planned."""
    return saved_plan_of(study.user_attrs)


def saved_plan_of(study_attrs: Mapping[str, Any]) -> ConfirmationPlan | None:
    """The top rung's confirmation plan among a study's user attributes, once it is planned."""
    data = study_attrs.get(PLAN_ATTR)
    return ConfirmationPlan.from_json(data) if data else None


def saved_rungs_of(study_attrs: Mapping[str, Any]) -> list[ConfirmationPlan]:
    """Every rung planned so far, the lowest first (the top rung last, once it is planned)."""
    lower = [ConfirmationPlan.from_json(data) for data in study_attrs.get(RUNGS_ATTR, [])]
    top = saved_plan_of(study_attrs)
    return [*lower, top] if top is not None else lower


def _record_rung(study: optuna.Study, rung: ConfirmationPlan, top: int) -> None:
    if rung.rung == top:
        study.set_user_attr(PLAN_ATTR, rung.to_json())
    else:
        lower = [p.to_json() for p in saved_rungs_of(study.user_attrs) if p.rung < rung.rung]
        study.set_user_attr(RUNGS_ATTR, [*lower, rung.to_json()])


def promote(lower: ConfirmationPlan, result: ConfirmationResult, request: StudyRequest) -> ConfirmationPlan:
    """The plan of the rung above ``lower``, once ``lower`` has finished: its candidates with the highest
    mean paired gain over the seed hyps (those without a paired number last; ties keep screening's
    order), on the next rung's seeds and length."""
    rung = lower.rung + 1

    def gain(entry: ConfirmedEntry) -> float | None:
        return entry.vs_baseline.mean if entry.vs_baseline is not None else None

    ranked = sorted(result.candidates, key=lambda e: (gain(e) is None, -(gain(e) or 0.0)))
    chosen = [entry.trial for entry in ranked[: request.rung_candidates()[rung]]]
    top = rung == request.confirm_rungs - 1
    return ConfirmationPlan(
        baseline=lower.baseline,
        candidates={n: lower.candidates[n] for n in chosen},
        screening_fitness={n: v for n, v in lower.screening_fitness.items() if n == BASELINE_TRIAL or n in chosen},
        seeds=rung_seeds(request.seed, request.confirm_seeds, rung, request.confirm_rungs, request.seed_cap()),
        epochs=request.rung_epochs()[rung],
        rung=rung,
        seed_cap=request.seed_cap() if top else None,
    )


def raced(plan: ConfirmationPlan, result: ConfirmationResult, screening_seed: int) -> ConfirmationPlan:
    """``plan`` with one more seed for the candidates ``result`` says still race (result.racing)."""
    seed = confirmation_seeds(screening_seed, plan.cap)[len(plan.all_seeds())]
    return replace(plan, added=[*plan.added, (seed, list(result.racing))])


def start_confirmation(study: optuna.Study, plan: StudyPlan, request: StudyRequest) -> ConfirmationPlan | None:
    """The rung to run now, its trainings enqueued; None, recording nothing, when no completed
    screening trial differs from the seed hyps (there is nothing to confirm them against).

    The lowest rung's candidates are chosen from screening once; a rung that has finished promotes
    its best to the next rung, until the top. Each plan is recorded on the study when made, so a
    restarted service runs the same rungs on the same seeds; each planned training that has no
    trial yet is enqueued (after a restart too), carrying its stage, rung, the trial it confirms,
    its seed and its length, which the runner reads back when it asks for the trial. The sampler is
    never asked for a proposal after screening, so the repeated evaluations cannot bias it."""
    trials = study.get_trials(deepcopy=False)
    top = request.confirm_rungs - 1
    rungs = saved_rungs_of(study.user_attrs)
    if not rungs:
        seeds = rung_seeds(request.seed, request.confirm_seeds, 0, request.confirm_rungs, request.seed_cap())
        first = request.rung_candidates()[0]
        cap = request.seed_cap() if top == 0 else None
        current = plan_confirmation(
            plan, trials, first, seeds, request.rung_epochs()[0], seed_cap=cap,
            probe_keys=request.confirm_probe_keys or (),
        )  # fmt: skip
        if not current.candidates:
            return None
        _record_rung(study, current, top)
    else:
        current = rungs[-1]
        result = confirmation_result(current, trials, top=current.rung == top)
        if current.rung < top and result.finished:
            current = promote(current, result, request)
            _record_rung(study, current, top)
        elif current.rung == top and result.racing:
            current = raced(current, result, request.seed)
            _record_rung(study, current, top)
    existing = {
        (tags.confirms, tags.train_seed)
        for tags in map(TrialTags.of, trials)
        if tags.stage == CONFIRMATION and (tags.rung or 0) == current.rung
    }
    for number, seed, params in current.trainings():
        if (number, seed) not in existing:
            attrs = planned_attrs(CONFIRMATION, number, seed, current.epochs, current.rung)
            study.enqueue_trial(params, user_attrs=attrs)
    return current


# -- what the trainings say ---------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float | None  # None with fewer than 2 paired seeds
    high: float | None


@dataclass(frozen=True)
class ConfirmedEntry:
    trial: int
    params: dict[str, Any]
    screening_fitness: float | None
    fitness_by_seed: dict[int, float]
    mean: float | None
    vs_baseline: Interval | None = None
    dropped: bool = False  # racing stopped training it: its interval showed it could not beat the seed hyps


@dataclass(frozen=True)
class ConfirmationResult:
    baseline: ConfirmedEntry
    candidates: list[ConfirmedEntry]
    finished: bool  # no confirmation training is waiting or running
    verdict: Verdict | None  # set once finished
    winner: int | None
    noise_floor: float | None  # the baseline's seed-to-seed standard deviation
    rank_correlation: float | None  # Spearman: screening fitness vs confirmed mean, over candidates
    epochs: int
    seeds: list[int] = field(default_factory=list)
    trainings_done: int = 0
    trainings_total: int = 0
    confidence: float = CONFIDENCE  # of each candidate's interval (corrected_confidence)
    rung: int = 0
    promoted: list[int] | None = None  # on a rung below the top: the candidates the next rung trains
    seed_cap: int = 0  # the most seeds racing may give an entry (the first seeds' count: no racing)
    # Once every planned training has ended and racing goes on: the candidates that get one more seed.
    racing: list[int] = field(default_factory=list)


def corrected_confidence(candidates: int, looks: int = 1) -> float:
    """The confidence of each candidate's interval when ``candidates`` are compared with the seed
    hyps at up to ``looks`` times (Bonferroni): together, all the intervals hold with CONFIDENCE."""
    return 1 - (1 - CONFIDENCE) / max(candidates * looks, 1)


def next_racers(plan: ConfirmationPlan, baseline: ConfirmedEntry, candidates: Sequence[ConfirmedEntry]) -> list[int]:
    """Racing at the top rung, once every planned training has ended: the candidates that train on
    one more seed, or none when the race is over. It is over at the seed cap; when no candidate
    can still beat the seed hyps (each drops once its own 95% interval lies below 0); or when the
    leader's corrected interval lies above 0 (the verdict is improved whatever more seeds say,
    as the correction covers every look). Otherwise every candidate still in the race goes on."""
    if len(plan.all_seeds()) >= plan.cap:
        return []
    racing = [e for e in candidates if e.trial in plan.racing() and e.mean is not None]
    alive = []
    for entry in racing:
        paired = [
            v - baseline.fitness_by_seed[s] for s, v in entry.fitness_by_seed.items() if s in baseline.fitness_by_seed
        ]
        own = paired_interval(paired) if paired else None
        hopeless = own is not None and own.high is not None and own.high < 0
        # No gain after NO_GAIN_DROP_SEEDS seeds: a candidate truly better by 2 noise sds shows none
        # there less than 1% of the time; a candidate no better, half the time.
        no_gain = len(paired) >= NO_GAIN_DROP_SEEDS and own is not None and own.mean <= 0
        if not hopeless and not no_gain:
            alive.append(entry)
    if not alive:
        return []
    leader = max(alive, key=lambda e: e.mean or 0.0)
    vs = leader.vs_baseline
    if vs is not None and vs.low is not None and vs.low > 0:
        return []
    return [entry.trial for entry in alive]


def paired_interval(differences: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean of paired differences with its two-sided Student-t interval (no interval under 2 values)."""
    n = len(differences)
    mean = statistics.fmean(differences)
    if n < 2:
        return Interval(mean, None, None)
    half = float(student_t.ppf(0.5 + confidence / 2, n - 1)) * statistics.stdev(differences) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half)


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None under 3 pairs or with a constant side."""
    if len(xs) != len(ys) or len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return float(spearmanr(xs, ys).statistic)


def decide(baseline: ConfirmedEntry, candidates: Sequence[ConfirmedEntry]) -> tuple[Verdict, int | None]:
    """The verdict and the winner's trial number: highest mean wins, the baseline on ties. With no
    confirmed number at all (every training failed): inconclusive, no winner."""
    winner = baseline
    for entry in candidates:
        if entry.mean is not None and (winner.mean is None or entry.mean > winner.mean):
            winner = entry
    if winner is baseline and baseline.mean is not None:
        return "defaults", baseline.trial
    if winner.mean is None:
        return "inconclusive", None
    interval = winner.vs_baseline
    if interval is not None and interval.low is not None and interval.low > 0:
        return "improved", winner.trial
    return "inconclusive", winner.trial


def confirmation_result(plan: ConfirmationPlan, trials: Sequence[FrozenTrial], top: bool = True) -> ConfirmationResult:
    """The numbers so far of rung ``plan``: fitness per entry and seed from its completed trainings,
    and once none is waiting or running, the verdict if it is the ``top`` rung (a rung below only
    promotes)."""
    fitness: dict[int, dict[int, float]] = {n: {} for n in plan.entries()}
    confidence = corrected_confidence(len(plan.candidates), plan.looks)
    seeds = plan.all_seeds()
    unfinished = False
    present: set[tuple[int, int]] = set()
    for trial in trials:
        tags = TrialTags.of(trial)
        if tags.stage != CONFIRMATION or tags.confirms is None or tags.train_seed is None:
            continue
        if (tags.rung or 0) != plan.rung:
            continue
        if trial.state in (TrialState.WAITING, TrialState.RUNNING):
            unfinished = True
        number, seed = tags.confirms, tags.train_seed
        present.add((number, seed))
        if trial.state == TrialState.COMPLETE and trial.value is not None and number in fitness:
            fitness[number].setdefault(seed, float(trial.value))

    def entry(number: int, against: dict[int, float] | None) -> ConfirmedEntry:
        by_seed = {s: fitness[number][s] for s in seeds if s in fitness[number]}
        mean = statistics.fmean(by_seed.values()) if by_seed else None
        vs = None
        if against is not None:
            paired = [by_seed[s] - against[s] for s in seeds if s in by_seed and s in against]
            vs = paired_interval(paired, confidence) if paired else None
        dropped = number != BASELINE_TRIAL and number not in plan.racing()
        screening = plan.screening_fitness.get(number)
        return ConfirmedEntry(number, plan.entries()[number], screening, by_seed, mean, vs, dropped)

    baseline = entry(BASELINE_TRIAL, None)
    candidates = [entry(n, baseline.fitness_by_seed) for n in plan.candidates]
    done = sum(len(v) for v in fitness.values())
    # Every planned training exists (the runner enqueues a look's at once) and has ended; at the top
    # rung, racing then gives some candidates one more seed, or ends.
    ended = not unfinished and all((n, s) in present for n, s, _ in plan.trainings())
    racing = next_racers(plan, baseline, candidates) if ended and top else []
    finished = ended and not racing
    verdict: Verdict | None = None
    winner: int | None = None
    if finished and top:
        # Candidates racing dropped trained on fewer seeds: they are out of the comparison.
        verdict, winner = decide(baseline, [c for c in candidates if not c.dropped])
    base_values = list(baseline.fitness_by_seed.values())
    scored = [c for c in candidates if c.mean is not None and c.screening_fitness is not None]
    return ConfirmationResult(
        baseline=baseline,
        candidates=candidates,
        finished=finished,
        verdict=verdict,
        winner=winner,
        noise_floor=statistics.stdev(base_values) if len(base_values) >= 2 else None,
        rank_correlation=spearman(
            [c.screening_fitness for c in scored],  # type: ignore[misc]
            [c.mean for c in scored],  # type: ignore[misc]
        ),
        epochs=plan.epochs,
        seeds=seeds,
        trainings_done=done,
        trainings_total=len(plan.trainings()),
        confidence=confidence,
        rung=plan.rung,
        seed_cap=plan.cap,
        racing=racing,
    )
