"""docker-compose.yml against the code: settings it sets exist, builds exist, and only the documented
ports are published (on loopback). Read from the file, in a second; tests/scenarios/test_compose_deployment.py
runs the deployment itself."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.cli import build_parser
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
SERVICES_CPU: dict[str, dict[str, Any]] = yaml.safe_load((ROOT / "docker-compose.cpu.yml").read_text())["services"]

# What each service may publish on the host; README's "Run on a cluster" documents the same.
DOCUMENTED_PORTS = {"api": ["127.0.0.1:8000:8000"], "dashboard": ["127.0.0.1:8080:8080"]}
# Variables read by the software in our image other than our settings: Ray's token authentication.
OTHER_VARIABLES = {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}


def test_the_services_are_the_documented_ones() -> None:
    assert set(SERVICES) == {"postgres", "ray-head", "ray-worker", "api", "dashboard"}


@pytest.mark.parametrize("name", [s for s in SERVICES if s != "postgres"])
def test_environment_names_are_settings_the_code_reads(name: str) -> None:
    variables = set(SERVICES[name].get("environment", {}))
    ours = {v.removeprefix("HYPEVOLVE_") for v in variables if v.startswith("HYPEVOLVE_")}
    assert ours <= set(Settings.model_fields)
    assert variables - {f"HYPEVOLVE_{v}" for v in ours} <= OTHER_VARIABLES


@pytest.mark.parametrize("name", [s for s in SERVICES if "build" in SERVICES[s]])
def test_build_contexts_exist_with_their_dockerfile(name: str) -> None:
    context = ROOT / SERVICES[name]["build"]["context"]
    assert (context / "Dockerfile").is_file()
    for line in (context / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (context / source).exists(), source


def test_only_the_documented_ports_are_published_and_on_loopback() -> None:
    published = {name: spec["ports"] for name, spec in SERVICES.items() if "ports" in spec}
    assert published == DOCUMENTED_PORTS
    readme = (ROOT / "README.md").read_text()
    for ports in published.values():
        for port in ports:
            assert port.startswith("127.0.0.1:")
            assert f"127.0.0.1:{port.split(':')[1]}" in readme


def test_ray_dashboard_stays_on_loopback_and_workers_reserve_a_gpu() -> None:
    assert "--dashboard-host=127.0.0.1" in SERVICES["ray-head"]["command"]
    devices = SERVICES["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert SERVICES["api"]["environment"]["HYPEVOLVE_RAY_ADDRESS"] == "ray-head:6379"


def test_every_node_sees_data_weights_and_artifacts_at_the_same_paths() -> None:
    mounts = {"./data:/data:ro", "./weights:/weights:ro", "artifacts:/artifacts"}
    for volumes in (
        SERVICES["ray-worker"]["volumes"],
        SERVICES["api"]["volumes"],
        SERVICES_CPU["ray-cpu-worker"]["volumes"],
    ):
        assert mounts <= set(volumes)
    for name in ("api", "dashboard"):
        assert SERVICES[name]["environment"]["HYPEVOLVE_DATA_ROOT"] == "/data"
    assert SERVICES["api"]["environment"]["HYPEVOLVE_WEIGHTS_DIR"] == "/weights"


def test_commands_are_real_cli_commands() -> None:
    parser = build_parser()
    for name in ("api", "dashboard"):
        command = SERVICES[name]["command"]
        if command[:2] == ["sh", "-c"]:  # the API keeps a Ray node of its own, then execs itself
            command = command[2].rsplit("exec ", 1)[1].split()
        assert command[0] == "hypevolve"
        parser.parse_args(command[1:])


def test_ray_nodes_start_again_when_ray_ends_them() -> None:
    """Ray ends a node whose head went away: its container restarts, and the API's loop starts its
    own node again (the deployment test restarts the head for real)."""
    for name in ("postgres", "ray-head", "ray-worker", "api", "dashboard"):
        assert SERVICES[name]["restart"] == "unless-stopped", name
    assert SERVICES_CPU["ray-cpu-worker"]["restart"] == "unless-stopped"
    loop = SERVICES["api"]["command"][2]
    assert re.search(r"while true; do ray start --address=ray-head:6379 [^;]*--block;", loop), loop


def test_compose_requires_a_ray_token_instead_of_defaulting_one() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert re.search(r"RAY_AUTH_TOKEN: \$\{RAY_AUTH_TOKEN:\?", text)
