"""Pruning with real trainings: a pruned trial stops at once, frees its worker and trained fewer epochs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import run_to_end, start_server, stop_server

pytestmark = pytest.mark.slow

EPOCHS = 6


@pytest.fixture(scope="module")
def sqlite_server(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """On the full sample data set: whether a trial trails depends on how much it learns per epoch."""
    home = tmp_path_factory.mktemp("home")
    process, client = start_server(home, shapes_root, f"sqlite:///{home / 'hypevolve.db'}")
    yield client
    stop_server(process, client)


def test_median_pruner_stops_trials_that_trail(sqlite_server: httpx.Client) -> None:
    # lr0 alone, sampled at random from YOLOv5's range: some draws (lr0 ~ 1e-4) cannot learn in six
    # epochs while the seed trial (lr0 0.01) does; the median pruner must stop those early.
    request = {"dataset": "shapes/data.yaml", "epochs": EPOCHS, "imgsz": 64, "n_trials": 5, "parallel": 2,
               "confirm_top_k": 0, "diagnostics": False, "sampler": "random", "seed": 0, "evolve": ["lr0"],
               "pruner": "median"}  # fmt: skip
    created = sqlite_server.post("/studies", json=request)
    assert created.status_code == 201, created.text
    study = run_to_end(sqlite_server, created.json()["id"])
    assert study["state"] == "completed", study
    trials = sqlite_server.get(f"/studies/{study['id']}/trials").json()
    pruned = [t for t in trials if t["state"] == "pruned"]
    assert pruned, [(t["params"], t["epochs"]) for t in trials]
    assert study["counts"]["pruned"] == len(pruned)
    for trial in pruned:
        # Stopped early: fewer epochs than asked, and never before the pruner's warmup (a third).
        assert EPOCHS // 3 < len(trial["epochs"]) < EPOCHS
        assert trial["fitness"] is None
        # A pruned training still records the batch it trained with, as a completed one does.
        assert trial["batch"] == 16
    complete = [t for t in trials if t["state"] == "complete"]
    assert all(len(t["epochs"]) == EPOCHS for t in complete)
    # Pruned trials still use the budget: five trials were run in all.
    assert len(pruned) + len(complete) == 5


def test_unknown_pruner_lists_the_valid_names(sqlite_server: httpx.Client) -> None:
    response = sqlite_server.post("/studies", json={"dataset": "shapes/data.yaml", "pruner": "asha"})
    assert response.status_code == 422
    assert "valid names: none, median, hyperband, sha" in response.json()["detail"]
