"""Racing through the real runner, Optuna and Ray, with the stand-in trainer (tests/fake_trainer.py:
no training; every training scores 0.0, so no candidate ever gains on the seed hyps). Racing's
choices on known numbers are tested in test_confirmation.py; here, that the runner trains what they
plan, look after look, and ends."""

from __future__ import annotations

import time

import pytest

from service.schemas import StudyRequest
from service.studies.controller import StudyController

pytestmark = pytest.mark.slow


def test_the_runner_adds_a_seed_then_ends_when_every_candidate_drops(fake_trial_controller: StudyController) -> None:
    controller = fake_trial_controller
    request = StudyRequest(
        dataset="shapes/data.yaml", n_trials=4, parallel=4, diagnostics=False, epochs=2,
        confirm_top_k=3, confirm_seeds=2, confirm_seeds_max=5,
    )  # fmt: skip
    study_id = controller.create_study(request).id
    # At the start, the top rung plans up to the cap: 3 candidates and the seed hyps on 5 seeds of 6 epochs.
    assert controller.views.get_study(study_id).planned_epochs.confirmation == 4 * 5 * 6
    deadline = time.monotonic() + 240
    while (study := controller.views.get_study(study_id)).state in ("queued", "running"):
        assert time.monotonic() < deadline, study
        time.sleep(0.5)
    assert study.state == "completed", study
    confirmation = study.confirmation
    assert confirmation is not None
    # Seeds 1 and 2 for all, no interval settles; seed 3 for the seed hyps and the 3 candidates still
    # racing; with no gain after 3 seeds, none could still win: the race is over before the cap (each
    # trained on every seed the seed hyps did, so none shows as dropped early).
    assert (confirmation.seeds, confirmation.seed_cap, confirmation.trainings_done) == ([1, 2, 3], 5, 12)
    assert not any(c.dropped for c in confirmation.candidates)
    assert (confirmation.verdict, confirmation.winner) == ("defaults", 0)
    trained = sorted((t.confirms, t.seed) for t in controller.views.trials(study_id) if t.stage == "confirmation")
    entries = [0, *(c.trial for c in confirmation.candidates)]
    assert trained == sorted((n, s) for n in entries for s in (1, 2, 3))
    # What it spent, once the race is over: the 12 trainings it ran.
    assert study.planned_epochs.confirmation == 12 * 6
