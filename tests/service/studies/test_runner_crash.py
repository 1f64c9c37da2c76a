"""A runner whose own code raises mid-study, with a stand-in trainer (tests/fake_trainer.py)
that makes it raise: the study fails with the reason, no trial is left running, and once the cause
is gone the failed study resumes and completes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.cluster.runtime import RayLink
from service.schemas import StudyOut, StudyRequest
from service.studies.controller import StudyController
from tests.conftest import copy_dataset, make_settings
from tests.fake_trainer import HOLD_S, POISON_FILE

pytestmark = pytest.mark.slow


@pytest.fixture
def controller(tmp_path: Path, data_root: Path, shapes_root: Path) -> Iterator[StudyController]:
    copy_dataset(shapes_root, data_root)
    settings = make_settings(tmp_path / "home", data_root, RAY_NUM_CPUS=4)
    ray = RayLink(settings)
    controller = StudyController(settings, ray, trial_task="tests.fake_trainer:poisoned_trial")
    yield controller
    controller.shutdown()
    ray.close()


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
