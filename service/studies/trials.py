"""Trial bookkeeping shared by the runner and the controller: how a trial ends, and what counts."""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

logger = logging.getLogger(__name__)

# A trial the service cut short (stop, shutdown, crash of the service) rather than one whose
# training failed: it does not use up the study's budget, and its params are queued again.
INTERRUPTED = "interrupted"
# A completed trial added from a user's earlier evolve.csv or tune results: history, not budget.
IMPORTED = "imported_from"
ERROR = "error"
_ERROR_LIMIT = 4000


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """True for trials that used one of the study's ``n_trials``: asked, not interrupted, not imported."""
    attrs = trial.user_attrs
    return trial.state != TrialState.WAITING and not attrs.get(INTERRUPTED, False) and IMPORTED not in attrs


def budget_used(study: optuna.Study) -> int:
    return sum(counts_toward_budget(t) for t in study.get_trials(deepcopy=False))


def trial_id(study: optuna.Study, number: int) -> int:
    """Optuna's storage id of trial ``number`` (what workers need to report to the storage)."""
    return study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)


def fail_trial(study: optuna.Study, number: int, error: str, interrupted: bool = False) -> bool:
    """End RUNNING trial ``number`` as FAIL with ``error``; an interrupted one is queued again with the
    same params. Returns False, and logs, when the trial had already ended (a late duplicate)."""
    storage, tid = study._storage, trial_id(study, number)
    trial = storage.get_trial(tid)
    if trial.state.is_finished():
        logger.warning("trial %d of %s already %s; ignoring %r", number, study.study_name, trial.state.name, error)
        return False
    storage.set_trial_user_attr(tid, ERROR, error[:_ERROR_LIMIT])
    if interrupted:
        storage.set_trial_user_attr(tid, INTERRUPTED, True)
    try:
        storage.set_trial_state_values(tid, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        logger.warning("trial %d of %s ended meanwhile; ignoring %r", number, study.study_name, error)
        return False
    if interrupted:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": number})
    return True


def complete_trial(study: optuna.Study, number: int, value: float, attrs: dict[str, Any]) -> bool:
    """Tell Optuna trial ``number`` completed with ``value``; False, and logged, if it had already ended."""
    storage, tid = study._storage, trial_id(study, number)
    if storage.get_trial(tid).state.is_finished():
        logger.warning("trial %d of %s already ended; ignoring its result", number, study.study_name)
        return False
    for key, attr in attrs.items():
        storage.set_trial_user_attr(tid, key, attr)
    try:
        study.tell(number, value)
    except (ValueError, RuntimeError) as exc:  # another process ended it between the check and the tell
        logger.warning("trial %d of %s could not be told: %s", number, study.study_name, exc)
        return False
    return True
