"""API-key authentication: with HYPEVOLVE_API_KEY set, every route but /healthz needs the key."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS: frozenset[str] = frozenset({"/healthz"})


def supplied_keys(headers: Iterable[tuple[bytes, bytes]]) -> set[str]:
    """Every key a request carries: ``Authorization: Bearer <key>`` and ``X-API-Key: <key>`` headers
    (whitespace around a header value is HTTP's, not the key's)."""
    keys = set()
    for name, value in headers:
        if name == b"x-api-key":
            keys.add(value.decode("latin-1").strip())
        elif name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                keys.add(token.strip())
    return keys


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
        keys = supplied_keys(scope["headers"])
        # Two different credentials in one request: which one was meant is a guess, and the first
        # header must not win over a wrong second (or the other way round).
        key = keys.pop() if len(keys) == 1 else None
        if key is None or not secrets.compare_digest(key.encode(), self._key):
            detail = "missing or wrong API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            if len(keys) > 0:
                detail = "two different API keys in one request (Authorization and X-API-Key): send one"
            response = JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
