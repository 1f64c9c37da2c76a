"""The controller's start-up sweep, without Ray: a study whose runner cannot reach Ray waits for
it, saying why, until stopped; and a trial left running in a study that no runner owns is ended at
the next start."""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

import optuna

from service.cluster.runtime import RayLink
from service.schemas import StudyOut, StudyRequest
from service.studies.controller import StudyController
from tests.conftest import copy_dataset, make_settings


class NoRay(RayLink):
    """A link to a Ray that cannot be reached: what a runner sees when Ray does not start."""

    def connect(self, until: threading.Event | None = None) -> dict[str, float]:
        raise RuntimeError("no Ray in this test")


def _waiting(controller: StudyController, study_id: int) -> StudyOut:
    deadline = time.monotonic() + 30
    while not (study := controller.views.get_study(study_id)).waiting:
        assert time.monotonic() < deadline, study
        time.sleep(0.1)
    return study


def test_a_start_ends_running_trials_of_studies_no_runner_owns(
    tmp_path: Path, data_root: Path, shapes_root: Path
) -> None:
    copy_dataset(shapes_root, data_root)
    settings = make_settings(tmp_path / "home", data_root)
    controller = StudyController(settings, NoRay(settings))
    study = controller.create_study(
        StudyRequest(dataset="shapes/data.yaml", confirm_top_k=0, diagnostics=False, n_trials=2)
    )
    # Ray cannot be reached: the study waits for it (as for a lost Ray), saying why, rather than fail.
    study = _waiting(controller, study.id)
    assert study.state == "queued"
    assert study.waiting == "waiting for Ray: RuntimeError: no Ray in this test"
    study = controller.stop_study(study.id)
    assert study.state == "stopped"
    # A trial left running in the stopped study (as a runner that died with its database would leave it).
    optuna_study = optuna.load_study(study_name=study.name, storage=controller.storage)
    with warnings.catch_warnings():  # Optuna: heartbeats are for optimize(); this trial has none
        warnings.simplefilter("ignore", UserWarning)
        orphan = optuna_study.ask()
    controller.shutdown()

    restarted = StudyController(settings, NoRay(settings))
    restarted.resume_unfinished()
    trials = {t.number: t for t in restarted.views.trials(study.id)}
    assert trials[orphan.number].state == "fail"
    assert trials[orphan.number].error == "interrupted: the service stopped while it ran"
    # Queued again, so that resuming the study runs it; the study itself stays stopped until then.
    assert [t.retry_of for t in trials.values() if t.state == "waiting" and t.retry_of is not None] == [orphan.number]
    assert restarted.views.get_study(study.id).state == "stopped"
    restarted.shutdown()
