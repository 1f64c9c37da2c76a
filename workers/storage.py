"""Opening Optuna's RDB storage the same way in the controller and in every worker."""

from __future__ import annotations

import warnings
from functools import cache
from typing import Any

import optuna

# Several processes write one SQLite file (the controller tells, workers report epochs): wait for
# the lock instead of failing with "database is locked".
SQLITE_LOCK_TIMEOUT_S = 60


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy engine options for ``url``: a generous lock timeout on SQLite, liveness checks elsewhere."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_LOCK_TIMEOUT_S}}
    # A server that does not answer (down, or a network partition) fails a connection in seconds
    # rather than hanging the caller; workers.db_retry decides whether to try again.
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}


@cache
def open_optuna_storage(
    url: str, heartbeat_interval: int | None = None, grace_period: int | None = None
) -> optuna.storages.RDBStorage:
    """One RDBStorage per URL and process (creating one checks and creates Optuna's schema). With a
    heartbeat interval, optuna.storages.fail_stale_trials fails RUNNING trials whose last heartbeat
    is older than ``grace_period`` seconds."""
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna; we rely on them knowingly
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs(url), heartbeat_interval=heartbeat_interval, grace_period=grace_period
        )
