"""A stand-in for workers.task.run_trial, for tests about scheduling: no training, just the time a
trial holds its Ray resources and which GPU Ray gave it. Never used by a test that claims training
works.

It returns the same TrialResult a real worker does (fitness 0, device "fake"); what the scheduling
tests measure (when it held its resources, which GPUs Ray gave it) it writes to ``hold.json`` in the
trial's output folder, where the tests read it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import ray

from workers.task import ReportTo, placement_here
from workers.training import TrialResult, TrialSpec

if TYPE_CHECKING:
    from service.studies.controller import StudyController

HOLD_S = 3.0
HOLD_FILE = "hold.json"


@dataclass(frozen=True)
class Hold:
    """What the stand-in saw: when it held its Ray resources and the GPUs Ray assigned."""

    started: float
    ended: float
    gpu_ids: list[str]
    cuda_visible_devices: str | None
    batch: float  # what the runner asked ultralytics for (AutoBatch's share, with batch -1)

    @classmethod
    def of_trial(cls, output_dir: Path) -> Hold:
        return cls(**json.loads((output_dir / HOLD_FILE).read_text()))


def fake_trial_here(spec: TrialSpec, report_to: ReportTo) -> TrialResult:
    started = time.time()
    time.sleep(HOLD_S)
    gpus = [str(g) for g in ray.get_gpu_ids()]
    hold = Hold(started, time.time(), gpus, os.environ.get("CUDA_VISIBLE_DEVICES"), spec.batch)
    out = Path(spec.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / HOLD_FILE).write_text(json.dumps(hold.__dict__))
    metrics = {"precision": 0.0, "recall": 0.0, "mAP50": 0.0, "mAP50-95": 0.0}
    return TrialResult(
        fitness=0.0,
        metrics=metrics,
        epochs=[0.0],
        duration_s=hold.ended - started,
        device="fake",
        placement=placement_here(),
    )


fake_trial = ray.remote(max_retries=0)(fake_trial_here)


POISON_FILE = "poison.json"


def poisoned_trial_here(spec: TrialSpec, report_to: ReportTo) -> TrialResult | None:
    """The stand-in, except that it returns None (not a TrialResult: what no worker may return, so
    that the runner's own code raises) for the trial numbers listed in ``poison.json`` in the
    study's artifacts folder. For tests of a runner that crashes; removing the file is the fix."""
    poison = Path(spec.output_dir).parent / POISON_FILE
    if poison.is_file() and spec.trial_number in json.loads(poison.read_text()):
        return None
    return fake_trial_here(spec, report_to)


poisoned_trial = ray.remote(max_retries=0)(poisoned_trial_here)


@ray.remote(max_retries=0)
def marked_echo(value: object, mark: str) -> object:
    """Returns ``value`` at once, having created the file ``mark``: a task a test knows has ended."""
    Path(mark).touch()
    return value


@ray.remote(max_retries=0)
def sleeper(seconds: float) -> None:
    """A task that is still running when a test breaks Ray under it."""
    time.sleep(seconds)


@contextmanager
def stand_in_controller(
    tmp_path: Path, data_root: Path, shapes_root: Path, task: str = "fake_trial"
) -> Iterator[StudyController]:
    """A real controller (its own local Ray of 4 CPUs, the sample data set) whose trials run the
    stand-in ``task`` of this module. Imported here, not at the top: Ray workers import this module."""
    from service.cluster.runtime import RayLink
    from service.studies.controller import StudyController
    from tests.conftest import copy_dataset, make_settings

    copy_dataset(shapes_root, data_root)
    settings = make_settings(tmp_path / "home", data_root, RAY_NUM_CPUS=4)
    link = RayLink(settings)
    controller = StudyController(settings, link, trial_task=f"tests.fake_trainer:{task}")
    try:
        yield controller
    finally:
        controller.shutdown()
        link.close()
