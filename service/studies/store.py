"""The service's own tables, behind one store: every SQL statement about studies lives here.

A study is loaded once into a StudyRecord (its typed request, plan, checked data set and state) and
that object travels to the runner, the exports and the API's views; nothing else reads a row.
State changes go through ``set_state``, which refuses the ones StudyState does not allow.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from service.errors import Conflict, StudyNotFound
from service.schemas import StudyRequest, StudyState
from service.studies.plan import StudyPlan
from service.studies.tables import BestHypRow, StudyRow, make_engine, make_sessionmaker, utcnow


@dataclass(frozen=True)
class StudyRecord:
    """One study as stored: what was asked, how it was resolved, where it stands."""

    id: int
    name: str
    optuna_name: str
    state: StudyState
    request: StudyRequest
    plan: StudyPlan
    dataset: dict[str, Any]  # the checked data.yaml (absolute paths, no download key) workers train on
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: StudyRow) -> StudyRecord:
        request = dict(row.request)
        # Studies stored before the confirmation stage existed had none: reading them with today's
        # default would make a completed study look unconfirmed, and a resumed one grow a stage.
        request.setdefault("confirm_top_k", 0)
        return cls(
            id=row.id,
            name=row.name,
            optuna_name=row.optuna_name,
            state=StudyState(row.state),
            # Validating again fills fields added after the study was stored with today's defaults.
            request=StudyRequest.model_validate(request),
            plan=StudyPlan.from_json(row.plan),
            dataset=dict(row.dataset),
            error=row.error,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )


@dataclass(frozen=True)
class BestTrial:
    """The study's best trial so far: what the exports are made of."""

    trial: int
    fitness: float
    params: dict[str, Any]
    metrics: dict[str, float]

    @classmethod
    def from_row(cls, row: BestHypRow) -> BestTrial:
        return cls(row.trial_number, row.fitness, dict(row.params), dict(row.metrics))


class IllegalStateChange(Conflict):
    def __init__(self, study_id: int, old: StudyState, new: StudyState) -> None:
        super().__init__(f"study {study_id} is {old}; it cannot become {new}")


class StudyStore:
    """Create, read, change and delete studies and their best trials, on one SQL engine."""

    def __init__(self, database_url: str) -> None:
        self.engine: Engine = make_engine(database_url)
        self._sessions = make_sessionmaker(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """Raise unless the database answers."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    # -- studies ---------------------------------------------------------------------------------

    def create(self, name: str | None, request: StudyRequest, dataset: Mapping[str, Any], plan: StudyPlan) -> int:
        """Store a new queued study under a placeholder Optuna name; Conflict if ``name`` is taken.
        The caller creates the Optuna study, then names both with ``set_names``."""
        with self._sessions.begin() as session:
            row = StudyRow(
                name=name or f"pending-{uuid.uuid4().hex}",
                optuna_name=f"pending-{uuid.uuid4().hex}",
                state=StudyState.QUEUED.value,
                request=request.model_dump(),
                dataset=dict(dataset),
                plan=plan.to_json(),
            )
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                raise Conflict(f"a study named {name!r} already exists") from None
            return row.id

    def set_names(self, study_id: int, name: str) -> None:
        with self._sessions.begin() as session:
            row = session.get_one(StudyRow, study_id)
            row.name = row.optuna_name = name

    def name_taken_by(self, name: str) -> int | None:
        """The id of the study called ``name``, if any."""
        with self._sessions() as session:
            return session.scalar(select(StudyRow.id).where(StudyRow.name == name))

    def get(self, study_id: int) -> StudyRecord:
        """The study ``study_id``; StudyNotFound if there is none."""
        with self._sessions() as session:
            row = session.get(StudyRow, study_id)
        if row is None:
            raise StudyNotFound(study_id)
        return StudyRecord.from_row(row)

    def studies(self, states: tuple[StudyState, ...] | None = None) -> list[StudyRecord]:
        """Every study (or those in ``states``), by id."""
        query = select(StudyRow).order_by(StudyRow.id)
        if states is not None:
            query = query.where(StudyRow.state.in_([s.value for s in states]))
        with self._sessions() as session:
            rows = session.scalars(query).all()
        return [StudyRecord.from_row(row) for row in rows]

    def set_state(self, study_id: int, state: StudyState, error: str | None = None) -> bool:
        """Move the study to ``state`` (IllegalStateChange if its current state does not allow it),
        keeping its timestamps and error. False when the study no longer exists (deleted meanwhile)."""
        with self._sessions.begin() as session:
            row = session.get(StudyRow, study_id)
            if row is None:
                return False
            old = StudyState(row.state)
            if not old.can_become(state):
                raise IllegalStateChange(study_id, old, state)
            row.state = state.value
            if state == StudyState.RUNNING:
                row.started_at = row.started_at or utcnow()
                row.finished_at, row.error = None, None
            elif state == StudyState.QUEUED:
                row.finished_at, row.error = None, None
            else:
                row.finished_at, row.error = utcnow(), error
        return True

    def delete(self, study_id: int) -> None:
        """Remove the study's rows (its best trial with it); nothing if it is gone already."""
        with self._sessions.begin() as session:
            for kind in (BestHypRow, StudyRow):
                found = session.get(kind, study_id)
                if found is not None:
                    session.delete(found)

    # -- best trials -----------------------------------------------------------------------------

    def best(self, study_id: int) -> BestTrial | None:
        with self._sessions() as session:
            row = session.get(BestHypRow, study_id)
        return BestTrial.from_row(row) if row is not None else None

    def bests(self) -> dict[int, BestTrial]:
        """Every study's best trial, by study id."""
        with self._sessions() as session:
            return {row.study_id: BestTrial.from_row(row) for row in session.scalars(select(BestHypRow)).all()}

    def record_if_best(
        self, study_id: int, number: int, params: Mapping[str, Any], fitness: float, metrics: Mapping[str, float]
    ) -> bool:
        """Store trial ``number`` as the study's best if it beats the current one (ties keep the first)."""
        with self._sessions.begin() as session:
            best = session.get(BestHypRow, study_id)
            if best is None:
                session.add(
                    BestHypRow(
                        study_id=study_id,
                        trial_number=number,
                        fitness=fitness,
                        params=dict(params),
                        metrics=dict(metrics),
                    )
                )
                return True
            if fitness > best.fitness:
                best.trial_number, best.fitness = number, fitness
                best.params, best.metrics = dict(params), dict(metrics)
                return True
        return False
