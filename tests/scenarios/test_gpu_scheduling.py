"""gpus_per_trial on a Ray that declares GPUs this machine does not have, with a stand-in trainer
(tests/fake_trainer.py): scheduling only. That a trial really trains on the GPU Ray gave
it can only be shown on a GPU machine: scripts/gpu_check.sh (which runs scripts/gpu_check.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from service.cluster.runtime import RayLink
from service.errors import InvalidRequest
from service.schemas import StudyRequest
from service.studies.controller import StudyController
from tests.conftest import copy_dataset, make_settings
from tests.fake_trainer import HOLD_S, Hold

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_with_one_declared_gpu() -> Iterator[None]:
    ray.init(address="local", num_cpus=4, num_gpus=1, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture
def controller(
    ray_with_one_declared_gpu: None, tmp_path: Path, data_root: Path, shapes_root: Path
) -> Iterator[StudyController]:
    copy_dataset(shapes_root, data_root)
    settings = make_settings(tmp_path / "home", data_root)
    # The service's driver joins the Ray this test started (with its declared GPU).
    controller = StudyController(settings, RayLink(settings), trial_task="tests.fake_trainer:fake_trial")
    yield controller
    controller.shutdown()
    controller.ray.close()


def _finished_trials(controller: StudyController, study_id: int, timeout: float = 60) -> list[Hold]:
    """What the stand-in saw in each of the study's trials, once the study has finished."""
    deadline = time.monotonic() + timeout
    while controller.views.get_study(study_id).state in ("queued", "running"):
        assert time.monotonic() < deadline, "the study did not finish"
        time.sleep(0.2)
    folder = Path(controller.settings.ARTIFACTS_DIR) / str(study_id)
    return [Hold.of_trial(folder / str(t.number)) for t in controller.views.trials(study_id) if t.state == "complete"]


def test_half_gpu_trials_share_one_gpu_and_a_third_waits(controller: StudyController) -> None:
    request = StudyRequest(
        dataset="shapes/data.yaml",
        confirm_top_k=0,
        diagnostics=False,
        n_trials=3,
        parallel=3,
        gpus_per_trial=0.5,
        batch=-1,
    )
    study_id = controller.create_study(request).id
    trials = sorted(_finished_trials(controller, study_id), key=lambda t: t.started)
    assert controller.views.get_study(study_id).state == "completed"
    spans = [(t.started, t.ended) for t in trials]
    first, second, third = spans
    # Two halves of the one GPU run side by side, both on GPU 0...
    assert second[0] < first[1]
    assert [t.gpu_ids for t in trials] == [["0"], ["0"], ["0"]]
    # ...and the third waits until one of them gives its half back.
    assert third[0] >= min(first[1], second[1]) - 0.05
    assert third[0] - first[0] >= HOLD_S * 0.9
    # AutoBatch (batch -1: 60% of the memory it finds free) is asked for half of that on half a GPU,
    # so two trials starting together cannot both size their batch to the whole GPU.
    assert [t.batch for t in trials] == [pytest.approx(0.3)] * 3


def test_zero_gpus_forces_cpu_even_where_the_cluster_has_gpus(controller: StudyController) -> None:
    study_id = controller.create_study(
        StudyRequest(dataset="shapes/data.yaml", confirm_top_k=0, diagnostics=False, n_trials=1, gpus_per_trial=0)
    ).id
    (trial,) = _finished_trials(controller, study_id)
    assert trial.gpu_ids == []
    assert trial.batch == 16


def test_default_is_one_gpu_per_trial_when_the_cluster_has_gpus(controller: StudyController) -> None:
    study_id = controller.create_study(
        StudyRequest(dataset="shapes/data.yaml", confirm_top_k=0, diagnostics=False, n_trials=2, parallel=2, batch=0.7)
    ).id
    trials = _finished_trials(controller, study_id)
    spans = sorted((t.started, t.ended) for t in trials)
    # One whole GPU each: the second trial cannot start before the first ends.
    assert spans[1][0] >= spans[0][1] - 0.05
    # A whole GPU's trial asks AutoBatch for the study's own share of its memory.
    assert [t.batch for t in trials] == [0.7, 0.7]


def test_more_gpus_than_the_cluster_has_are_refused_at_creation(controller: StudyController) -> None:
    # Ray would queue such trials forever: said at creation, before anything is written.
    request = StudyRequest(dataset="shapes/data.yaml", confirm_top_k=0, diagnostics=False, n_trials=1, gpus_per_trial=2)
    with pytest.raises(
        InvalidRequest, match=r"gpus_per_trial: the Ray cluster has 1 GPUs; 0 trains on the CPU \(got 2"
    ):
        controller.create_study(request)
    assert controller.views.list_studies() == []
