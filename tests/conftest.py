"""Shared fixtures: the sample data set (written once), settings on temporary folders, a live API."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

from service.api.app import create_app
from service.data.sample import write_sample_dataset
from service.settings import Settings
from tests.helpers import free_port, start_server, stop_server

os.environ.setdefault("YOLO_OFFLINE", "1")


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding the sample data set at shapes/ (read-only by convention: copy to change)."""
    root = tmp_path_factory.mktemp("data")
    write_sample_dataset(root / "shapes")
    return root


@pytest.fixture(scope="session")
def small_shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample data set at a quarter of its training images, at shapes/: for tests of the service's
    mechanics (scheduling, failures, exports), whose trainings are real but need not learn much.
    Tests that depend on how well a training learns use shapes_root."""
    root = tmp_path_factory.mktemp("small-data")
    write_sample_dataset(root / "shapes", n_train=128, n_val=32)
    return root


BACKENDS = ("sqlite", "postgresql")


@contextmanager
def fresh_database(backend: str, folder: Path) -> Iterator[str]:
    """A new, empty database of ``backend``: a SQLite file in ``folder``, or a database of its own on
    the PostgreSQL server at TEST_DATABASE_URL (dropped afterwards), as Optuna's own tests do."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'hypevolve.db'}"
        return
    admin_url = os.environ.get("TEST_DATABASE_URL")
    if not admin_url:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL cases: .ci/run exports TEST_DATABASE_URL")
        pytest.skip("PostgreSQL cases need TEST_DATABASE_URL (bash scripts/start_postgres.sh prints one)")
    name = f"hv_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            drop_database(admin, name)
        finally:
            admin.dispose()


def drop_database(admin: Engine, name: str, attempts: int = 20) -> None:
    """DROP ... WITH (FORCE) ends the sessions still on the database, but fails while it cannot end one
    (an autovacuum worker, where the role lacks pg_signal_backend): such a session is short, so retry."""
    for attempt in range(attempts):
        try:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that takes it runs once on SQLite and once on PostgreSQL."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """An empty data root of this test's own."""
    root = tmp_path / "data"
    root.mkdir()
    return root


def make_settings(home: Path, data_root: Path, **overrides: object) -> Settings:
    return Settings(HOME=home, DATA_ROOT=data_root, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, data_root: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "home", data_root, DATABASE_URL=database_url)


class LiveServer:
    """The real app behind a real uvicorn on a loopback port, in a thread of the test process."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.05)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def api(settings: Settings) -> Iterator[httpx.Client]:
    """An HTTP client for a live API on ``settings`` (no study runs, so Ray is never started)."""
    with LiveServer(settings) as client:
        yield client


def copy_dataset(source_root: Path, target_root: Path, name: str = "shapes") -> Path:
    """Copy a data set between data roots; returns the new data.yaml."""
    shutil.copytree(source_root / name, target_root / name)
    return target_root / name / "data.yaml"


@pytest.fixture(scope="module")
def sqlite_server(small_shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A real `hypevolve serve` process on a SQLite file, with its own local Ray, once per test module,
    serving the small sample data set."""
    home = tmp_path_factory.mktemp("home")
    process, client = start_server(home, small_shapes_root, f"sqlite:///{home / 'hypevolve.db'}")
    yield client
    stop_server(process, client)


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the process with pytest's own status once every result, the summary and the unraisable-
    exception checks are done. The test process has loaded torch, ultralytics and Ray (in-process
    trainings, local Ray runtimes), and a CI-like run once crashed with SIGSEGV in the interpreter's
    final teardown, after its summary: that crash is not a test result and must not replace one."""
    if _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])
