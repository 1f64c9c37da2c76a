"""Eight processes working one study on PostgreSQL at once lose and duplicate nothing.

The objective is a fast stand-in (no training): this is about the storage under concurrent ask/tell.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from tests.conftest import fresh_database
from workers.storage import open_optuna_storage

PROCESSES = 8
TRIALS_EACH = 12


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database("postgresql", tmp_path) as url:
        yield url


def stand_in_objective(x: float, y: float) -> float:
    return -((x - 0.3) ** 2) - (y - 0.7) ** 2


def work_trials(url: str, worker: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name="shared", storage=open_optuna_storage(url), sampler=optuna.samplers.TPESampler(seed=worker)
    )
    space = {"x": optuna.distributions.FloatDistribution(0, 1), "y": optuna.distributions.FloatDistribution(0, 1)}
    for _ in range(TRIALS_EACH):
        trial = study.ask(space)
        trial.set_user_attr("worker", worker)
        study.tell(trial, stand_in_objective(trial.params["x"], trial.params["y"]))


def test_eight_processes_share_one_study_on_postgresql(postgres_url: str) -> None:
    optuna.create_study(study_name="shared", storage=open_optuna_storage(postgres_url), direction="maximize")
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=work_trials, args=(postgres_url, w)) for w in range(PROCESSES)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(180)
    assert [p.exitcode for p in processes] == [0] * PROCESSES

    storage = optuna.storages.RDBStorage(postgres_url)
    trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    storage.engine.dispose()
    # Every trial asked was told, once, under a number of its own.
    assert len(trials) == PROCESSES * TRIALS_EACH
    assert sorted(t.number for t in trials) == list(range(PROCESSES * TRIALS_EACH))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert all(t.value == stand_in_objective(t.params["x"], t.params["y"]) for t in trials)
    per_worker = [sum(t.user_attrs["worker"] == w for t in trials) for w in range(PROCESSES)]
    assert per_worker == [TRIALS_EACH] * PROCESSES
