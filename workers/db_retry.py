"""Riding out a database that restarts or is unreachable for a while.

The engines check each pooled connection before use (``pool_pre_ping``, workers.storage), so after
a restart the next statement gets a fresh connection. What was in flight when the server went away
still fails, once: those errors are *transient*, and the callers here wait and try again, with a
bounded backoff, instead of counting a training as failed or letting a runner thread die.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy.exc

logger = logging.getLogger(__name__)

T = TypeVar("T")

_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "unable to open", "disk I/O error")
# How long a caller waits for the database before it gives up and lets the error through.
DEFAULT_PATIENCE_S = 300.0
MAX_DELAY_S = 10.0


class DatabaseUnreachable(RuntimeError):
    """The database stayed unreachable longer than a caller's patience. Not transient any more: it
    ends what was waiting (a study's runner, a training), which the controller treats as an
    interruption, not as a failure of the training. It survives Ray's pickling, unlike a cause chain."""


def is_transient_db_error(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what caused it: Optuna wraps SQLAlchemy's errors in StorageInternalError)
    says the database could not be reached or dropped the connection, not that a statement was wrong.
    SQLite's "database is locked" counts: it passes too."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DatabaseUnreachable):
            return False
        if isinstance(exc, sqlite3.OperationalError):
            # sqlite3 calls every failed statement an OperationalError, a missing table too: only a
            # lock or a file it cannot open passes with time.
            return any(words in str(exc) for words in _SQLITE_TRANSIENT)
        if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            if isinstance(exc.orig, sqlite3.OperationalError):
                return is_transient_db_error(exc.orig)
            return True
        if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
            return True
        # The driver's own, when SQLAlchemy did not wrap it (psycopg's and sqlite3's names agree).
        driver_error = not isinstance(exc, sqlalchemy.exc.SQLAlchemyError)
        if driver_error and type(exc).__name__ in ("OperationalError", "InterfaceError"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def first_line(exc: BaseException) -> str:
    """The first line of what went wrong, from the driver's own error where there is one (Optuna's
    wrapper only says "an exception is raised during the commit")."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.orig is not None:
            exc = cause.orig
            break
        cause = cause.__cause__ or cause.__context__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


class Backoff:
    """Waits between tries of one operation: 0.5 s doubling up to MAX_DELAY_S, for at most
    ``patience_s`` in all since the first failure; ``wait`` raises the error once that is spent."""

    def __init__(self, what: str, patience_s: float = DEFAULT_PATIENCE_S) -> None:
        self.what = what
        self.patience_s = patience_s
        self.down_since: float | None = None
        self._delay = 0.5

    def wait(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
        if now + self._delay - self.down_since > self.patience_s:
            raise DatabaseUnreachable(
                f"{self.what}: the database was unreachable for over {self.patience_s:g}s ({first_line(exc)})"
            ) from exc
        logger.warning("%s: database unreachable (%s); trying again in %.1fs", self.what, first_line(exc), self._delay)
        time.sleep(self._delay)
        self._delay = min(self._delay * 2, MAX_DELAY_S)

    def reset(self) -> bool:
        """After a success: True when it ends an outage (the caller may have things to tidy)."""
        was_down, self.down_since, self._delay = self.down_since is not None, None, 0.5
        return was_down


def retry_db(call: Callable[[], T], what: str, patience_s: float = DEFAULT_PATIENCE_S) -> T:
    """``call()``, tried again while it fails with a transient database error, for up to ``patience_s``.
    Only for calls that are safe to repeat (a read, or a write that checks what is already there)."""
    backoff = Backoff(what, patience_s)
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_transient_db_error(exc):
                raise
            backoff.wait(exc)
