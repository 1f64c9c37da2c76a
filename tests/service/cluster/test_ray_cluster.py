"""The service joined to a real two-node Ray cluster on this machine (`ray start --head`, then a
second node with `ray start --address`), with Ray's token authentication on."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.helpers import (
    assert_only_interruptions,
    run_to_end,
    run_to_end_polled,
    start_server,
    stop_server,
    wait_for,
    wait_for_training,
)

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).parent / "ray")


def _start_node(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # --block keeps the command in the foreground; its own session lets the test end exactly this
    # node's processes (`ray stop` would end every Ray on the machine).
    command = [RAY, "start", *args, "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats", "--block"]
    return subprocess.Popen(
        command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )


def _stop_node(process: subprocess.Popen[bytes]) -> None:
    # SIGKILL to the node's own process group: `ray start --block` took its 30 s to stop on SIGTERM.
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


class Cluster:
    """A head and a second node on this machine, each `ray start --block` in its own session."""

    def __init__(self) -> None:
        self.port = free_port()
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.head: subprocess.Popen[bytes] | None = None
        self.node: subprocess.Popen[bytes] | None = None

    def _status(self) -> str:
        status = [RAY, "status", f"--address=127.0.0.1:{self.port}"]
        answer = subprocess.run(status, env=self.env, capture_output=True, text=True)
        return answer.stdout if answer.returncode == 0 else ""

    def start(self) -> None:
        """Start the head, then the second node, and wait until both are in the cluster."""
        head = self.head = _start_node(["--head", f"--port={self.port}", "--include-dashboard=false"], self.env)

        def head_up() -> bool:
            assert head.poll() is None, "the head node exited"
            return bool(self._status())

        wait_for(head_up, 60, "the Ray head")
        self.node = _start_node([f"--address=127.0.0.1:{self.port}"], self.env)
        wait_for(lambda: self._status().count(" node_") >= 2, 60, "the second Ray node")

    def stop(self) -> None:
        """SIGKILL both nodes, the head first."""
        for process in (self.head, self.node):
            if process is not None and process.poll() is None:
                _stop_node(process)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def server(
    cluster: Cluster, small_shapes_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    home = tmp_path_factory.mktemp("home")
    env = {**cluster.env, "HYPEVOLVE_RAY_ADDRESS": f"127.0.0.1:{cluster.port}"}
    process, client = start_server(home, small_shapes_root, f"sqlite:///{home / 'hypevolve.db'}", env)
    yield client
    stop_server(process, client)


def test_trials_run_on_both_nodes_of_the_cluster(server: httpx.Client) -> None:
    request = {
        "dataset": "shapes/data.yaml",
        "epochs": 2,
        "imgsz": 64,
        "n_trials": 4,
        "parallel": 2,
        "confirm_top_k": 0,
        "diagnostics": False,
    }
    created = server.post("/studies", json=request)
    assert created.status_code == 201, created.text
    study = run_to_end(server, created.json()["id"])
    assert study["state"] == "completed", study
    trials = server.get(f"/studies/{study['id']}/trials").json()
    assert [t["state"] for t in trials] == ["complete"] * 4
    # One CPU per node and two trials at once: the cluster had to use both nodes.
    assert len({t["node_id"] for t in trials}) == 2
    assert all(t["device"] == "cpu" for t in trials)


def test_a_head_that_goes_down_and_comes_back_is_joined_again(server: httpx.Client, cluster: Cluster) -> None:
    request = {"dataset": "shapes/data.yaml", "epochs": 4, "imgsz": 64, "n_trials": 3, "parallel": 2}
    study_id = server.post("/studies", json={**request, "confirm_top_k": 0, "diagnostics": False}).json()["id"]
    wait_for_training(server, study_id)
    # SIGKILL every process of the head node (its GCS, raylet and workers). Without its head the
    # second node cannot stay in the cluster: stop it as well, and start both again on the same
    # port and token (as a supervisor of the cluster would).
    cluster.stop()
    statuses: set[int] = set()

    def waiting_for_ray() -> bool:
        answer = server.get(f"/studies/{study_id}")
        statuses.add(answer.status_code)
        return bool(answer.json()["waiting"])

    wait_for(waiting_for_ray, 120, "the study to wait for Ray")
    cluster.start()

    study = run_to_end_polled(server, study_id, statuses)
    # The API answered all along (Ray's driver used to end the service with its head), and the
    # study ended with its full count: what the head's loss interrupted ran again, counted once.
    assert statuses == {200}
    assert_only_interruptions(server, study, 3)
    assert server.get("/healthz").json()["ray"].startswith("connected: ")


def test_with_ray_unreachable_stop_delete_and_shutdown_answer_at_once(
    cluster: Cluster, small_shapes_root: Path, tmp_path: Path
) -> None:
    # A service pointed at the cluster while the cluster is down: its runners block on a Ray that does
    # not answer (joining takes up to three minutes to give up).
    cluster.stop()
    env = {**cluster.env, "HYPEVOLVE_RAY_ADDRESS": f"127.0.0.1:{cluster.port}"}
    process, server = start_server(tmp_path, small_shapes_root, f"sqlite:///{tmp_path / 'hypevolve.db'}", env)
    request = {"dataset": "shapes/data.yaml", "epochs": 1, "imgsz": 64, "n_trials": 2, "confirm_top_k": 0}
    try:
        stopped, deleted, left = (server.post("/studies", json=request).json()["id"] for _ in range(3))
        time.sleep(2.0)  # their runners are trying to reach Ray

        started = time.monotonic()
        answer = server.post(f"/studies/{stopped}/stop")
        assert time.monotonic() - started < 10.0
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "stopped"  # taken effect, not "queued"
        assert server.get(f"/studies/{stopped}").json()["state"] == "stopped"

        started = time.monotonic()
        assert server.delete(f"/studies/{deleted}").status_code == 204
        assert time.monotonic() - started < 10.0
        assert server.get(f"/studies/{deleted}").status_code == 404

        time.sleep(3.0)  # a detached runner that wrote when its call returned would show by now
        assert server.get(f"/studies/{stopped}").json()["state"] == "stopped"
        assert server.get(f"/studies/{left}").json()["state"] in ("queued", "running")

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        assert time.monotonic() - started < 15.0
    finally:
        stop_server(process, server)
