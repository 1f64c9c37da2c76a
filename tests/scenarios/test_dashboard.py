"""`hypevolve dashboard` serves optuna-dashboard on the service's own database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import optuna

from tests.conftest import free_port
from workers.storage import open_optuna_storage


def test_dashboard_lists_the_studies_in_the_service_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hypevolve.db'}"
    study = optuna.create_study(study_name="seen-in-dashboard", storage=open_optuna_storage(url), direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    port = free_port()
    env = {**os.environ, "HYPEVOLVE_HOME": str(tmp_path), "HYPEVOLVE_DATABASE_URL": url}
    command = [str(Path(sys.executable).parent / "hypevolve"), "dashboard", "--port", str(port)]
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, names = time.monotonic() + 30, None
        while time.monotonic() < deadline and names is None:
            try:
                summaries = httpx.get(f"http://127.0.0.1:{port}/api/studies", timeout=5).json()["study_summaries"]
                names = [s["study_name"] for s in summaries]
            except httpx.TransportError:
                assert process.poll() is None, "the dashboard exited"
                time.sleep(0.2)
        assert names == ["seen-in-dashboard"]
    finally:
        process.terminate()
        process.wait(10)
