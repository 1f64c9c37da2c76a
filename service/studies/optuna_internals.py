"""The private Optuna calls hypevolve cannot do without, in one place, each with its reason.

Re-check each when Optuna's version moves (pinned to 5.0.x in pyproject.toml).
"""

from __future__ import annotations

from optuna.storages import BaseStorage


def stale_trial_ids(storage: BaseStorage, study_id: int) -> set[int]:
    """Ids of RUNNING trials of study ``study_id`` whose last heartbeat is older than the storage's
    grace period (empty when the storage keeps no heartbeats).

    Optuna's public optuna.storages.fail_stale_trials asks the same question but sets those trials
    FAIL itself, after which Optuna refuses the user attributes that say why and whether the trial
    is retried; so the runner asks the storage and ends the trials through trials.TrialBook.
    """
    if storage.get_heartbeat_interval() is None:  # type: ignore[attr-defined]
        return set()
    return set(storage._get_stale_trial_ids(study_id))  # type: ignore[attr-defined]
