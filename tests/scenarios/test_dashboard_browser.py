"""optuna-dashboard, as `hypevolve dashboard` serves it, rendered by a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import optuna
import pytest
from PIL import Image

from tests.conftest import free_port
from workers.storage import open_optuna_storage

pytestmark = pytest.mark.slow

# As the workplace's own probe starts it: no sandbox as root, and no background connections, which
# a closed network refuses by the dozen.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,900", "--virtual-time-budget=15000",
]  # fmt: skip


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.environ.get("CI"):
        pytest.fail("CI must run the browser test: .ci/run installs Debian's chromium")
    pytest.skip("needs headless Chromium (apt-get install chromium)")


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'hypevolve.db'}"
    study = optuna.create_study(study_name="browser-shapes", storage=open_optuna_storage(url), direction="maximize")
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        study.set_metric_names(["fitness"])
    for number, value in enumerate([0.02, 0.11, 0.07]):
        params = {"lr0": 0.001 * (number + 1)}
        dists = {"lr0": optuna.distributions.FloatDistribution(1e-5, 0.1, log=True)}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value))
    port = free_port()
    env = {**os.environ, "HYPEVOLVE_HOME": str(tmp_path), "HYPEVOLVE_DATABASE_URL": url}
    command = [str(Path(sys.executable).parent / "hypevolve"), "dashboard", "--port", str(port)]
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/api/studies", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the dashboard exited"
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(10)


def _chromium_run(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    command = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def test_the_dashboard_page_lists_the_study_and_draws_its_trials(dashboard: str, tmp_path: Path) -> None:
    listing = _chromium_run(["--dump-dom", f"{dashboard}/dashboard"], tmp_path / "profile-1").stdout
    # The study list is rendered by the page's JavaScript: present only if the app ran.
    assert "browser-shapes" in listing

    shot = tmp_path / "study.png"
    _chromium_run([f"--screenshot={shot}", f"{dashboard}/dashboard/studies/1"], tmp_path / "profile-2")
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (900, 1280)
    # The study page has a blue app bar and a history plot: far from a blank page.
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 200
    study_page = _chromium_run(["--dump-dom", f"{dashboard}/dashboard/studies/1"], tmp_path / "profile-3").stdout
    assert "browser-shapes" in study_page
    assert "fitness" in study_page
