"""Trial bookkeeping shared by the runner and the controller: how a trial ends, and what counts.

Every trial ends in exactly one state: COMPLETE with its fitness, PRUNED, or FAIL with an error. A
FAIL that was not the training's doing (the service stopped or restarted, a worker process or node
was lost, a heartbeat went stale) is *requeued*: its params are enqueued again as a new trial and it
does not use up the study's budget. Lost workers are requeued at most ``max_retries`` times per
trial; interruptions by the service itself always are.
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from service.studies.optuna_internals import enqueued_params, stale_trial_ids
from workers.trial_attrs import (
    ATTEMPT,
    CONFIRMS,
    ERROR,
    IMPORTED,
    INTERRUPTED,
    REQUEUED,
    RETRY_OF,
    STAGE,
    TRAIN_SEED,
)

logger = logging.getLogger(__name__)

_ERROR_LIMIT = 4000


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """True for trials that used one of the study's ``n_trials``: screening trials asked, not requeued,
    not imported (confirmation trainings have a budget of their own)."""
    attrs = trial.user_attrs
    return (
        trial.state != TrialState.WAITING
        and not attrs.get(REQUEUED, False)
        and IMPORTED not in attrs
        and STAGE not in attrs
    )


def counted_failures(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Failures that stand: FAIL and not requeued (what max_failed_trials counts)."""
    return [t for t in trials if t.state == TrialState.FAIL and not t.user_attrs.get(REQUEUED, False)]


class TrialBook:
    """The trials of one Optuna study, ended and counted through the storage's public API.

    ``storage`` is the study's own storage (workers.storage.open_optuna_storage gives every caller
    in a process the same one)."""

    def __init__(self, study: optuna.Study, storage: BaseStorage) -> None:
        self.study = study
        self.storage = storage
        self.study_id = storage.get_study_id_from_name(study.study_name)

    def trial_id(self, number: int) -> int:
        """Optuna's storage id of trial ``number`` (what workers need to report to the storage)."""
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def budget_used(self) -> int:
        return sum(counts_toward_budget(t) for t in self.study.get_trials(deepcopy=False))

    def stale_trial_ids(self) -> set[int]:
        """Ids of RUNNING trials whose last heartbeat is older than the storage's grace period."""
        return stale_trial_ids(self.storage, self.study_id)

    def fail(self, number: int, error: str, *, interrupted: bool = False, max_retries: int = 0) -> bool:
        """End trial ``number`` as FAIL with ``error`` (if it is still running), then requeue its params
        when it was interrupted, or when it has had fewer than ``max_retries`` retries. Returns False,
        and logs, when the trial had already ended: a late or duplicate report is ignored."""
        storage, tid = self.storage, self.trial_id(number)
        trial = storage.get_trial(tid)
        name = self.study.study_name
        if trial.state.is_finished():
            logger.warning("trial %d of %s already %s; ignoring %r", number, name, trial.state.name, error)
            return False
        attempt = int(trial.user_attrs.get(ATTEMPT, 0))
        requeue = interrupted or attempt < max_retries
        storage.set_trial_user_attr(tid, ERROR, error[:_ERROR_LIMIT])
        storage.set_trial_user_attr(tid, INTERRUPTED, interrupted)
        storage.set_trial_user_attr(tid, REQUEUED, requeue)
        try:
            storage.set_trial_state_values(tid, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            logger.warning("trial %d of %s ended meanwhile; ignoring %r", number, name, error)
            return False
        if requeue:
            self._enqueue_retry(trial, attempt if interrupted else attempt + 1)
        return True

    def fail_running(self, error: str, *, interrupted: bool = True) -> list[int]:
        """End every trial of the study still RUNNING as FAIL with ``error`` (requeued when
        ``interrupted``); returns their numbers. For trials no runner owns any more."""
        running = self.study.get_trials(deepcopy=False, states=[TrialState.RUNNING])
        return [t.number for t in running if self.fail(t.number, error, interrupted=interrupted)]

    def requeue_failures(self) -> list[int]:
        """Give each failure that stands (counted by max_failed_trials, not imported) another run: it is
        marked requeued and its params enqueued again, as a retry is. For resuming a failed study
        once its cause is fixed: the failures stop counting, and their places in the budget come back."""
        requeued = []
        for trial in counted_failures(self.study.get_trials(deepcopy=False, states=[TrialState.FAIL])):
            if IMPORTED in trial.user_attrs:
                continue
            tid = self.trial_id(trial.number)
            self.storage.set_trial_user_attr(tid, REQUEUED, True)
            self._enqueue_retry(trial, int(trial.user_attrs.get(ATTEMPT, 0)))
            requeued.append(trial.number)
        return requeued

    def enqueue_missing_retries(self) -> list[int]:
        """Enqueue the retry of each requeued failure that has none, and return their numbers. A
        failure and its retry are written in two transactions: a database lost between them (or a
        service killed) leaves the failure marked requeued with nothing queued. Idempotent."""
        trials = self.study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get(RETRY_OF) for t in trials}
        missing = [
            t
            for t in trials
            if t.state == TrialState.FAIL and t.user_attrs.get(REQUEUED, False) and t.number not in retried
        ]
        for trial in missing:
            attempt = int(trial.user_attrs.get(ATTEMPT, 0))
            self._enqueue_retry(trial, attempt if trial.user_attrs.get(INTERRUPTED, False) else attempt + 1)
        if missing:
            logger.warning("%s: requeued failures %s had no retry queued; queued them", self.study.study_name, missing)
        return [t.number for t in missing]

    def _enqueue_retry(self, trial: FrozenTrial, attempt: int) -> None:
        # A confirmation training's retry is the same training: same stage, entry and seed.
        same = {k: trial.user_attrs[k] for k in (STAGE, CONFIRMS, TRAIN_SEED) if k in trial.user_attrs}
        # The params it was enqueued with complete those a kill mid-ask() left unwritten.
        params = {**enqueued_params(trial), **trial.params}
        self.study.enqueue_trial(params, user_attrs={RETRY_OF: trial.number, ATTEMPT: attempt, **same})

    def complete(self, number: int, value: float, attrs: dict[str, Any]) -> bool:
        """Tell Optuna trial ``number`` completed with ``value``; False, and logged, if it had already ended."""
        return self._tell(number, attrs, value=value)

    def is_complete(self, number: int) -> bool:
        return self.storage.get_trial(self.trial_id(number)).state == TrialState.COMPLETE

    def prune(self, number: int, attrs: dict[str, Any]) -> bool:
        """Tell Optuna trial ``number`` was pruned (its value: the last epoch it reported)."""
        return self._tell(number, attrs, state=TrialState.PRUNED)

    def _tell(
        self, number: int, attrs: dict[str, Any], value: float | None = None, state: TrialState | None = None
    ) -> bool:
        storage, tid = self.storage, self.trial_id(number)
        name = self.study.study_name
        if storage.get_trial(tid).state.is_finished():
            logger.warning("trial %d of %s already ended; ignoring its result", number, name)
            return False
        for key, attr in attrs.items():
            storage.set_trial_user_attr(tid, key, attr)
        try:
            self.study.tell(number, value, state=state)
        except (ValueError, RuntimeError) as exc:  # another process ended it between the check and the tell
            logger.warning("trial %d of %s could not be told: %s", number, name, exc)
            return False
        return True
