"""API-key authentication: with HYPEVOLVE_API_KEY set, every route but /healthz needs the key."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS: frozenset[str] = frozenset({"/healthz"})


def supplied_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key a request carries: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    for name, value in headers:
        if name == b"x-api-key":
            return value.decode("latin-1")
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
    return None


class APIKeyMiddleware:
    """Answers 401 to any request without the right key (the docs and the schema included), so no
    route can be forgotten; compares in constant time."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        key = supplied_key(scope["headers"])
        if key is None or not secrets.compare_digest(key.encode(), self._key):
            detail = "missing or wrong API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            response = JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
