"""Which database errors are waited out, and for how long: against a real SQLAlchemy engine whose
server is not there (a closed loopback port) and a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from tests.helpers import free_port
from workers import db_retry
from workers.db_retry import DatabaseUnreachable, first_line, is_transient_db_error, retry_db


def _refused() -> Exception:
    url = f"postgresql+psycopg://u:p@127.0.0.1:{free_port()}/db"
    engine = sa.create_engine(url, connect_args={"connect_timeout": 2})
    with pytest.raises(sa.exc.OperationalError) as caught:
        engine.connect()
    return caught.value


def test_an_unreachable_server_is_transient_also_behind_optunas_wrapper() -> None:
    refused = _refused()
    assert is_transient_db_error(refused)
    wrapped = optuna.exceptions.StorageInternalError("An exception is raised during the commit.")
    wrapped.__cause__ = refused  # as Optuna raises it: raise StorageInternalError(...) from e
    assert is_transient_db_error(wrapped)
    # What a log shows is the driver's reason, not the wrapper's guess.
    assert first_line(wrapped).startswith("OperationalError: connection failed")


def test_a_wrong_statement_is_not_transient_a_locked_file_is(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}", connect_args={"timeout": 0.1})
    # sqlite3 calls a missing table an OperationalError, as it does a lock: only the lock passes.
    with engine.connect() as connection, pytest.raises(sa.exc.OperationalError) as missing:
        connection.execute(sa.text("SELECT * FROM no_such_table"))
    assert not is_transient_db_error(missing.value)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    holder = sqlite3.connect(tmp_path / "x.db")
    holder.execute("BEGIN EXCLUSIVE")
    with engine.begin() as connection, pytest.raises(sa.exc.OperationalError) as locked:
        connection.execute(sa.text("INSERT INTO t VALUES (1)"))
    holder.rollback()
    holder.close()
    assert "database is locked" in str(locked.value)
    assert is_transient_db_error(locked.value)
    with pytest.raises(sa.exc.IntegrityError) as integrity, engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO t VALUES (1), (1)"))
    assert not is_transient_db_error(integrity.value)
    assert not is_transient_db_error(ValueError("not a database error"))
    assert not is_transient_db_error(DatabaseUnreachable("gave up already"))


def test_retry_waits_out_transient_errors_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_retry.time, "sleep", lambda _s: None)
    refused = _refused()
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise refused
        return "answered"

    assert retry_db(flaky, "test") == "answered"
    assert len(calls) == 3

    def never() -> None:
        raise refused

    with pytest.raises(DatabaseUnreachable, match=r"unreachable for over 0\.001s"):
        retry_db(never, "test", patience_s=0.001)

    def broken() -> None:
        calls.append(1)
        raise ValueError("a bug")

    calls.clear()
    with pytest.raises(ValueError, match="a bug"):
        retry_db(broken, "test")
    assert len(calls) == 1
