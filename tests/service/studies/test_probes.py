"""Probes through the real runner, Optuna and Ray, with the stand-in trainer (tests/fake_trainer.py:
no training, every training scores 0.0): the request's probe_keys reach the sampler, and the trials
after the seed trial are its probes, in order. What the probes are, and that a resumed study goes on
with the next, is tested on the sampler itself (tests/service/samplers/test_yolov5_sampler.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.samplers.yolov5 import first_probes
from service.schemas import StudyOut, StudyRequest
from service.studies.controller import StudyController
from tests.fake_trainer import stand_in_controller

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fake_trial_controller(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudyController]:
    """One controller (and its local Ray) for the module: each test waits for its own studies to end,
    so they share it the way a user's studies share a service. A Ray per test cost 9 s a test."""
    home = tmp_path_factory.mktemp("probes")
    (home / "data").mkdir()
    with stand_in_controller(home, home / "data", shapes_root, "fake_trial") as controller:
        yield controller


def _finished(controller: StudyController, study_id: int) -> StudyOut:
    """The study once it has stopped running (at most 3 minutes)."""
    deadline = time.monotonic() + 180
    while (study := controller.views.get_study(study_id)).state in ("queued", "running"):
        assert time.monotonic() < deadline, study
        time.sleep(0.5)
    return study


def test_the_trials_after_the_seed_trial_are_the_probes_in_order(fake_trial_controller: StudyController) -> None:
    controller = fake_trial_controller
    request = StudyRequest(
        dataset="shapes/data.yaml", n_trials=6, parallel=3, diagnostics=False, epochs=2, confirm_top_k=0,
        probe_keys=["cls", "box"],
    )  # fmt: skip
    study_id = controller.create_study(request).id
    study = _finished(controller, study_id)
    assert study.state == "completed", study
    plan = controller.store.get(study_id).plan
    trials = sorted(controller.views.trials(study_id), key=lambda t: t.number)
    assert [t.stage for t in trials] == ["screening"] * 6
    assert trials[0].params == plan.start_params()
    probes = first_probes(plan.start_params(), plan.ranges, ["cls", "box"])
    assert [(t.params, t.probe) for t in trials[1:5]] == [(p.params, p.label) for p in probes]
    assert [t.probe for t in trials[1:5]] == ["cls 0.5 -> 1", "cls 0.5 -> 0.25", "box 0.05 -> 0.1", "box 0.05 -> 0.025"]
    # The sixth is evolution's: a mutation, neither the seed nor a probe (every training scores 0 here,
    # so no probe beat the seed trial and no key's line goes on).
    assert trials[5].params != plan.start_params()
    assert trials[5].params not in [p.params for p in probes]
    assert trials[0].probe is None
    assert trials[5].probe is None


def test_by_default_a_study_probes_the_loss_gains_and_mosaic(fake_trial_controller: StudyController) -> None:
    controller = fake_trial_controller
    request = StudyRequest(dataset="shapes/data.yaml", n_trials=6, parallel=2, diagnostics=False, epochs=2,
                           confirm_top_k=0)  # fmt: skip
    assert request.probe_keys is None
    study = controller.create_study(request)
    # The study's request says what it probes.
    assert study.request.probe_keys == ["box", "cls", "mosaic"]
    _finished(controller, study.id)
    plan = controller.store.get(study.id).plan
    trials = sorted(controller.views.trials(study.id), key=lambda t: t.number)
    probes = first_probes(plan.start_params(), plan.ranges, ["box", "cls", "mosaic"])
    # mosaic (1.0, the top of its range) has one first probe: doubled it clips back onto the seed's value.
    assert [p.label for p in probes][-1] == "mosaic 1 -> 0.5"
    assert [(t.params, t.probe) for t in trials[1:6]] == [(p.params, p.label) for p in probes]


@pytest.mark.parametrize(
    ("fields", "probed"),
    [
        ({"key_set": "augmentation"}, ["mosaic"]),  # the loss gains are not searched: no 422 for them
        ({"evolve": ["lr0", "cls"]}, ["cls"]),
        ({"sampler": "tpe"}, []),  # only the yolov5 sampler probes
        ({"probe_keys": []}, []),  # a study that asks for none gets none
    ],
)
def test_the_default_probes_only_what_the_study_searches_with_the_yolov5_sampler(
    fake_trial_controller: StudyController, fields: dict[str, object], probed: list[str]
) -> None:
    request = StudyRequest.model_validate(
        {"dataset": "shapes/data.yaml", "n_trials": 1, "diagnostics": False, "epochs": 2, "confirm_top_k": 0, **fields}
    )
    study = fake_trial_controller.create_study(request)
    assert study.request.probe_keys == probed
    assert fake_trial_controller.store.get(study.id).request.probe_keys == probed
    _finished(fake_trial_controller, study.id)


@pytest.mark.parametrize(
    ("fields", "confirmed"),
    [
        ({}, ["mosaic"]),  # the default probes box, cls and mosaic
        ({"probe_keys": ["box", "cls"]}, []),  # no probe of mosaic: no best probe to take a place
        ({"probe_keys": ["box", "mosaic"]}, ["mosaic"]),
        ({"probe_keys": ["box", "mosaic"], "confirm_top_k": 1}, []),  # the top screening trial's place only
        ({"probe_keys": ["box", "mosaic"], "confirm_probe_keys": []}, []),
    ],
)
def test_the_default_confirms_mosaics_best_probe_where_the_study_probes_it(
    fake_trial_controller: StudyController, fields: dict[str, object], confirmed: list[str]
) -> None:
    request = StudyRequest.model_validate(
        {"dataset": "shapes/data.yaml", "n_trials": 1, "diagnostics": False, "epochs": 2, **fields}
    )
    study = fake_trial_controller.create_study(request)
    assert study.request.confirm_probe_keys == confirmed
    assert fake_trial_controller.store.get(study.id).request.confirm_probe_keys == confirmed
    _finished(fake_trial_controller, study.id)


def test_mosaics_best_probe_is_confirmed_though_it_ranks_last(fake_trial_controller: StudyController) -> None:
    # Every stand-in training scores 0.0: screening's ranking is the trials' order, and mosaic's probe
    # (the fifth after the seed trial) ranks below box's and cls's.
    controller = fake_trial_controller
    request = StudyRequest(
        dataset="shapes/data.yaml", n_trials=7, parallel=2, diagnostics=False, epochs=2, confirm_top_k=2,
        confirm_seeds=2, probe_keys=["box", "cls", "mosaic"],
    )  # fmt: skip
    study = _finished(controller, controller.create_study(request).id)
    assert study.state == "completed", study
    assert study.request.confirm_probe_keys == ["mosaic"]
    trials = sorted(controller.views.trials(study.id), key=lambda t: t.number)
    screening = [t for t in trials if t.stage == "screening"]
    mosaic = next(t for t in screening if t.probe == "mosaic 1 -> 0.5")
    assert mosaic.number == 5
    confirmed = {(t.confirms, t.seed) for t in trials if t.stage == "confirmation"}
    # The top screening trial (1, the first to score 0.0 after the seed trial) and mosaic's probe, not
    # trial 2, which ranks above it; each beside the seed hyps on the same 2 seeds.
    assert {number for number, _ in confirmed} == {0, 1, mosaic.number}
    assert len(confirmed) == 6
    assert study.confirmation is not None
    assert [c.trial for c in study.confirmation.candidates] == [1, mosaic.number]
