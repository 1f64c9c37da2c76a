"""The one place service errors become HTTP status codes."""

from __future__ import annotations

import math
from typing import Any

import optuna
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from service.errors import Conflict, HypevolveError, InvalidRequest, NotReady, StudyNotFound
from workers.db_retry import first_line, is_transient_db_error

_STATUS: dict[type[HypevolveError], int] = {
    InvalidRequest: 422,
    StudyNotFound: 404,
    NotReady: 404,
    Conflict: 409,
}


def json_safe(value: Any) -> Any:
    """``value`` as JSON can carry it: a refused value is echoed back, and NaN, infinities, raw bytes
    (a body sent as text/plain) or a lone UTF-16 surrogate (JSON's "\\ud800", which no UTF-8 text
    holds) would otherwise turn a 422 into a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value[:1000]).decode("utf-8", "replace")
    if isinstance(value, str):
        return text_safe(value)
    if isinstance(value, dict):
        return {text_safe(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, int | float):
        return value
    return text_safe(repr(value))


def text_safe(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (lone surrogates) written as escapes: ``\\ud800``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _field_name(loc: tuple[Any, ...]) -> str:
    # ("body", "epochs") -> "epochs"; the "body" prefix says nothing a client does not know.
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
    body: dict[str, Any] = {"detail": text_safe(str(exc))}
    if isinstance(exc, InvalidRequest):
        field, reason = text_safe(exc.field), text_safe(exc.reason)
        body["errors"] = [{"field": field, "value": json_safe(exc.value), "message": reason}]
    return JSONResponse(body, status_code=status)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        field = text_safe(_field_name(tuple(error.get("loc", ()))))
        message = text_safe(str(error.get("msg", "invalid")).removeprefix("Value error, "))
        value = json_safe(error.get("input")) if error.get("type") != "missing" else None
        errors.append({"field": field, "value": value, "message": message})
    detail = "; ".join(
        f"{e['field']}: {e['message']}" + (f" (got {e['value']!r})" if e["value"] is not None else "") for e in errors
    )
    return JSONResponse({"detail": detail, "errors": errors}, status_code=422)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this request's path, found by asking the routes whether they
    would take the request with that method. Starlette's own 405 names only the methods of the first
    route that matched the path, not those of its siblings on the same path."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    if exc.status_code == 400:
        # FastAPI's answer to a body it could not parse at all (bytes that are not UTF-8, JSON nested
        # deeper than Python's parser goes): a malformed body like any other, so a 422 naming it.
        message = "is not valid JSON (undecodable bytes, or nested too deep)"
        return JSONResponse(
            {"detail": f"body: {message}", "errors": [{"field": "body", "value": None, "message": message}]},
            status_code=422,
        )
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    if not is_transient_db_error(exc):
        raise exc  # a real bug: the server error it is
    return JSONResponse(
        {"detail": f"the database is unreachable, try again shortly ({first_line(exc)[:300]})"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HypevolveError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    # A database restarting under a request: 503, and the client tries again (not a 500).
    app.add_exception_handler(sqlalchemy.exc.SQLAlchemyError, _database_error)
    app.add_exception_handler(optuna.exceptions.StorageInternalError, _database_error)
