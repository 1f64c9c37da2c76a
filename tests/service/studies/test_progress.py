"""What a study plans to train, shown before it is spent."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import optuna

from service.schemas import StudyRequest, StudyState
from service.studies.confirmation import ConfirmationResult, ConfirmedEntry
from service.studies.plan import build_plan
from service.studies.progress import planned_epochs, screening_warnings
from service.studies.store import StudyRecord
from service.studies.tables import utcnow


def _record(state: StudyState = StudyState.RUNNING, **request: Any) -> StudyRecord:
    fields = {"dataset": "shapes/data.yaml", "epochs": 3, "n_trials": 8, **request}
    return StudyRecord(
        id=1, name="s", optuna_name="s", state=state, request=StudyRequest(**fields), plan=build_plan("scratch-low"),
        dataset={}, error=None, created_at=utcnow(), started_at=None, finished_at=None,
    )  # fmt: skip


def test_a_study_plans_screening_then_confirmation() -> None:
    planned = planned_epochs(_record(), [])
    # 8 trials x 3 epochs; then 3 candidates and the seed hyps x 3 seeds x 9 epochs (3 x epochs).
    assert (planned.screening, planned.confirmation, planned.diagnostics) == (24, 108, 0)
    assert planned.total == 132


def test_without_confirmation_the_best_trains_once_more_with_plots() -> None:
    planned = planned_epochs(_record(confirm_top_k=0), [])
    assert (planned.confirmation, planned.diagnostics, planned.total) == (0, 3, 27)
    # With diagnostics off, nothing more; and a study of trial 0 alone has nothing to confirm.
    assert planned_epochs(_record(confirm_top_k=0, diagnostics=False), []).total == 24
    assert planned_epochs(_record(n_trials=1), []).confirmation == 0


def test_once_confirmation_is_planned_its_own_count_is_shown() -> None:
    entry = ConfirmedEntry(0, {}, None, {}, None)
    result = ConfirmationResult(entry, [replace(entry, trial=4)], False, None, None, None, None, epochs=12,
                                seeds=[1, 2], trainings_done=0, trainings_total=4)  # fmt: skip
    # Fewer distinct candidates than confirm_top_k: 2 entries x 2 seeds x 12 epochs.
    assert planned_epochs(_record(confirm_epochs=12), [result]).confirmation == 48
    # Completed with nothing to confirm: no confirmation epochs, the diagnostics training instead.
    done = planned_epochs(_record(StudyState.COMPLETED), [])
    assert (done.confirmation, done.diagnostics) == (0, 3)


def test_rungs_are_planned_rung_by_rung() -> None:
    # 2 rungs to 9 epochs: 9 candidates and the seed hyps x 3 seeds x 3 epochs, then 3 and the seed hyps
    # x 3 seeds x 9 epochs; 8 trials leave at most 7 candidates for the lowest rung.
    request = {"confirm_rungs": 2, "n_trials": 20}
    assert planned_epochs(_record(**request), []).confirmation == 10 * 3 * 3 + 4 * 3 * 9
    assert planned_epochs(_record(confirm_rungs=2), []).confirmation == 8 * 3 * 3 + 4 * 3 * 9
    # Once the lowest rung is planned, its own count (5 candidates on 3 seeds); the top rung is still to come.
    entry = ConfirmedEntry(0, {}, None, {}, None)
    low = ConfirmationResult(entry, [replace(entry, trial=n) for n in range(1, 6)], False, None, None, None, None,
                             epochs=3, seeds=[4, 5, 6], trainings_done=0, trainings_total=18)  # fmt: skip
    assert planned_epochs(_record(**request), [low]).confirmation == 18 * 3 + 4 * 3 * 9


def test_a_budget_in_epochs_buys_the_trials_that_fit_it() -> None:
    # 1000 epochs: 64 trials x 10 epochs, and the confirmation at most: 3 candidates and the seed hyps
    # x 3 seeds x 30 epochs (360). One more trial would not fit.
    record = _record(epochs=10, budget_epochs=1000, n_trials=30)
    assert record.request.n_trials == 64
    planned = planned_epochs(record, [])
    assert (planned.screening, planned.confirmation, planned.total) == (640, 360, 1000)
    # Rungs and the racing cap count at most: 2 rungs (9 then 3 candidates) racing to 5 seeds.
    rungs = _record(epochs=10, budget_epochs=2000, confirm_rungs=2, confirm_seeds_max=5, n_trials=30)
    plan = 10 * 3 * 10 + 4 * 5 * 30
    assert rungs.request.n_trials == (2000 - plan) // 10
    assert planned_epochs(rungs, []).total <= 2000 < planned_epochs(rungs, []).total + 10


def _screened(*values: float, **attrs: Any) -> list[optuna.trial.FrozenTrial]:
    distribution = {"lr0": optuna.distributions.FloatDistribution(1e-5, 0.1)}
    return [
        optuna.trial.create_trial(params={"lr0": 0.01}, distributions=distribution, value=v, user_attrs=attrs)
        for v in values
    ]


def test_a_study_whose_screening_trials_all_scored_0_says_its_search_has_no_signal() -> None:
    record = _record(epochs=3)
    assert screening_warnings(record, _screened(0.0, 0.0)) == []  # too few to say
    [warning] = screening_warnings(record, _screened(0.0, 0.0, 0.0))
    assert warning.startswith("all 3 screening trials so far scored fitness 0: trials of 3 epochs ")
    assert screening_warnings(record, _screened(0.0, 0.0, 0.0, 0.0012)) == []  # one signal is enough
    # Trainings after screening (confirmation) do not count: only what the sampler learns from.
    assert screening_warnings(record, _screened(0.0, 0.0, 0.0, stage="confirmation")) == []
