"""The private Optuna calls hypevolve cannot do without, in one place, each with its reason.

Re-check each when Optuna's version moves (pinned to 5.0.x in pyproject.toml).
"""

from __future__ import annotations

from typing import Any

from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial


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


def enqueued_params(trial: FrozenTrial) -> dict[str, Any]:
    """The params ``trial`` was enqueued with (empty for a trial the sampler proposed).

    Study.enqueue_trial keeps them in the trial's system attribute "fixed_params" (Optuna's own
    _pop_waiting_trial reads them back the same way), and ask() then writes them one by one as the
    trial's params. A service killed between those writes leaves a RUNNING trial with only some of
    them: requeued from trial.params alone, its retry would have the rest sampled afresh, a different
    training (for a confirmation training, a broken pair). The enqueued params are the whole set.
    """
    params = trial.system_attrs.get("fixed_params")
    return dict(params) if isinstance(params, dict) else {}


def full_params(trial: FrozenTrial) -> dict[str, Any]:
    """Every param ``trial`` trains (or trained) with: those it was enqueued with, completed by those
    written so far. A trial still waiting, or one a kill interrupted between ask()'s writes, has
    them all; a trial the sampler proposed has its own."""
    return {**enqueued_params(trial), **trial.params}
