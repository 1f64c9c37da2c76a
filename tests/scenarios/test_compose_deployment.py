"""The docker-compose deployment for real: a Docker daemon of the test's own, base images made from
Debian's packages (scripts/local_images.sh: no registry is reachable here), the image built from
the Dockerfile with a local wheelhouse, then docker-compose.yml with the CPU override and two
workers: a study through the API with its key, fine-tuned from weights in the mounted ./weights,
completes with trials on both worker containers,
hyp.yaml downloads, the dashboard answers; after the Ray head restarts, every node joins the new
head; a worker container killed mid-study costs one trial, retried on the other.

Needs root, dockerd, docker-compose and debootstrap (.ci/run installs them): skipped with the
reason where they are missing, failed in CI. Everything it starts (the daemon, its containers,
networks and volumes) it stops and removes. Its images and the wheelhouse they are built from are
kept in a data root of its own (CACHE), so that the next run on the same machine rebuilds only
what changed: torch's layer (most of the time) and the dependencies' are made once. A fresh
machine builds them all; removing CACHE does the same here.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from ultralytics import YOLO

from service.data.sample import write_sample_dataset
from tests.helpers import run_to_end, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "hypevolve-compose-test"
IMAGE = "hypevolve-compose-test:latest"
BASE_IMAGES = ("hypevolve-local/python:3.11", "hypevolve-local/postgres:15")
# Debian's CLI (docker.io) before any other: it matches the daemon .ci/run installs.
DOCKER = shutil.which("docker", path="/usr/bin") or shutil.which("docker") or "docker"
TOOLS = ("dockerd", "docker-compose", "debootstrap")
CACHE = Path("/var/cache/hypevolve-compose-test")
# The wheelhouse's URL is part of a build argument, and so of Docker's cache key: a fixed port keeps
# the cached layers usable from one run to the next (another port only costs a rebuild).
WHEELHOUSE_PORT = 47865


def _require_docker() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    why = f"missing {', '.join(missing)}" if missing else ("not root" if os.geteuid() != 0 else "")
    if why:
        message = f"the compose deployment test needs Docker ({why}); .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _run(command: list[str], env: dict[str, str], timeout: float, what: str) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def docker_env() -> Iterator[dict[str, str]]:
    """A dockerd on its own socket and exec root (short paths: socket names are limited), its data
    root kept in CACHE."""
    _require_docker()
    folder = Path(tempfile.mkdtemp(prefix="hv-docker-", dir="/tmp"))
    socket = folder / "docker.sock"
    log = (folder / "dockerd.log").open("wb")
    command = [
        "dockerd",
        f"--host=unix://{socket}",
        f"--data-root={CACHE / 'docker'}",
        f"--exec-root={folder / 'exec'}",
        f"--pidfile={folder / 'dockerd.pid'}",
    ]
    bridge_before = Path("/sys/class/net/docker0").exists()
    daemon = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    env = {**os.environ, "DOCKER_HOST": f"unix://{socket}", "DOCKER": DOCKER}
    try:

        def up() -> bool:
            assert daemon.poll() is None, (folder / "dockerd.log").read_text()[-3000:]
            return subprocess.run([DOCKER, "info"], env=env, capture_output=True).returncode == 0

        wait_for(up, 60, "dockerd")
        yield env
        # Images this run replaced (an older build of ours): untagged now, never used again.
        subprocess.run([DOCKER, "image", "prune", "-f"], env=env, capture_output=True, timeout=300)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(10)
        log.close()
        _unmount_under(folder)
        if not bridge_before:  # the default bridge dockerd made, which it leaves behind
            subprocess.run(["ip", "link", "delete", "docker0"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _unmount_under(folder: Path) -> None:
    """What dockerd left mounted in its folders (its network namespace file), deepest first."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{folder}/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)


@contextlib.contextmanager
def _serving(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on loopback (a wheelhouse pip reads with --find-links), on
    WHEELHOUSE_PORT where it is free."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", WHEELHOUSE_PORT), handler)
    except OSError:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def image(docker_env: dict[str, str]) -> str:
    """The base images, then the Dockerfile built on them from a wheelhouse of this machine's
    packages (the Dockerfile's own torch build), installed with --no-index over loopback. Both the
    wheelhouse and the layers are kept in CACHE: pip downloads only what is not there yet, Docker
    rebuilds only the layers whose inputs changed."""
    started = time.monotonic()
    _run(["bash", str(ROOT / "scripts" / "local_images.sh")], docker_env, 900, "scripts/local_images.sh")
    torch = re.search(r'^ARG TORCH="([^"]+)"', (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert torch is not None, "the Dockerfile's TORCH argument"
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for old in wheels.glob("hypevolve-*"):  # our own package: built anew from this tree
        old.unlink()
    download = [sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels), *torch.group(1).split()]
    _run([*download, "setuptools>=77", "wheel", str(ROOT)], docker_env, 900, "pip download")
    with _serving(wheels) as url:
        build = [DOCKER, "build", "-q", "--network=host", "-t", IMAGE, f"--build-arg=BASE_IMAGE={BASE_IMAGES[0]}"]
        _run([*build, f"--build-arg=PIP_OPTIONS=--no-index --find-links {url}", str(ROOT)], docker_env, 1800, "build")
    print(f"images built in {time.monotonic() - started:.0f}s")
    return IMAGE


class Deployment:
    """docker-compose.yml + docker-compose.cpu.yml (+ one CPU per worker, so that two trials need
    both workers), run as project PROJECT in ``folder`` (its ./data)."""

    def __init__(self, folder: Path, docker_env: dict[str, str], image: str) -> None:
        self.folder = folder
        self.key = secrets.token_hex(16)
        self.env = {
            **docker_env,
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "HYPEVOLVE_API_KEY": self.key,
            "HYPEVOLVE_IMAGE": image,
            "POSTGRES_IMAGE": BASE_IMAGES[1],
        }
        worker = SERVICES_CPU["ray-cpu-worker"]["command"]
        one_cpu = [worker[0], worker[1], worker[2], "--num-cpus=1", *worker[3:]]
        (folder / "test.yml").write_text(yaml.safe_dump({"services": {"ray-cpu-worker": {"command": one_cpu}}}))

    def compose(self, *args: str, timeout: float = 600) -> str:
        files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "docker-compose.cpu.yml")]
        command = ["docker-compose", "-p", PROJECT, "--project-directory", str(self.folder), *files]
        return _run([*command, "-f", str(self.folder / "test.yml"), *args], self.env, timeout, f"compose {args[0]}")

    def containers(self, service: str) -> dict[str, str]:
        """Host name (what a trial records as its node) -> container id, for ``service``'s containers."""
        ids = self.compose("ps", "-q", service).split()
        return {container[:12]: container for container in ids}

    def logs(self) -> str:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            return self.compose("logs", "--no-color", "--tail=60", timeout=60)
        return ""


SERVICES_CPU: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.cpu.yml").read_text())["services"]


@pytest.fixture(scope="module")
def deployment(
    docker_env: dict[str, str], image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Deployment, httpx.Client]]:
    folder = tmp_path_factory.mktemp("compose")
    write_sample_dataset(folder / "data" / "shapes", n_train=64, n_val=16)
    # The operator's weights folder (./weights, mounted read-only on every node), with a checkpoint.
    (folder / "weights").mkdir()
    YOLO("yolov5n.yaml").save(folder / "weights" / "coco-n.pt")
    deployment = Deployment(folder, docker_env, image)
    started = time.monotonic()
    try:
        deployment.compose("up", "-d", "--no-build", "--scale", "ray-cpu-worker=2", timeout=900)
        client = httpx.Client(base_url="http://127.0.0.1:8000", timeout=30, headers={"X-API-Key": deployment.key})

        def healthy() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return client.get("/healthz").status_code == 200
            return False

        wait_for(healthy, 300, "the API container")
        print(f"deployment up in {time.monotonic() - started:.0f}s")
        yield deployment, client
        client.close()
    except BaseException:
        print(deployment.logs())
        raise
    finally:
        deployment.compose("down", "-v", "--remove-orphans", timeout=300)


STUDY = {
    "dataset": "shapes/data.yaml",
    "imgsz": 64,
    "batch": 16,
    "parallel": 2,
    "confirm_top_k": 0,
    "diagnostics": False,
}


def test_a_study_runs_through_the_deployment_on_both_workers(deployment: tuple[Deployment, httpx.Client]) -> None:
    compose, client = deployment
    workers = compose.containers("ray-cpu-worker")
    assert len(workers) == 2
    # The key is required: without it, nothing but /healthz.
    assert httpx.get("http://127.0.0.1:8000/studies", timeout=30).status_code == 401
    # Fine-tuned from the weights in ./weights: the API and both workers find them at /weights.
    assert [w["name"] for w in client.get("/models").json()["weights"]] == ["coco-n.pt"]
    created = client.post("/studies", json={**STUDY, "model": "coco-n.pt", "epochs": 2, "n_trials": 4})
    assert created.status_code == 201, created.text
    study = run_to_end(client, created.json()["id"])
    assert study["state"] == "completed", (study, compose.logs())
    trials = client.get(f"/studies/{study['id']}/trials").json()
    assert [t["state"] for t in trials] == ["complete"] * 4
    # One CPU per worker and two trials at once: both worker containers trained.
    assert {t["node"] for t in trials} == set(workers)
    hyp = client.get(f"/studies/{study['id']}/hyp.yaml")
    assert hyp.status_code == 200
    assert "fine-tuned from the weights coco-n.pt" in hyp.text
    assert set(yaml.safe_load(hyp.text)) >= {"lr0", "lrf", "momentum", "mosaic"}
    assert client.get("/healthz").json()["database"] == "ok"
    assert httpx.get("http://127.0.0.1:8080/", timeout=30, follow_redirects=True).status_code == 200


def test_after_the_ray_head_restarts_every_node_joins_again(deployment: tuple[Deployment, httpx.Client]) -> None:
    """Ray ends a node whose head is gone (after its 60 s GCS reconnect timeout): the worker
    containers restart (`restart: unless-stopped`) and the API container's loop starts its own
    node again, so a study started once the old nodes are gone trains on both workers."""
    compose, client = deployment
    workers = compose.containers("ray-cpu-worker")
    (head,) = compose.containers("ray-head").values()

    def restarts() -> dict[str, tuple[str, int]]:
        out = _run(
            [DOCKER, "inspect", "-f", "{{.State.Status}} {{.RestartCount}}", *workers.values()],
            compose.env,
            60,
            "inspect",
        )
        return {
            name: (line.split()[0], int(line.split()[1])) for name, line in zip(workers, out.splitlines(), strict=True)
        }

    before = restarts()
    _run([DOCKER, "restart", head], compose.env, 120, "docker restart")

    def old_nodes_gone() -> bool:
        return all(state != "running" or count > before[name][1] for name, (state, count) in restarts().items())

    wait_for(old_nodes_gone, 240, "the worker nodes of the old head to end")
    created = client.post("/studies", json={**STUDY, "epochs": 1, "n_trials": 2})
    assert created.status_code == 201, created.text
    study = run_to_end(client, created.json()["id"], timeout=300)
    assert study["state"] == "completed", (study, restarts(), compose.logs())
    trials = client.get(f"/studies/{study['id']}/trials").json()
    assert [t["state"] for t in trials] == ["complete"] * 2
    assert {t["node"] for t in trials} == set(workers)


def test_a_killed_worker_container_costs_one_trial_retried_on_the_other(
    deployment: tuple[Deployment, httpx.Client],
) -> None:
    compose, client = deployment
    workers = compose.containers("ray-cpu-worker")
    study_id = client.post("/studies", json={**STUDY, "epochs": 20, "n_trials": 2}).json()["id"]

    def training() -> dict[str, Any] | None:
        trials = client.get(f"/studies/{study_id}/trials").json()
        return next((t for t in trials if t["state"] == "running" and t["epochs"] and t["node"]), None)

    victim = wait_for(training, 300, "a trial to train")
    _run([DOCKER, "kill", workers[victim["node"]]], compose.env, 60, "docker kill")

    study = run_to_end(client, study_id)
    assert study["state"] == "completed", (study, compose.logs())
    trials = client.get(f"/studies/{study_id}/trials").json()
    lost = next(t for t in trials if t["number"] == victim["number"])
    assert lost["state"] == "fail"
    assert lost["error"].startswith("worker lost: "), lost
    retry = next(t for t in trials if t["retry_of"] == victim["number"])
    # Retried, with the same params, on the worker still standing.
    assert retry["state"] == "complete"
    assert retry["params"] == lost["params"]
    assert retry["node"] != victim["node"]
    assert study["counts"] == {"running": 0, "waiting": 0, "complete": 2, "pruned": 0, "fail": 1}
