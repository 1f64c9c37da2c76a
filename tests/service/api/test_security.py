"""API-key authentication through real HTTP, and `hypevolve serve` refusing to expose an open API."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.cli import is_loopback, main
from tests.conftest import LiveServer, make_settings

KEY = "k3y-for-tests"


@pytest.fixture
def secured(tmp_path: Path, data_root: Path):  # type: ignore[no-untyped-def]
    with LiveServer(make_settings(tmp_path / "home", data_root, API_KEY=KEY)) as client:
        yield client


@pytest.mark.parametrize("path", ["/studies", "/studies/1", "/studies/1/hyp.yaml", "/docs", "/openapi.json"])
def test_every_route_but_healthz_needs_the_key(secured, path: str) -> None:  # type: ignore[no-untyped-def]
    response = secured.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert secured.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert secured.get("/healthz").status_code == 200


def test_bearer_and_x_api_key_both_work(secured) -> None:  # type: ignore[no-untyped-def]
    assert secured.get("/studies", headers={"Authorization": f"Bearer {KEY}"}).json() == []
    assert secured.get("/studies", headers={"X-API-Key": KEY}).json() == []


def test_unauthenticated_post_is_refused_before_anything_is_written(secured, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert secured.post("/studies", json={"dataset": "shapes/data.yaml"}).status_code == 401
    assert secured.get("/studies", headers={"X-API-Key": KEY}).json() == []


def test_serve_refuses_to_listen_beyond_loopback_without_a_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HYPEVOLVE_HOME", str(tmp_path))
    monkeypatch.setenv("HYPEVOLVE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.delenv("HYPEVOLVE_API_KEY", raising=False)
    with pytest.raises(SystemExit, match=r"refusing to listen on 0\.0\.0\.0 without HYPEVOLVE_API_KEY"):
        main(["serve", "--host", "0.0.0.0"])


def test_loopback_hosts() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.0.2.7")


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {KEY}", "X-API-Key": "wrong"}, {"X-API-Key": KEY, "Authorization": "Bearer wrong"}],
    ids=["bearer-right", "x-api-key-right"],
)
def test_two_different_credentials_are_refused_whichever_comes_first(secured, headers: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    response = secured.get("/studies", headers=headers)
    assert response.status_code == 401
    assert "two different API keys" in response.json()["detail"]
    # The same key twice is one credential.
    assert secured.get("/studies", headers={"Authorization": f"Bearer {KEY}", "X-API-Key": KEY}).status_code == 200
