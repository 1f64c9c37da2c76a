"""Probes through the real runner, Optuna and Ray, with the stand-in trainer (tests/fake_trainer.py:
no training, every training scores 0.0): the request's probe_keys reach the sampler, and the trials
after the seed trial are its probes, in order. What the probes are, and that a resumed study goes on
with the next, is tested on the sampler itself (tests/service/samplers/test_yolov5_sampler.py)."""

from __future__ import annotations

import time

import pytest

from service.samplers.yolov5 import probe_moves
from service.schemas import StudyRequest
from service.studies.controller import StudyController

pytestmark = pytest.mark.slow


def test_the_trials_after_the_seed_trial_are_the_probes_in_order(fake_trial_controller: StudyController) -> None:
    controller = fake_trial_controller
    request = StudyRequest(
        dataset="shapes/data.yaml", n_trials=6, parallel=3, diagnostics=False, epochs=2, confirm_top_k=0,
        probe_keys=["cls", "box"],
    )  # fmt: skip
    study_id = controller.create_study(request).id
    deadline = time.monotonic() + 180
    while (study := controller.views.get_study(study_id)).state in ("queued", "running"):
        assert time.monotonic() < deadline, study
        time.sleep(0.5)
    assert study.state == "completed", study
    plan = controller.store.get(study_id).plan
    trials = sorted(controller.views.trials(study_id), key=lambda t: t.number)
    assert [t.stage for t in trials] == ["screening"] * 6
    assert trials[0].params == plan.start_params()
    probes = probe_moves(plan.start_params(), plan.ranges, ["cls", "box"])
    assert [t.params for t in trials[1:5]] == probes
    # The sixth is evolution's: a mutation, neither the seed nor a probe.
    assert trials[5].params != plan.start_params()
    assert trials[5].params not in probes
