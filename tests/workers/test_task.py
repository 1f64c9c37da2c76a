"""The Ray task on a real local Ray, reporting to a real Optuna SQLite storage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import ray

from hyps import default_evolve_keys, load_search_space, load_seed_hyp
from service.data.datasets import check_dataset
from workers.storage import open_optuna_storage
from workers.task import ReportTo, run_trial
from workers.training import TrialSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def test_task_reports_every_epoch_to_optuna(local_ray: None, shapes_root: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=open_optuna_storage(url), direction="maximize")
    space = load_search_space()
    trial = study.ask({k: space[k].distribution() for k in default_evolve_keys()})
    spec = TrialSpec(
        trial_number=trial.number,
        data=check_dataset(shapes_root, "shapes/data.yaml"),
        model="yolov5n.yaml",
        epochs=2,
        imgsz=64,
        batch=16,
        seed=0,
        hyp={**load_seed_hyp("scratch-low"), **trial.params},
        output_dir=str(tmp_path / "runs" / "0"),
    )
    storage = open_optuna_storage(url)
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    result = ray.get(run_trial.remote(spec, ReportTo(url, study.study_name, trial_id)))

    stored = study.trials[0]
    # Each epoch's fitness reached the storage from the worker process, as Optuna intermediate values.
    assert sorted(stored.intermediate_values) == [0, 1]
    assert [stored.intermediate_values[s] for s in (0, 1)] == result.epochs
    assert result.device == "cpu"
    assert result.placement is not None
    assert result.placement.node_id == ray.get_runtime_context().get_node_id()
    assert result.train_args["lr0"] == pytest.approx(trial.params["lr0"])
