"""The service joined to a real two-node Ray cluster on this machine (`ray start --head`, then a
second node with `ray start --address`), with Ray's token authentication on."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.helpers import run_to_end, start_server, stop_server, wait_for

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
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.fixture(scope="module")
def cluster_env() -> Iterator[dict[str, str]]:
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    head = _start_node(["--head", f"--port={port}", "--include-dashboard=false"], env)
    nodes = [head]
    try:
        status = [RAY, "status", f"--address=127.0.0.1:{port}"]

        def head_up() -> bool:
            assert head.poll() is None, "the head node exited"
            return subprocess.run(status, env=env, capture_output=True).returncode == 0

        wait_for(head_up, 60, "the Ray head")
        nodes.append(_start_node([f"--address=127.0.0.1:{port}"], env))

        def two_nodes() -> bool:
            out = subprocess.run(status, env=env, capture_output=True, text=True).stdout
            return out.count(" node_") >= 2

        wait_for(two_nodes, 60, "the second Ray node")
        yield {**env, "HYPEVOLVE_RAY_ADDRESS": f"127.0.0.1:{port}"}
    finally:
        for node in reversed(nodes):
            _stop_node(node)


@pytest.fixture(scope="module")
def server(
    cluster_env: dict[str, str], small_shapes_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    home = tmp_path_factory.mktemp("home")
    process, client = start_server(home, small_shapes_root, f"sqlite:///{home / 'hypevolve.db'}", cluster_env)
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
