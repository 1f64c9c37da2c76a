"""How a trial ends: exactly once, late or duplicate reports ignored and logged, retries requeued."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator

import optuna
import pytest

from service.schemas import StudyRequest
from service.studies.progress import trial_out
from service.studies.trials import TrialBook, counted_failures
from workers.storage import open_optuna_storage

SPACE = {"lr0": optuna.distributions.FloatDistribution(1e-5, 0.1, log=True)}


@pytest.fixture
def study(database_url: str) -> Iterator[optuna.Study]:
    storage = open_optuna_storage(database_url)
    yield optuna.create_study(storage=storage, direction="maximize")
    storage.engine.dispose()


@pytest.fixture
def book(study: optuna.Study, database_url: str) -> TrialBook:
    return TrialBook(study, open_optuna_storage(database_url))


def test_a_second_result_for_a_trial_is_ignored_and_logged(
    study: optuna.Study, book: TrialBook, caplog: pytest.LogCaptureFixture
) -> None:
    trial = study.ask(SPACE)
    assert book.complete(trial.number, 0.5, {"metrics": {}})
    with caplog.at_level(logging.WARNING):
        assert not book.complete(trial.number, 0.9, {"metrics": {}})
        assert not book.fail(trial.number, "late crash report")
    assert "already ended; ignoring its result" in caplog.text
    assert "already COMPLETE; ignoring 'late crash report'" in caplog.text
    (stored,) = study.get_trials()
    assert (stored.state, stored.value) == (optuna.trial.TrialState.COMPLETE, 0.5)


def test_a_lost_worker_is_retried_up_to_max_retries_with_the_same_params(study: optuna.Study, book: TrialBook) -> None:
    first = study.ask(SPACE)
    assert book.fail(first.number, "worker lost: killed", max_retries=1)
    retry = study.ask(SPACE)
    assert retry.params == first.params
    assert retry.user_attrs == {"retry_of": first.number, "attempt": 1}
    # The retry's own loss is final: one retry per trial.
    assert book.fail(retry.number, "worker lost: killed again", max_retries=1)
    trials = study.get_trials()
    assert [t.user_attrs["requeued"] for t in trials] == [True, False]
    assert [t.number for t in counted_failures(trials)] == [retry.number]
    # The requeued failure gave its budget back; the final one used it.
    assert book.budget_used() == 1


def test_training_errors_are_not_retried(study: optuna.Study, book: TrialBook) -> None:
    trial = study.ask(SPACE)
    book.fail(trial.number, "RuntimeError: loss is NaN", max_retries=0)
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.FAIL]


def test_interruptions_always_requeue_without_spending_a_retry(study: optuna.Study, book: TrialBook) -> None:
    trial = study.ask(SPACE)
    book.fail(trial.number, "interrupted: service shut down", interrupted=True)
    retry = study.ask(SPACE)
    assert retry.user_attrs == {"retry_of": trial.number, "attempt": 0}
    assert book.budget_used() == 1


def test_a_trial_cut_mid_ask_is_requeued_with_all_its_enqueued_params(study: optuna.Study, book: TrialBook) -> None:
    # A confirmation training is enqueued with every param; ask() writes them one by one. A service
    # killed between two writes leaves a RUNNING trial with some of them: its retry must have all.
    space = {**SPACE, "momentum": optuna.distributions.FloatDistribution(0.6, 0.98)}
    attrs = {"stage": "confirmation", "confirms": 3, "train_seed": 1}
    study.enqueue_trial({"lr0": 0.02, "momentum": 0.9}, user_attrs=attrs)
    with warnings.catch_warnings():  # Optuna: heartbeats are for optimize(); the runner reaps them itself
        warnings.simplefilter("ignore", UserWarning)
        cut = study.ask()  # the waiting trial, RUNNING, no param written yet
    cut.suggest_float("lr0", 1e-5, 0.1, log=True)  # one of two written, then the kill
    assert study.get_trials()[0].params == {"lr0": 0.02}
    assert book.fail(cut.number, "interrupted: the service stopped while it ran", interrupted=True)
    retry = study.ask(space)
    assert retry.params == {"lr0": 0.02, "momentum": 0.9}
    assert retry.user_attrs == {"retry_of": cut.number, "attempt": 0, **attrs}
    # The API shows the cut trial with the whole set it was to train, as its retry's.
    shown = [trial_out(t, StudyRequest(dataset="x.yaml")).params for t in study.get_trials()]
    assert shown == [{"lr0": 0.02, "momentum": 0.9}] * 2


@pytest.mark.parametrize(("interrupted", "attempt"), [(False, 1), (True, 0)], ids=["worker-lost", "interrupted"])
def test_a_retry_lost_between_the_failure_and_its_enqueue_is_queued_once(
    study: optuna.Study, book: TrialBook, monkeypatch: pytest.MonkeyPatch, interrupted: bool, attempt: int
) -> None:
    trial = study.ask(SPACE)
    with monkeypatch.context() as patch:
        # The database goes away after the FAIL is written, before the retry is.
        patch.setattr(TrialBook, "_enqueue_retry", lambda *_: (_ for _ in ()).throw(ConnectionError("gone")))
        with pytest.raises(ConnectionError):
            book.fail(trial.number, "worker lost: killed", interrupted=interrupted, max_retries=1)
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.FAIL]
    # A second try at the same failure cannot tell: the trial has ended.
    assert not book.fail(trial.number, "worker lost: killed", interrupted=interrupted, max_retries=1)

    assert book.enqueue_missing_retries() == [trial.number]
    assert book.enqueue_missing_retries() == []
    retry = study.ask(SPACE)
    assert retry.params == trial.params
    assert retry.user_attrs == {"retry_of": trial.number, "attempt": attempt}
