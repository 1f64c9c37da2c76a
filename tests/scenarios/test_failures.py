"""Failures with real processes: a worker SIGKILLed or frozen mid-training, trainings that raise, the
service SIGKILLed mid-study and started again, and 20 clients polling a running study."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from tests.helpers import (
    assert_only_interruptions,
    run_to_end,
    run_to_end_polled,
    start_server,
    stop_server,
    wait_for,
)

pytestmark = pytest.mark.slow

HEARTBEAT = {"HYPEVOLVE_HEARTBEAT_INTERVAL_S": "1", "HYPEVOLVE_HEARTBEAT_GRACE_S": "8"}
STUDY = {"dataset": "shapes/data.yaml", "imgsz": 64, "batch": 16, "confirm_top_k": 0, "diagnostics": False}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def server(home: Path, small_shapes_root: Path) -> Iterator[httpx.Client]:
    url = f"sqlite:///{home / 'hypevolve.db'}"
    process, client = start_server(home, small_shapes_root, url, {**os.environ, **HEARTBEAT})
    yield client
    stop_server(process, client)


def _trials(server: httpx.Client, study_id: int) -> list[dict[str, Any]]:
    trials: list[dict[str, Any]] = server.get(f"/studies/{study_id}/trials").json()
    return trials


def _training_trial(server: httpx.Client, study_id: int, number: int) -> dict[str, Any]:
    """Wait until trial ``number`` has reported an epoch: its worker is mid-training."""

    def training() -> dict[str, Any] | None:
        trials = _trials(server, study_id)
        trial = trials[number] if len(trials) > number else None
        return (
            trial
            if trial and trial["state"] == "running" and trial["epochs"] and trial["pid"] and trial["node"]
            else None
        )

    found: dict[str, Any] = wait_for(training, 180, f"trial {number} to train")
    return found


def test_lost_workers_cost_only_their_trials_which_are_retried(server: httpx.Client) -> None:
    # Two trials side by side: one worker is killed, the other frozen (alive, silent: only its
    # heartbeat going stale tells the runner).
    study_id = server.post("/studies", json={**STUDY, "epochs": 6, "n_trials": 2, "parallel": 2}).json()["id"]
    killed, frozen = _training_trial(server, study_id, 0), _training_trial(server, study_id, 1)
    os.kill(killed["pid"], signal.SIGKILL)
    os.kill(frozen["pid"], signal.SIGSTOP)

    study = run_to_end(server, study_id)
    assert study["state"] == "completed", study
    trials = _trials(server, study_id)
    for number, reason in ((0, "worker lost: "), (1, "worker lost: no heartbeat for over 8s")):
        lost = trials[number]
        assert lost["state"] == "fail"
        assert lost["error"].startswith(reason), lost
        # Its retry ran the same params to completion; the study still got its two evaluations.
        retry = next(t for t in trials if t["retry_of"] == number)
        assert retry["state"] == "complete"
        assert retry["params"] == lost["params"]
    assert study["counts"] == {"running": 0, "waiting": 0, "complete": 2, "pruned": 0, "fail": 2}


def _raylets_of(server: httpx.Client) -> list[psutil.Process]:
    """The raylet(s) of the local Ray that the `hypevolve serve` behind ``server`` started."""
    port = str(httpx.URL(str(server.base_url)).port)
    (serve,) = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"][-2:] == ["--port", port]]
    return [p for p in serve.children(recursive=True) if p.name() == "raylet"]


def test_a_killed_raylet_is_restarted_and_the_study_completes(server: httpx.Client) -> None:
    study_id = server.post("/studies", json={**STUDY, "epochs": 4, "n_trials": 3, "parallel": 2}).json()["id"]
    _training_trial(server, study_id, 0)
    raylets = _raylets_of(server)
    assert raylets
    for raylet in raylets:
        raylet.kill()

    # Noticed in seconds, by the driver's watch (a hung call would take a minute to time out): the
    # trainings in flight are interrupted, saying why, and the API no longer says "connected".
    def interrupted() -> bool:
        errors = [t["error"] or "" for t in _trials(server, study_id)]
        return any(e.startswith("interrupted: Ray was lost (Ray's raylet (pid ") for e in errors)

    wait_for(interrupted, 10, "the trainings on the dead raylet to be interrupted")

    # The API answers all along (it used to exit about 60 s after its Ray was lost), and the study
    # ends with its full count: what Ray's loss interrupted ran again, and counted once.
    statuses: set[int] = set()
    study = run_to_end_polled(server, study_id, statuses)
    assert statuses == {200}
    assert_only_interruptions(server, study, 3)
    assert _raylets_of(server), "a new local Ray was started"
    assert server.get("/healthz").json()["ray"].startswith("connected: ")


def test_trainings_that_raise_fail_their_trials_then_the_study(server: httpx.Client, small_shapes_root: Path) -> None:
    # A usable training split (the request passes: its report finds boxes) and a validation folder
    # that exists but holds no images: every training raises when it loads it.
    empty = small_shapes_root / "empty"
    (empty / "images" / "val").mkdir(parents=True, exist_ok=True)
    spec = {"train": "../shapes/images/train", "val": "images/val", "names": ["circle", "square", "triangle"]}
    (empty / "data.yaml").write_text(yaml.safe_dump(spec))
    request = {**STUDY, "dataset": "empty/data.yaml", "epochs": 1, "n_trials": 5, "max_failed_trials": 2}
    created = server.post("/studies", json=request)
    assert created.status_code == 201, created.text
    study_id = created.json()["id"]

    study = run_to_end(server, study_id)
    assert study["state"] == "failed"
    trials = _trials(server, study_id)
    # Two failures end it; a training error is not retried, and no third trial started.
    assert [t["state"] for t in trials] == ["fail", "fail"]
    for trial in trials:
        assert trial["error"].startswith("FileNotFoundError: val: Error loading data from "), trial["error"]
        assert "empty/images/val" in trial["error"]
    assert study["error"].startswith("2 trials failed (max_failed_trials 2); last, trial 1: ")
    shutil.rmtree(empty)


def test_twenty_clients_polling_a_running_study_see_no_errors(server: httpx.Client, home: Path) -> None:
    # The server and its log are the module's: only what this test's polling adds to the log counts
    # (test_lost_workers freezes a worker, which may hold SQLite's write lock when it stops).
    log = home / "serve.log"
    logged_before = log.stat().st_size
    study_id = server.post("/studies", json={**STUDY, "epochs": 2, "n_trials": 2, "parallel": 2}).json()["id"]
    statuses: list[int] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 15

    def poll() -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            while time.monotonic() < deadline:
                for path in (f"/studies/{study_id}", f"/studies/{study_id}/trials"):
                    code = client.get(path).status_code
                    with lock:
                        statuses.append(code)

    threads = [threading.Thread(target=poll) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses
    assert set(statuses) == {200}
    assert run_to_end(server, study_id)["state"] == "completed"
    with log.open("rb") as logged:
        logged.seek(logged_before)
        assert "database is locked" not in logged.read().decode(errors="replace")


def test_resume_then_delete_removes_only_that_study(server: httpx.Client, home: Path) -> None:
    study_id = server.post("/studies", json={**STUDY, "epochs": 1, "n_trials": 2, "parallel": 1}).json()["id"]
    assert server.post(f"/studies/{study_id}/stop").json()["state"] == "stopped"
    assert server.post(f"/studies/{study_id}/resume").json()["state"] in ("queued", "running")
    assert run_to_end(server, study_id)["state"] == "completed"
    assert server.post(f"/studies/{study_id}/resume").status_code == 409

    artifacts = home / "runs"
    others = sorted(p.name for p in artifacts.iterdir() if p.name != str(study_id))
    assert (artifacts / str(study_id)).is_dir()
    assert server.delete(f"/studies/{study_id}").status_code == 204
    assert server.get(f"/studies/{study_id}").status_code == 404
    assert not (artifacts / str(study_id)).exists()
    assert sorted(p.name for p in artifacts.iterdir()) == others


def _hyp_without_date(server: httpx.Client, study_id: int) -> str:
    text = server.get(f"/studies/{study_id}/hyp.yaml").text
    return "\n".join(line for line in text.splitlines() if not line.startswith("# exported "))


def test_service_killed_mid_study_resumes_from_the_database(small_shapes_root: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hypevolve.db'}"
    env = {**os.environ, **HEARTBEAT}
    process, server = start_server(tmp_path, small_shapes_root, url, env)
    study_id = server.post("/studies", json={**STUDY, "epochs": 3, "n_trials": 3, "parallel": 2}).json()["id"]
    _training_trial(server, study_id, 0)
    _training_trial(server, study_id, 1)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    server.close()

    process, server = start_server(tmp_path, small_shapes_root, url, env)
    try:
        study = run_to_end(server, study_id)
        assert study["state"] == "completed", study
        trials = _trials(server, study_id)
        for cut in trials[:2]:
            assert (cut["state"], cut["error"]) == ("fail", "interrupted: the service stopped while it ran")
            retry = next(t for t in trials if t["retry_of"] == cut["number"])
            assert (retry["state"], retry["params"]) == ("complete", cut["params"])
        # Three evaluations, none counted twice, nothing left running.
        assert study["counts"] == {"running": 0, "waiting": 0, "complete": 3, "pruned": 0, "fail": 2}
        exported = _hyp_without_date(server, study_id)
    finally:
        stop_server(process, server)

    process, server = start_server(tmp_path, small_shapes_root, url, env)
    try:
        # A completed study is left alone by a restart: same state, same export.
        assert server.get(f"/studies/{study_id}").json()["counts"]["complete"] == 3
        assert _hyp_without_date(server, study_id) == exported
    finally:
        stop_server(process, server)
