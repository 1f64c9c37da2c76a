"""A runner whose own code raises mid-study, with a stand-in trainer (tests/fake_trainer.py)
that makes it raise: the study fails with the reason, no trial is left running, and once the cause
is gone the failed study resumes and completes. And a result whose recording meets a database
error: recorded once the database answers, never trained again."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc

from service.schemas import StudyOut, StudyRequest
from service.studies.controller import StudyController
from service.studies.trials import TrialBook
from tests.fake_trainer import HOLD_S, POISON_FILE, stand_in_controller

pytestmark = pytest.mark.slow


@pytest.fixture
def controller(tmp_path: Path, data_root: Path, shapes_root: Path) -> Iterator[StudyController]:
    with stand_in_controller(tmp_path, data_root, shapes_root, "poisoned_trial") as controller:
        yield controller


def _ended(controller: StudyController, study_id: int, timeout: float = 90) -> StudyOut:
    deadline = time.monotonic() + timeout
    while (study := controller.views.get_study(study_id)).state in ("queued", "running"):
        assert time.monotonic() < deadline, f"study {study_id} did not end: {study}"
        time.sleep(0.2)
    return study


def test_a_crashed_runner_ends_its_trials_and_the_failed_study_resumes(controller: StudyController) -> None:
    request = StudyRequest(dataset="shapes/data.yaml", confirm_top_k=0, diagnostics=False, n_trials=4, parallel=2)
    folder = Path(controller.settings.ARTIFACTS_DIR) / "1"
    folder.mkdir(parents=True)
    # Study 1's trial 1 comes back as None while trial 0 still holds (the stand-in holds HOLD_S).
    (folder / POISON_FILE).write_text(json.dumps([1]))
    study_id = controller.create_study(request).id
    assert study_id == 1

    study = _ended(controller, study_id)
    assert study.state == "failed"
    assert study.error is not None
    assert study.error.startswith("AttributeError: "), study.error
    trials = controller.views.trials(study_id)
    assert not [t for t in trials if t.state == "running"], trials
    # Trial 0 was mid-hold and trial 1 being settled when the runner crashed: both ended as
    # interrupted, with the reason, and queued again.
    for trial in trials[:2]:
        assert trial.state == "fail"
        assert trial.error is not None
        assert trial.error.startswith("interrupted: the study failed: AttributeError")
    assert sorted(t.retry_of for t in trials if t.state == "waiting") == [0, 1]

    # The cause is fixed: resuming runs the interrupted trial again, then the rest of the budget.
    (folder / POISON_FILE).unlink()
    assert controller.resume_study(study_id).state in ("queued", "running")
    study = _ended(controller, study_id, timeout=60 + 4 * HOLD_S)
    assert study.state == "completed", study
    assert study.error is None
    assert study.counts["complete"] == 4
    assert study.counts["running"] == 0
    assert study.counts["waiting"] == 0


def test_a_result_whose_recording_hits_a_database_error_is_recorded_once_not_trained_again(
    controller: StudyController, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ray hands a finished trial's outcome over once (its driver keeps no handle of it after that);
    # the first write of trial 1's result meets a dropped connection. The runner must keep the
    # outcome and record it when the database answers: not lose it, nor train the trial again.
    complete = TrialBook.complete
    failed_once: list[int] = []

    def flaky_complete(book: TrialBook, number: int, value: float, attrs: dict[str, Any]) -> bool:
        if number == 1 and not failed_once:
            failed_once.append(number)
            raise sqlalchemy.exc.OperationalError("UPDATE trials", {}, Exception("server closed the connection"))
        return complete(book, number, value, attrs)

    monkeypatch.setattr(TrialBook, "complete", flaky_complete)
    request = StudyRequest(dataset="shapes/data.yaml", confirm_top_k=0, diagnostics=False, n_trials=3, parallel=2)
    study_id = controller.create_study(request).id

    study = _ended(controller, study_id, timeout=60 + 3 * HOLD_S)
    assert failed_once == [1]
    assert study.state == "completed", study
    assert study.counts == {"running": 0, "waiting": 0, "complete": 3, "pruned": 0, "fail": 0}
    trials = controller.views.trials(study_id)
    assert [t.number for t in trials] == [0, 1, 2]
    assert all(t.retry_of is None for t in trials)
