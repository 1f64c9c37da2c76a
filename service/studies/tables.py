"""The service's own SQL tables, beside Optuna's in the same database.

Optuna owns `studies`, `trials`, `trial_*`, `version_info` and `alembic_version`; ours carry an
``hv_`` prefix so the two never collide.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from workers.storage import engine_kwargs


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class StudyRow(Base):
    """One study: what was asked for, where it stands, and when."""

    __tablename__ = "hv_studies"
    # Ids are never reused after a delete (a bookmarked link must not point at another study).
    # PostgreSQL's sequences never reuse; SQLite's rowids do unless the table says AUTOINCREMENT.
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy reads it from the class)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    optuna_name: Mapped[str] = mapped_column(String(128), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The checked data.yaml (absolute paths, no download key) that workers train on.
    dataset: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The resolved search: seed values, searched keys and ranges, fixed values, fitness weights.
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class BestHypRow(Base):
    """The best trial of a study so far; the hyp.yaml export reads it."""

    __tablename__ = "hv_best_hyps"

    study_id: Mapped[int] = mapped_column(ForeignKey("hv_studies.id", ondelete="CASCADE"), primary_key=True)
    trial_number: Mapped[int] = mapped_column(Integer)
    fitness: Mapped[float] = mapped_column(Float)
    params: Mapped[dict[str, float]] = mapped_column(JSON)
    metrics: Mapped[dict[str, float]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while a worker writes; it is a property of the file, so Optuna's
    # engines and the workers' benefit too.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the service's tables created."""
    engine = create_engine(url, **engine_kwargs(url))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    Base.metadata.create_all(engine)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
