"""The study store on a real database: typed records, legal state changes only, best trials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.errors import Conflict, StudyNotFound
from service.schemas import StudyRequest, StudyState
from service.studies.plan import build_plan
from service.studies.store import IllegalStateChange, StudyStore
from service.studies.tables import StudyRow


@pytest.fixture
def store(database_url: str) -> Iterator[StudyStore]:
    store = StudyStore(database_url)
    yield store
    store.dispose()


def _create(store: StudyStore, name: str | None = None) -> int:
    request = StudyRequest(dataset="shapes/data.yaml", epochs=3, name=name)
    return store.create(name, request, {"path": "/data/shapes"}, build_plan("scratch-low"))


def test_a_study_comes_back_typed(store: StudyStore) -> None:
    study_id = _create(store, "typed")
    store.set_names(study_id, "typed")
    record = store.get(study_id)
    assert (record.name, record.optuna_name, record.state) == ("typed", "typed", StudyState.QUEUED)
    assert record.request.epochs == 3
    assert record.plan == build_plan("scratch-low")
    with pytest.raises(Conflict, match="already exists"):
        _create(store, "typed")
    with pytest.raises(StudyNotFound):
        store.get(study_id + 1)


def test_only_legal_state_changes_are_stored(store: StudyStore) -> None:
    study_id = _create(store)
    store.set_state(study_id, StudyState.RUNNING)
    store.set_state(study_id, StudyState.COMPLETED)
    record = store.get(study_id)
    assert record.state == StudyState.COMPLETED
    assert record.started_at is not None
    assert record.finished_at is not None
    # A completed study cannot run again, and the refusal changes nothing.
    with pytest.raises(IllegalStateChange, match="is completed; it cannot become running"):
        store.set_state(study_id, StudyState.RUNNING)
    assert store.get(study_id).state == StudyState.COMPLETED
    # A deleted study's late state change is ignored, not an error.
    store.delete(study_id)
    assert not store.set_state(study_id, StudyState.FAILED, "late")


def test_a_stored_study_missing_newer_fields_reads_them_as_before(store: StudyStore) -> None:
    study_id = _create(store)
    with store._sessions.begin() as session:
        row = session.get_one(StudyRow, study_id)
        row.request = {k: v for k, v in row.request.items() if not k.startswith("confirm_")}
    request = store.get(study_id).request
    # Stored before confirmation existed: none (not today's default of 3); other new fields: defaults.
    assert (request.confirm_top_k, request.confirm_seeds, request.confirm_epochs) == (0, 3, None)


def test_the_best_trial_is_kept_and_ties_keep_the_first(store: StudyStore) -> None:
    study_id = _create(store)
    assert store.best(study_id) is None
    assert store.record_if_best(study_id, 1, {"lr0": 0.01}, 0.2, {"mAP50": 0.3})
    assert not store.record_if_best(study_id, 2, {"lr0": 0.02}, 0.2, {"mAP50": 0.3})
    assert store.record_if_best(study_id, 3, {"lr0": 0.03}, 0.5, {"mAP50": 0.6})
    best = store.best(study_id)
    assert best is not None
    assert (best.trial, best.fitness, best.params) == (3, 0.5, {"lr0": 0.03})
    assert store.bests() == {study_id: best}


def test_ids_are_never_reused_after_a_delete(store: StudyStore) -> None:
    ids = [_create(store) for _ in range(3)]
    for study_id in ids:
        store.delete(study_id)
    # Every study deleted: the next one still gets a new id, not the first one's.
    assert _create(store) == max(ids) + 1
