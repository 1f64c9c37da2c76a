"""Trial bookkeeping shared by the runner and the controller: how a trial ends, and what counts.

Every trial ends in exactly one state: COMPLETE with its fitness, or FAIL with an error. A FAIL that
was not the training's doing (the service stopped or restarted, a worker process or node was lost,
a heartbeat went stale) is *requeued*: its params are enqueued again as a new trial and it does not
use up the study's budget. Lost workers are requeued at most ``max_retries`` times per trial;
interruptions by the service itself always are.
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

logger = logging.getLogger(__name__)

ERROR = "error"
# The trial's params were queued again as a new trial; this FAIL does not count against the study.
REQUEUED = "requeued"
# Cut short by the service (stop, shutdown, restart), not by anything about the trial.
INTERRUPTED = "interrupted"
# On a retry: which trial it repeats, and how many lost-worker retries led to it.
RETRY_OF, ATTEMPT = "retry_of", "attempt"
# A completed trial added from a user's earlier evolve.csv or tune results: history, not budget.
IMPORTED = "imported_from"
_ERROR_LIMIT = 4000


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """True for trials that used one of the study's ``n_trials``: asked, not requeued, not imported."""
    attrs = trial.user_attrs
    return trial.state != TrialState.WAITING and not attrs.get(REQUEUED, False) and IMPORTED not in attrs


def budget_used(study: optuna.Study) -> int:
    return sum(counts_toward_budget(t) for t in study.get_trials(deepcopy=False))


def counted_failures(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Failures that stand: FAIL and not requeued (what max_failed_trials counts)."""
    return [t for t in trials if t.state == TrialState.FAIL and not t.user_attrs.get(REQUEUED, False)]


def trial_id(study: optuna.Study, number: int) -> int:
    """Optuna's storage id of trial ``number`` (what workers need to report to the storage)."""
    return study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)


def fail_trial(
    study: optuna.Study, number: int, error: str, *, interrupted: bool = False, max_retries: int = 0
) -> bool:
    """End trial ``number`` as FAIL with ``error`` (if it is still running), then requeue its params
    when it was interrupted, or when it has had fewer than ``max_retries`` retries. Returns False,
    and logs, when the trial had already ended: a late or duplicate report is ignored."""
    storage, tid = study._storage, trial_id(study, number)
    trial = storage.get_trial(tid)
    if trial.state.is_finished():
        logger.warning("trial %d of %s already %s; ignoring %r", number, study.study_name, trial.state.name, error)
        return False
    attempt = int(trial.user_attrs.get(ATTEMPT, 0))
    requeue = interrupted or attempt < max_retries
    storage.set_trial_user_attr(tid, ERROR, error[:_ERROR_LIMIT])
    storage.set_trial_user_attr(tid, INTERRUPTED, interrupted)
    storage.set_trial_user_attr(tid, REQUEUED, requeue)
    try:
        storage.set_trial_state_values(tid, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        logger.warning("trial %d of %s ended meanwhile; ignoring %r", number, study.study_name, error)
        return False
    if requeue:
        next_attempt = attempt if interrupted else attempt + 1
        study.enqueue_trial(trial.params, user_attrs={RETRY_OF: number, ATTEMPT: next_attempt})
    return True


def complete_trial(study: optuna.Study, number: int, value: float, attrs: dict[str, Any]) -> bool:
    """Tell Optuna trial ``number`` completed with ``value``; False, and logged, if it had already ended."""
    return _tell(study, number, attrs, value=value)


def prune_trial(study: optuna.Study, number: int, attrs: dict[str, Any]) -> bool:
    """Tell Optuna trial ``number`` was pruned (its value: the last epoch it reported)."""
    return _tell(study, number, attrs, state=TrialState.PRUNED)


def _tell(
    study: optuna.Study, number: int, attrs: dict[str, Any], value: float | None = None, state: TrialState | None = None
) -> bool:
    storage, tid = study._storage, trial_id(study, number)
    if storage.get_trial(tid).state.is_finished():
        logger.warning("trial %d of %s already ended; ignoring its result", number, study.study_name)
        return False
    for key, attr in attrs.items():
        storage.set_trial_user_attr(tid, key, attr)
    try:
        study.tell(number, value, state=state)
    except (ValueError, RuntimeError) as exc:  # another process ended it between the check and the tell
        logger.warning("trial %d of %s could not be told: %s", number, study.study_name, exc)
        return False
    return True


def stale_trial_ids(study: optuna.Study) -> set[int]:
    """Ids of RUNNING trials whose last heartbeat is older than the storage's grace period.

    Optuna's public fail_stale_trials would set them FAIL first, after which it refuses to record
    why; this asks the storage the same question and leaves the ending to fail_trial."""
    storage = study._storage
    if storage.get_heartbeat_interval() is None:  # type: ignore[attr-defined]
        return set()
    return set(storage._get_stale_trial_ids(study._study_id))  # type: ignore[attr-defined]
