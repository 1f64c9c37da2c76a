"""Stop and delete while a study's runner is blocked on a Ray that does not answer, with a stand-in
Ray link whose connect hangs and ignores the stop (as a call into a dead Ray's driver does; a
scheduling and failure test, no training): the controller answers within STOP_WAIT_S, the study is
stopped or gone at once, and the runner, once its call returns, writes nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from service.cluster.runtime import RayLink
from service.errors import StudyNotFound
from service.schemas import StudyRequest
from service.settings import Settings
from service.studies.controller import STOP_WAIT_S, StudyController
from tests.conftest import copy_dataset


class UnansweringRay(RayLink):
    """A stand-in for a Ray that does not answer: ``connect`` hangs until ``release`` is set, whatever
    its caller asks, then reports two CPUs."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.release = threading.Event()

    def connect(self, until: threading.Event | None = None) -> dict[str, float]:
        self.release.wait(120)
        return {"CPU": 2.0}

    def cancel(self, keys: list[str]) -> None:
        pass


def _runners_alive(*study_ids: int) -> list[str]:
    names = {f"study-{i}" for i in study_ids}
    return [t.name for t in threading.enumerate() if t.name in names]


def test_a_runner_blocked_on_ray_is_detached_and_stop_and_delete_answer_at_once(
    settings: Settings, data_root: Path, shapes_root: Path
) -> None:
    copy_dataset(shapes_root, data_root)
    link = UnansweringRay(settings)
    controller = StudyController(settings, link)
    request = StudyRequest(dataset="shapes/data.yaml", epochs=1, n_trials=2, confirm_top_k=0)
    try:
        stopped, deleted = (controller.create_study(request).id for _ in range(2))
        assert _runners_alive(stopped, deleted)  # both blocked in connect

        started = time.monotonic()
        assert controller.stop_study(stopped).state == "stopped"
        controller.delete_study(deleted)
        assert time.monotonic() - started < 2 * STOP_WAIT_S + 2
        with pytest.raises(StudyNotFound):
            controller.views.get_study(deleted)
        assert _runners_alive(stopped, deleted)  # detached, still in their call

        link.release.set()  # the call returns: the runners end without writing
        deadline = time.monotonic() + 30
        while _runners_alive(stopped, deleted):
            assert time.monotonic() < deadline, "the detached runners did not end"
            time.sleep(0.1)
        study = controller.views.get_study(stopped)
        assert study.state == "stopped"
        assert study.counts["running"] == 0
        assert study.counts["waiting"] == 1  # the seed trial, never started: a resume runs it
    finally:
        link.release.set()
        controller.shutdown()
