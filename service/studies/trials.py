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

from service.studies.optuna_internals import full_params, stale_trial_ids
from workers.trial_tags import TrialTags, failure_attrs, requeued_attrs, retry_attrs, write_tags

logger = logging.getLogger(__name__)


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """True for trials that used one of the study's ``n_trials``: screening trials asked, not requeued,
    not imported (confirmation trainings have a budget of their own)."""
    return trial.state != TrialState.WAITING and TrialTags.of(trial).counts_toward_budget


def counted_failures(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Failures that stand: FAIL and not requeued (what max_failed_trials counts)."""
    return [t for t in trials if t.state == TrialState.FAIL and not TrialTags.of(t).requeued]


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
        attempt = TrialTags.of(trial).attempt
        requeue = interrupted or attempt < max_retries
        write_tags(storage, tid, failure_attrs(error, interrupted=interrupted, requeued=requeue))
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
            tags = TrialTags.of(trial)
            if tags.imported:
                continue
            write_tags(self.storage, self.trial_id(trial.number), requeued_attrs())
            self._enqueue_retry(trial, tags.attempt)
            requeued.append(trial.number)
        return requeued

    def enqueue_missing_retries(self) -> list[int]:
        """Enqueue the retry of each requeued failure that has none, and return their numbers. A
        failure and its retry are written in two transactions: a database lost between them (or a
        service killed) leaves the failure marked requeued with nothing queued. Idempotent."""
        trials = self.study.get_trials(deepcopy=False)
        retried = {TrialTags.of(t).retry_of for t in trials}
        missing = [
            t for t in trials if t.state == TrialState.FAIL and TrialTags.of(t).requeued and t.number not in retried
        ]
        for trial in missing:
            tags = TrialTags.of(trial)
            self._enqueue_retry(trial, tags.attempt if tags.interrupted else tags.attempt + 1)
        if missing:
            logger.warning("%s: requeued failures %s had no retry queued; queued them", self.study.study_name, missing)
        return [t.number for t in missing]

    def _enqueue_retry(self, trial: FrozenTrial, attempt: int) -> None:
        # A retry is the same training: its params (those it was enqueued with complete those a kill
        # mid-ask() left unwritten), and a confirmation training's stage, entry, seed and length.
        self.study.enqueue_trial(full_params(trial), user_attrs=retry_attrs(trial, attempt))

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
        write_tags(storage, tid, attrs)
        try:
            self.study.tell(number, value, state=state)
        except (ValueError, RuntimeError) as exc:  # another process ended it between the check and the tell
            logger.warning("trial %d of %s could not be told: %s", number, name, exc)
            return False
        return True
