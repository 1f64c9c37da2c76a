"""Helpers several test modules share: a real `hypevolve serve` process, waiting for a study, test
files in the formats users upload, and the check that a refused request wrote nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import optuna
from sqlalchemy import create_engine, func, select

from hyps import HYP_KEYS, load_seed_hyp
from service.settings import Settings
from service.studies.tables import StudyRow

FINISHED = ("completed", "stopped", "failed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def start_server(
    home: Path, data_root: Path, database_url: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], httpx.Client]:
    """Start `hypevolve serve` as its own process and wait until it answers."""
    port = free_port()
    env = {
        **(env or os.environ),
        "HYPEVOLVE_HOME": str(home),
        "HYPEVOLVE_DATABASE_URL": database_url,
        "HYPEVOLVE_DATA_ROOT": str(data_root),
        "HYPEVOLVE_RAY_NUM_CPUS": "2",
    }
    command = [str(Path(sys.executable).parent / "hypevolve"), "serve", "--port", str(port)]
    with (home / "serve.log").open("ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def healthy() -> bool:
        assert process.poll() is None, (home / "serve.log").read_text()
        try:
            return client.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, 60, "the API to start")
    return process, client


def stop_server(process: subprocess.Popen[bytes], client: httpx.Client) -> None:
    client.close()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


def run_to_end(server: httpx.Client, study_id: int, timeout: float = 900) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        study = server.get(f"/studies/{study_id}").json()
        return study if study["state"] in FINISHED else None

    result: dict[str, Any] = wait_for(finished, timeout, f"study {study_id} to finish")
    return result


def wait_for_training(server: httpx.Client, study_id: int, timeout: float = 300) -> None:
    """Wait until one of the study's trials is running and has reported an epoch."""

    def training() -> bool:
        trials = server.get(f"/studies/{study_id}/trials").json()
        return any(t["state"] == "running" and t["epochs"] for t in trials)

    wait_for(training, timeout, "a trial to train")


def run_to_end_polled(server: httpx.Client, study_id: int, statuses: set[int], timeout: float = 900) -> dict[str, Any]:
    """run_to_end, adding to ``statuses`` every status GET /studies/{id} answered meanwhile."""

    def finished() -> dict[str, Any] | None:
        answer = server.get(f"/studies/{study_id}")
        statuses.add(answer.status_code)
        study: dict[str, Any] = answer.json()
        return study if study["state"] in FINISHED else None

    found: dict[str, Any] = wait_for(finished, timeout, f"study {study_id} to finish")
    return found


def assert_only_interruptions(server: httpx.Client, study: dict[str, Any], n_trials: int) -> None:
    """The study completed with its full count, waits for nothing, and every trial that failed was an
    interruption (requeued, run again, counted once)."""
    assert study["state"] == "completed", study
    assert study["counts"]["complete"] == n_trials, study
    assert study["waiting"] is None
    for trial in server.get(f"/studies/{study['id']}/trials").json():
        if trial["state"] == "fail":
            assert trial["error"].startswith("interrupted: "), trial


EVOLVE_COLUMNS = [
    "metrics/precision", "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95",
    "val/box_loss", "val/obj_loss", "val/cls_loss", *HYP_KEYS, "anchors",
]  # fmt: skip


def evolve_csv(rows: list[dict[str, float]]) -> bytes:
    """An evolve.csv as YOLOv5 v7.0's print_mutation() writes it: '%20s,' headers, '%20.5g,' values."""
    n = len(EVOLVE_COLUMNS)
    text = ("%20s," * n % tuple(EVOLVE_COLUMNS)).rstrip(",") + "\n"
    for row in rows:
        values = {**load_seed_hyp("scratch-low"), "anchors": 3.0, "val/box_loss": 0.03, "val/obj_loss": 0.02,
                  "val/cls_loss": 0.01, **row}  # fmt: skip
        text += ("%20.5g," * n % tuple(values[c] for c in EVOLVE_COLUMNS)).rstrip(",") + "\n"
    return text.encode()


def nothing_written(settings: Settings) -> None:
    """No study row and no Optuna study exist: a refused request changed nothing."""
    engine = create_engine(settings.DATABASE_URL)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(StudyRow)) == 0
    engine.dispose()
    storage = optuna.storages.RDBStorage(settings.DATABASE_URL)
    assert storage.get_all_studies() == []
    storage.engine.dispose()
