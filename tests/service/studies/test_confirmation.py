"""The confirmation stage's choices and statistics, on known numbers."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from service.schemas import StudyRequest
from service.studies.confirmation import (
    ConfirmationPlan,
    ConfirmedEntry,
    Interval,
    confirmation_result,
    confirmation_seeds,
    decide,
    paired_interval,
    plan_confirmation,
    rung_seeds,
    saved_plan,
    spearman,
    start_confirmation,
)
from service.studies.plan import build_plan
from workers.storage import open_optuna_storage
from workers.trial_tags import CONFIRMATION, TrialTags, import_attrs, planned_attrs

PLAN = build_plan("scratch-low", evolve=["lr0", "mosaic"])
DISTRIBUTIONS = PLAN.distributions()


def _trial(
    number: int, value: float | None, params: dict[str, Any], state: TrialState = TrialState.COMPLETE, **attrs: Any
) -> FrozenTrial:
    trial = optuna.trial.create_trial(
        params=params,
        distributions={k: DISTRIBUTIONS[k] for k in params},
        value=value if state == TrialState.COMPLETE else None,
        state=state,
        user_attrs=attrs,
    )
    trial.number = number
    return trial


def test_paired_interval_is_students_t_on_the_differences() -> None:
    interval = paired_interval([0.01, 0.02, 0.03])
    # mean 0.02, sd 0.01, t(0.975, 2) = 4.302653: half-width 4.302653 x 0.01 / sqrt(3).
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert interval.mean == pytest.approx(0.02)
    assert interval.low == pytest.approx(0.02 - half, abs=1e-6)
    assert interval.high == pytest.approx(0.02 + half, abs=1e-6)
    # One pair has a mean but no interval.
    assert paired_interval([0.05]) == Interval(0.05, None, None)


def test_spearman_on_ranks_with_ties_and_too_few_pairs() -> None:
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    # Ties take average ranks: x ranks 1, 2.5, 2.5, 4 against y ranks 1, 2, 3, 4.
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833, abs=1e-6)
    assert spearman([1, 2], [1, 2]) is None
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def _entry(trial: int, mean: float | None, low: float | None = None, high: float | None = None) -> ConfirmedEntry:
    vs = None if trial == 0 or mean is None else Interval(mean - 0.5, low, high)
    return ConfirmedEntry(trial, {}, None, {}, mean, vs)


def test_verdicts() -> None:
    baseline = _entry(0, 0.5)
    # The winner's interval lies above 0: improved.
    assert decide(baseline, [_entry(3, 0.6, 0.01, 0.2), _entry(4, 0.55, 0.02, 0.1)]) == ("improved", 3)
    # The winner's interval reaches 0: inconclusive, whatever another candidate's says.
    assert decide(baseline, [_entry(3, 0.6, -0.01, 0.2), _entry(4, 0.55, 0.02, 0.1)]) == ("inconclusive", 3)
    # No interval (one seed) cannot be improved.
    assert decide(baseline, [_entry(3, 0.6)]) == ("inconclusive", 3)
    # The baseline keeps the lead on a tie.
    assert decide(baseline, [_entry(3, 0.5, 0.1, 0.2)]) == ("defaults", 0)
    assert decide(_entry(0, None), [_entry(3, None)]) == ("inconclusive", None)


def test_candidates_are_the_top_distinct_trials_other_than_the_baseline() -> None:
    start = PLAN.start_params()
    trials = [
        _trial(0, 0.30, start),
        _trial(1, 0.50, {"lr0": 0.02, "mosaic": 0.5}),
        _trial(2, 0.50, {"lr0": 0.02, "mosaic": 0.5}),  # the same hyps as trial 1: not a second candidate
        _trial(3, 0.45, start),  # the baseline's hyps again (a retry): not a candidate
        _trial(4, 0.20, {"lr0": 0.03, "mosaic": 0.5}),
        _trial(5, 0.90, {"lr0": 0.04, "mosaic": 0.2}, TrialState.FAIL),
        # An imported result with only lr0: mosaic takes the seed's value, as its export would.
        _trial(6, 0.40, {"lr0": 0.05}, **import_attrs("evolve-csv", "upload", 2, None)),
        _trial(7, 0.99, {"lr0": 0.06, "mosaic": 0.5}, **planned_attrs(CONFIRMATION, 1, 1)),
    ]
    plan = plan_confirmation(PLAN, trials, top_k=2, seeds=[1, 2], epochs=6)
    assert plan.baseline == start
    assert plan.candidates == {1: {"lr0": 0.02, "mosaic": 0.5}, 6: {"lr0": 0.05, "mosaic": start["mosaic"]}}
    assert plan.screening_fitness == {0: 0.30, 1: 0.50, 6: 0.40}
    assert [(n, s) for n, s, _ in plan.trainings()] == [(0, 1), (1, 1), (6, 1), (0, 2), (1, 2), (6, 2)]
    assert ConfirmationPlan.from_json(plan.to_json()) == plan


def test_a_confirm_probe_key_takes_the_lowest_place_whatever_its_screening_rank() -> None:
    start = PLAN.start_params()
    trials = [
        _trial(0, 0.30, start),
        _trial(1, 0.50, {"lr0": 0.02, "mosaic": 0.5}),
        _trial(2, 0.45, {"lr0": 0.03, "mosaic": 0.9}),
        _trial(3, 0.40, {"lr0": 0.04, "mosaic": 0.8}),
        # mosaic's probes (mosaic alone moved from the seed hyps) rank last but one and last.
        _trial(4, 0.10, {**start, "mosaic": 0.5}, probe="mosaic 1 -> 0.5"),
        _trial(5, 0.05, {**start, "mosaic": 0.25}, probe="mosaic 1 -> 0.25"),
        _trial(6, 0.20, {**start, "lr0": 0.02}, probe="lr0 0.01 -> 0.02"),
    ]
    plan = plan_confirmation(PLAN, trials, top_k=3, seeds=[1, 2], epochs=6, probe_keys=["mosaic"])
    # The top two by screening, then mosaic's best probe in place of the third (trial 3).
    assert list(plan.candidates) == [1, 2, 4]
    assert plan.candidates[4] == {**start, "mosaic": 0.5}
    assert plan.screening_fitness == {0: 0.30, 1: 0.50, 2: 0.45, 4: 0.10}
    # The top screening trial keeps its place: with top_k 1 there is none to take.
    assert list(plan_confirmation(PLAN, trials, 1, [1, 2], 6, probe_keys=["mosaic"]).candidates) == [1]
    # Any key moved alone: lr0's probe takes the place of trial 3 as mosaic's did.
    assert list(plan_confirmation(PLAN, trials, 3, [1, 2], 6, probe_keys=["lr0"]).candidates) == [1, 2, 6]
    # A key that has no probe, or whose best probe is a candidate already, leaves its place to the ranking.
    no_probe = [t for t in trials if t.number not in (4, 5)]
    assert list(plan_confirmation(PLAN, no_probe, 3, [1, 2], 6, probe_keys=["mosaic"]).candidates) == [1, 2, 3]
    ranked_high = [*no_probe, _trial(4, 0.47, {**start, "mosaic": 0.5})]
    assert list(plan_confirmation(PLAN, ranked_high, 3, [1, 2], 6, probe_keys=["mosaic"]).candidates) == [1, 4, 2]
    # The sampler's probe that combined mosaic with another probe key is not one of mosaic's own: ranked
    # above them, it leaves the place to mosaic alone (the combination competes in the ranking, where its
    # other keys can be judged; on shapes it took the place and lost in 2 of 6 searches,
    # bench/results/users_get_combine_in_place).
    combined = {**start, "lr0": 0.02, "mosaic": 0.25}
    with_combination = [*trials, _trial(7, 0.15, combined, probe="lr0 0.01 -> 0.02, mosaic 1 -> 0.25")]
    assert list(plan_confirmation(PLAN, with_combination, 3, [1, 2], 6, probe_keys=["mosaic"]).candidates) == [1, 2, 4]


def test_confirmation_seeds_differ_from_the_screening_seed() -> None:
    assert confirmation_seeds(0, 3) == [1, 2, 3]
    assert confirmation_seeds(2**31 - 1, 2) == [0, 1]


def _confirming(number: int, confirms: int, seed: int, value: float | None, state: TrialState) -> FrozenTrial:
    return _trial(number, value, {"lr0": 0.01}, state, **planned_attrs(CONFIRMATION, confirms, seed))


def test_result_pairs_the_seeds_and_decides_once_every_training_has_ended() -> None:
    plan = ConfirmationPlan(
        baseline={"lr0": 0.01},
        candidates={4: {"lr0": 0.02}},
        screening_fitness={0: 0.1, 4: 0.3},
        seeds=[1, 2],
        epochs=6,
    )
    done = [
        _confirming(10, 0, 1, 0.20, TrialState.COMPLETE),
        _confirming(11, 4, 1, 0.25, TrialState.COMPLETE),
        _confirming(12, 0, 2, 0.30, TrialState.COMPLETE),
    ]
    partial = confirmation_result(plan, [*done, _confirming(13, 4, 2, None, TrialState.RUNNING)])
    assert (partial.finished, partial.verdict, partial.trainings_done) == (False, None, 3)
    # A lost worker's FAIL was requeued, and its retry completed: the retry's value counts.
    lost = _confirming(13, 4, 2, None, TrialState.FAIL)
    result = confirmation_result(plan, [*done, lost, _confirming(14, 4, 2, 0.33, TrialState.COMPLETE)])
    assert result.finished
    assert result.baseline.fitness_by_seed == {1: 0.20, 2: 0.30}
    [candidate] = result.candidates
    assert candidate.fitness_by_seed == {1: 0.25, 2: 0.33}
    assert candidate.mean == pytest.approx(0.29)
    assert candidate.vs_baseline is not None
    # Paired differences 0.05 and 0.03: mean 0.04, t(0.975, 1) = 12.7062 x sd 0.014142 / sqrt(2).
    assert candidate.vs_baseline.mean == pytest.approx(0.04)
    assert candidate.vs_baseline.low == pytest.approx(0.04 - 12.7062047 * 0.01, abs=1e-6)
    assert (result.verdict, result.winner) == ("inconclusive", 4)
    assert result.noise_floor == pytest.approx(math.sqrt(0.005))
    # One candidate: no rank correlation to give.
    assert result.rank_correlation is None
    assert (result.trainings_done, result.trainings_total) == (4, 4)


def test_nothing_is_confirmed_when_no_trial_differs_from_the_seed_hyps(database_url: str) -> None:
    storage = open_optuna_storage(database_url)
    study = optuna.create_study(storage=storage, direction="maximize")
    study.add_trial(_trial(0, 0.3, PLAN.start_params()))
    request = StudyRequest(dataset="shapes/data.yaml", epochs=2, confirm_top_k=2)
    assert start_confirmation(study, PLAN, request) is None
    # Nothing recorded, nothing enqueued.
    assert saved_plan(study) is None
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]
    storage.engine.dispose()


def test_confirmation_is_planned_once_and_a_restart_enqueues_only_what_is_missing(database_url: str) -> None:
    storage = open_optuna_storage(database_url)
    study = optuna.create_study(storage=storage, direction="maximize")
    study.add_trial(_trial(0, 0.3, PLAN.start_params()))
    study.add_trial(_trial(1, 0.5, {"lr0": 0.02, "mosaic": 0.5}))
    request = StudyRequest(dataset="shapes/data.yaml", epochs=2, confirm_top_k=1, confirm_seeds=2)
    plan = start_confirmation(study, PLAN, request)
    assert plan is not None
    assert (plan.seeds, plan.epochs, list(plan.candidates)) == ([1, 2], 6, [1])
    waiting = study.get_trials(states=[TrialState.WAITING])
    assert sorted((TrialTags.of(t).confirms, TrialTags.of(t).train_seed) for t in waiting) == [
        (0, 1),
        (0, 2),
        (1, 1),
        (1, 2),
    ]
    # A better trial imported meanwhile does not change a plan already made, and nothing is enqueued twice.
    study.add_trial(_trial(2, 0.9, {"lr0": 0.03, "mosaic": 0.5}))
    assert start_confirmation(study, PLAN, request) == plan
    assert len(study.get_trials(states=[TrialState.WAITING])) == 4
    storage.engine.dispose()


def test_intervals_are_bonferroni_corrected_for_the_candidates_compared() -> None:
    # Three candidates on two seeds: each interval at 1 - 0.05 / 3, so that the three hold together at
    # 95% (the winner is picked on the seeds that measure it: bench/simulate_verdict.py).
    plan = ConfirmationPlan(
        baseline={"lr0": 0.01},
        candidates={4: {"lr0": 0.02}, 5: {"lr0": 0.03}, 6: {"lr0": 0.04}},
        screening_fitness={},
        seeds=[1, 2],
        epochs=6,
    )
    values = {0: (0.20, 0.30), 4: (0.25, 0.33), 5: (0.21, 0.31), 6: (0.19, 0.29)}
    trials = [
        _confirming(10 + 2 * entry + i, entry, seed, values[entry][i], TrialState.COMPLETE)
        for entry in values
        for i, seed in enumerate((1, 2))
    ]
    result = confirmation_result(plan, trials)
    assert result.confidence == pytest.approx(1 - 0.05 / 3)
    winner = next(c for c in result.candidates if c.trial == 4)
    assert winner.vs_baseline is not None
    # Paired differences 0.05 and 0.03: sd 0.014142; t(1 - 0.05 / 6, 1) = 38.1885 (12.7062 at 95%).
    assert winner.vs_baseline.low == pytest.approx(0.04 - 38.18846 * 0.01, abs=1e-5)
    assert (result.verdict, result.winner) == ("inconclusive", 4)


def test_rung_lengths_candidates_and_seeds() -> None:
    request = StudyRequest(dataset="shapes/data.yaml", epochs=4, confirm_top_k=2, confirm_rungs=3, confirm_epochs=40)
    # A third of the length per rung down (rounded down), three times the candidates.
    assert request.rung_epochs() == [4, 13, 40]
    assert request.rung_candidates() == [18, 6, 2]
    seeds = [rung_seeds(7, 3, rung, 3) for rung in range(3)]
    # The top rung takes the seeds a study of one rung would (its first draws the plots); no rung shares one.
    assert seeds[2] == confirmation_seeds(7, 3) == [8, 9, 10]
    assert (seeds[1], seeds[0]) == ([11, 12, 13], [14, 15, 16])
    # One rung is today's confirmation.
    one = StudyRequest(dataset="shapes/data.yaml", epochs=4, confirm_top_k=2)
    assert (one.rung_epochs(), one.rung_candidates()) == ([12], [2])


def test_rungs_promote_the_best_paired_gains_and_only_the_top_rung_decides(database_url: str) -> None:
    storage = open_optuna_storage(database_url)
    study = optuna.create_study(storage=storage, direction="maximize")
    study.add_trial(_trial(0, 0.30, PLAN.start_params()))
    # Screening ranks 1 > 2 > 3 > 4; the longer trainings will rank them 3 > 4 > 1 > 2.
    for number, value in ((1, 0.6), (2, 0.5), (3, 0.4), (4, 0.35)):
        study.add_trial(_trial(number, value, {"lr0": 0.01 + number / 100, "mosaic": 0.5}))
    request = StudyRequest(
        dataset="shapes/data.yaml", epochs=2, confirm_top_k=1, confirm_seeds=2, confirm_rungs=2, confirm_epochs=6
    )
    low = start_confirmation(study, PLAN, request)
    assert low is not None
    # The lowest rung: confirm_top_k x 3 candidates by screening fitness, at 6 / 3 epochs, on seeds of its own.
    assert (low.rung, list(low.candidates), low.epochs, low.seeds) == (0, [1, 2, 3], 2, [3, 4])
    assert saved_plan(study) is None  # the top rung's plan (the one the verdict reads) comes later
    waiting = [TrialTags.of(t) for t in study.get_trials(states=[TrialState.WAITING])]
    assert sorted((t.confirms, t.train_seed, t.epochs, t.rung) for t in waiting) == [
        (n, s, 2, 0) for n in (0, 1, 2, 3) for s in (3, 4)
    ]
    # Asked again before the rung has ended (a restart): the same rung, nothing enqueued twice.
    assert start_confirmation(study, PLAN, request) == low
    assert len(study.get_trials(states=[TrialState.WAITING])) == 8

    fitness = {0: 0.40, 1: 0.41, 2: 0.30, 3: 0.55, 4: 0.50}
    by_seed = {1: 0.0, 2: 0.01, 3: 0.0, 4: 0.02}
    _stand_in_trainings(study, lambda entry, seed: fitness[entry] + by_seed[seed])
    # A rung below the top promotes and gives no verdict.
    finished_low = confirmation_result(low, study.get_trials(), top=False)
    assert (finished_low.finished, finished_low.verdict, finished_low.winner) == (True, None, None)

    top = start_confirmation(study, PLAN, request)
    assert top is not None
    # Promoted: the best mean paired gain over the seed hyps (trial 3), not screening's best (trial 1).
    assert (top.rung, list(top.candidates), top.epochs, top.seeds) == (1, [3], 6, [1, 2])
    assert saved_plan(study) == top
    assert start_confirmation(study, PLAN, request) == top  # planned once
    waiting = [TrialTags.of(t) for t in study.get_trials(states=[TrialState.WAITING])]
    assert sorted((t.confirms, t.train_seed, t.epochs, t.rung) for t in waiting) == [
        (0, 1, 6, 1), (0, 2, 6, 1), (3, 1, 6, 1), (3, 2, 6, 1)
    ]  # fmt: skip

    _stand_in_trainings(study, lambda entry, seed: fitness[entry] + by_seed[seed])
    result = confirmation_result(top, study.get_trials())
    # The top rung counts its own trainings only, and decides.
    assert (result.trainings_done, result.trainings_total, result.rung) == (4, 4, 1)
    assert result.baseline.fitness_by_seed == {1: pytest.approx(0.40), 2: pytest.approx(0.41)}
    # Trial 3 gains 0.15 on both seeds: no spread, so its interval is the point and lies above 0.
    assert (result.finished, result.winner, result.verdict) == (True, 3, "improved")
    # Once the top rung has ended, nothing more is planned.
    assert start_confirmation(study, PLAN, request) == top
    assert not study.get_trials(states=[TrialState.WAITING])
    storage.engine.dispose()


def _stand_in_trainings(study: optuna.Study, value: Any) -> list[tuple[int, int]]:
    """A stand-in trainer with known fitness (no training): every waiting confirmation training of
    entry n on seed s scores value(n, s). Returns the (entry, seed) pairs it ran."""
    ran = []
    for frozen in study.get_trials(states=[TrialState.WAITING]):
        tags = TrialTags.of(frozen)
        assert tags.confirms is not None
        assert tags.train_seed is not None
        trial = study.ask()
        study.tell(trial, value(tags.confirms, tags.train_seed))
        ran.append((tags.confirms, tags.train_seed))
    return sorted(ran)


def _race(database_url: str, value: Any, **fields: Any) -> tuple[Any, list[list[tuple[int, int]]]]:
    """A study of trial 0 and candidates 1-3 through racing at the top rung; each look's trainings."""
    storage = open_optuna_storage(database_url)
    study = optuna.create_study(storage=storage, direction="maximize")
    study.add_trial(_trial(0, 0.30, PLAN.start_params()))
    for number in (1, 2, 3):
        study.add_trial(_trial(number, 0.5 - number / 100, {"lr0": 0.01 + number / 100, "mosaic": 0.5}))
    request = StudyRequest(dataset="shapes/data.yaml", epochs=2, confirm_top_k=3, confirm_seeds=2, **fields)
    looks = []
    while (plan := start_confirmation(study, PLAN, request)) is not None and (ran := _stand_in_trainings(study, value)):
        looks.append(ran)
    result = confirmation_result(plan, study.get_trials()) if plan else None
    storage.engine.dispose()
    return result, looks


def test_racing_drops_the_hopeless_adds_seeds_to_the_close_and_stops_once_settled(database_url: str) -> None:
    # Trial 1 gains a steady 0.05; trial 2 loses 0.2 (hopeless); trial 3 is the seed hyps' equal, give or take.
    jitter = {1: 0.0, 2: 0.002, 3: 0.001, 4: -0.001, 5: 0.0}
    gain = {0: 0.0, 1: 0.05, 2: -0.2, 3: 0.0}

    def value(entry: int, seed: int) -> float:
        return 0.4 + gain[entry] + (jitter[seed] if entry == 1 else jitter[seed] * (entry - 1.5)) + seed / 100

    result, looks = _race(database_url, value, confirm_seeds_max=5)
    # Every entry on the first 2 seeds; then trial 2's own 95% interval lies below 0: it drops, and
    # the seed hyps, trial 1 and trial 3 go on to seed 3.
    assert looks[0] == [(n, s) for n in (0, 1, 2, 3) for s in (1, 2)]
    assert looks[1] == [(0, 3), (1, 3), (3, 3)]
    # After 3 seeds trial 1's interval, corrected for 3 candidates x 4 looks (99.58%), lies above 0:
    # the verdict is settled, and no seed is added up to the cap of 5.
    assert len(looks) == 2
    assert result.confidence == pytest.approx(1 - 0.05 / 12)
    assert (result.finished, result.verdict, result.winner, result.seeds, result.seed_cap) == (
        True, "improved", 1, [1, 2, 3], 5
    )  # fmt: skip
    dropped = {c.trial: c.dropped for c in result.candidates}
    assert dropped == {1: False, 2: True, 3: False}
    assert sorted(next(c for c in result.candidates if c.trial == 2).fitness_by_seed) == [1, 2]


def test_racing_ends_at_the_seed_cap_when_nothing_settles(database_url: str) -> None:
    # Every candidate within noise of the seed hyps, gains of either sign: no interval settles and none
    # lies below 0. Each look adds a seed to the candidates racing, up to the cap; trial 3, whose mean
    # gain is below 0 after 3 seeds (-0.005), drops there.
    gains = {
        0: [0.0] * 4,
        1: [0.03, -0.03, 0.02, -0.02],
        2: [0.02, -0.025, 0.03, -0.02],
        3: [-0.01, 0.015, -0.02, 0.01],
    }
    result, looks = _race(database_url, lambda n, s: 0.4 + gains[n][s - 1], confirm_seeds_max=4)
    assert looks == [[(n, s) for n in range(4) for s in (1, 2)], [(n, 3) for n in range(4)], [(0, 4), (1, 4), (2, 4)]]
    assert (result.finished, result.seeds, result.trainings_done, result.trainings_total) == (
        True,
        [1, 2, 3, 4],
        15,
        15,
    )
    assert {c.trial: c.dropped for c in result.candidates} == {1: False, 2: False, 3: True}
    # Trials 1 and 2 both gain 0 over 4 seeds (1 by 0.0, 2 by 0.00125): the winner is 2, inconclusive.
    assert (result.verdict, result.winner) == ("inconclusive", 2)


def test_without_racing_nothing_is_added(database_url: str) -> None:
    result, looks = _race(database_url, lambda n, s: 0.4 + n / 100 + s / 1000)
    assert [len(look) for look in looks] == [8]
    assert (result.finished, result.seeds, result.seed_cap, result.confidence) == (
        True,
        [1, 2],
        2,
        pytest.approx(1 - 0.05 / 3),
    )
