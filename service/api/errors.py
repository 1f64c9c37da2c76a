"""The one place service errors become HTTP status codes."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.errors import Conflict, HypevolveError, InvalidRequest, NotReady, StudyNotFound

_STATUS: dict[type[HypevolveError], int] = {
    InvalidRequest: 422,
    StudyNotFound: 404,
    NotReady: 404,
    Conflict: 409,
}


def json_safe(value: Any) -> Any:
    """``value`` as JSON can carry it: a refused value is echoed back, and NaN, infinities or raw
    bytes (a body sent as text/plain) would otherwise turn a 422 into a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value[:1000]).decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float):
        return value
    return repr(value)


def _field_name(loc: tuple[Any, ...]) -> str:
    # ("body", "epochs") -> "epochs"; the "body" prefix says nothing a client does not know.
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
    body: dict[str, Any] = {"detail": str(exc)}
    if isinstance(exc, InvalidRequest):
        body["errors"] = [{"field": exc.field, "value": json_safe(exc.value), "message": exc.reason}]
    return JSONResponse(body, status_code=status)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        field = _field_name(tuple(error.get("loc", ())))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        value = json_safe(error.get("input")) if error.get("type") != "missing" else None
        errors.append({"field": field, "value": value, "message": message})
    detail = "; ".join(
        f"{e['field']}: {e['message']}" + (f" (got {e['value']!r})" if e["value"] is not None else "") for e in errors
    )
    return JSONResponse({"detail": detail, "errors": errors}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HypevolveError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
