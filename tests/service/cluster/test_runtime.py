"""The service's link to Ray (RayLink and its driver process) with a real local Ray whose raylet a
test kills: the loss is noticed in seconds, and what had ended before it is kept."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from service.cluster.driver import TaskOutcome
from service.cluster.runtime import RayLink, RayLost
from tests.conftest import make_settings
from tests.helpers import wait_for

pytestmark = pytest.mark.slow


def _descendants() -> dict[int, psutil.Process]:
    return {p.pid: p for p in psutil.Process().children(recursive=True)}


def test_a_killed_raylet_is_noticed_in_seconds_and_a_finished_result_is_kept(tmp_path: Path) -> None:
    before = _descendants()
    link = RayLink(make_settings(tmp_path / "home", tmp_path, RAY_NUM_CPUS=2))
    link.connect()
    try:
        (raylet,) = [p for pid, p in _descendants().items() if pid not in before and p.name() == "raylet"]
        mark = tmp_path / "ended"
        ended = link.submit("tests.fake_trainer:marked_echo", {"num_cpus": 0}, {"fitness": 0.5}, str(mark))
        running = link.submit("tests.fake_trainer:sleeper", {"num_cpus": 0}, 600.0)
        wait_for(mark.exists, 60, "the first task to run")
        time.sleep(1.0)  # its return value reaches the driver; nobody has waited for it
        assert link.status().startswith("connected: ")

        raylet.kill()
        killed = time.monotonic()
        with pytest.raises(RayLost, match=r"Ray's raylet \(pid \d+\) exited"):
            link.wait([running], 60.0)  # without the watch: 60 s of nothing, then []
        assert time.monotonic() - killed < 5.0
        assert link.status().startswith("lost: Ray's raylet")
        with pytest.raises(RayLost):
            link.submit("tests.fake_trainer:sleeper", {"num_cpus": 0}, 1.0)  # nothing goes to a dead raylet

        # The task that had ended is a result, handed over once; the one that was running is not.
        assert link.harvested([ended, running]) == [(ended, TaskOutcome("result", result={"fitness": 0.5}))]
        assert link.harvested([ended]) == []

        link.restart(link.generation, "the raylet was killed")
        assert link.connect()["CPU"] == 2
        assert link.problem() is None
    finally:
        link.close()
