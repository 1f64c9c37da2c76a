"""Fixtures of the runner tests that train nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.studies.controller import StudyController
from tests.fake_trainer import stand_in_controller


@pytest.fixture
def fake_trial_controller(tmp_path: Path, data_root: Path, shapes_root: Path) -> Iterator[StudyController]:
    """A real controller whose trials run the stand-in trainer (tests/fake_trainer.py: every training
    scores 0.0): for tests of what the runner schedules, never of what training does."""
    with stand_in_controller(tmp_path, data_root, shapes_root, "fake_trial") as controller:
        yield controller
