"""PostgreSQL stopped for a while, then started again, under a study with real trainings: the API
answers (503 for what needs the database, /healthz says "degraded"), no runner or worker dies of it,
and the study completes with exactly its trials, none lost, none counted twice.

It stops the local PostgreSQL server that scripts/start_postgres.sh started (CI starts it, as root);
elsewhere it is skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import fresh_database
from tests.helpers import run_to_end, start_server, stop_server, wait_for, wait_for_training

pytestmark = pytest.mark.slow

HEARTBEAT = {"HYPEVOLVE_HEARTBEAT_INTERVAL_S": "1", "HYPEVOLVE_HEARTBEAT_GRACE_S": "8"}
DOWN_S = 20  # longer than the heartbeat grace: live trainings must not be taken for lost ones


def _local_cluster() -> list[str]:
    """pg_ctlcluster's version and cluster name for the server at TEST_DATABASE_URL, if this test may
    stop it: a local server, pg_ctlcluster present, and root."""
    url = os.environ.get("TEST_DATABASE_URL")
    reason = None
    if not url:
        reason = "needs TEST_DATABASE_URL (bash scripts/start_postgres.sh)"
    elif make_url(url).host not in ("127.0.0.1", "localhost"):
        reason = "the PostgreSQL server is not on this machine"
    elif shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        reason = "stopping PostgreSQL needs pg_ctlcluster and root (as CI has)"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the database restart test: {reason}")
        pytest.skip(reason)
    version = sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: [int(p) for p in v.split(".")])[-1]
    return [version, "main"]


@pytest.fixture
def cluster() -> Iterator[list[str]]:
    cluster = _local_cluster()
    yield cluster
    # Whatever happened in the test, the server is running again for the tests after it.
    subprocess.run(["pg_ctlcluster", *cluster, "start"], check=False, capture_output=True)
    subprocess.run(["pg_isready", "-h", "127.0.0.1", "-t", "30"], check=True, capture_output=True)


def test_postgresql_down_mid_study_loses_no_trial(cluster: list[str], tmp_path: Path, small_shapes_root: Path) -> None:
    with fresh_database("postgresql", tmp_path) as url:
        home = tmp_path / "home"
        home.mkdir()
        process, server = start_server(home, small_shapes_root, url, {**os.environ, **HEARTBEAT})
        try:
            _study_through_an_outage(server, cluster)
        finally:
            stop_server(process, server)


def _study_through_an_outage(server: httpx.Client, cluster: list[str]) -> None:
    request = {"dataset": "shapes/data.yaml", "imgsz": 64, "epochs": 4, "n_trials": 3, "parallel": 2}
    study_id = server.post("/studies", json={**request, "confirm_top_k": 0, "diagnostics": False}).json()["id"]
    wait_for_training(server, study_id)
    subprocess.run(["pg_ctlcluster", *cluster, "stop"], check=True, capture_output=True)
    down_at = time.monotonic()
    health = server.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["database"].startswith("unreachable: ")
    answer = server.get(f"/studies/{study_id}")
    assert answer.status_code == 503, answer.text
    assert answer.json()["detail"].startswith("the database is unreachable")
    time.sleep(max(0.0, DOWN_S - (time.monotonic() - down_at)))
    subprocess.run(["pg_ctlcluster", *cluster, "start"], check=True, capture_output=True)
    wait_for(lambda: server.get("/healthz").json()["status"] == "ok", 60, "the database to answer again")

    study = run_to_end(server, study_id)
    assert study["state"] == "completed", study
    assert study["counts"]["complete"] == 3, study
    assert study["counts"]["running"] == 0
    trials: list[dict[str, Any]] = server.get(f"/studies/{study_id}/trials").json()
    # A trial the outage ended is failed with the reason and run again, never counted as a failure.
    for trial in trials:
        assert trial["state"] in ("complete", "fail"), trial
        if trial["state"] == "fail":
            assert trial["error"].startswith("interrupted"), trial
            assert any(t["retry_of"] == trial["number"] and t["state"] == "complete" for t in trials), trial
    hyp = server.get(f"/studies/{study_id}/hyp.yaml")
    assert hyp.status_code == 200
    assert "lr0:" in hyp.text
