"""Everything a route may ask for, declared once: the controller, the settings, a study id, and the
error answers the routes share. Routes import them from here, never from a sibling route."""

from __future__ import annotations

import codecs
from email.message import Message
from typing import Annotated

from fastapi import Depends, Path, Request

from service.errors import InvalidRequest
from service.schemas import ErrorOut
from service.settings import Settings
from service.studies.controller import StudyController
from service.studies.views import StudyViews


async def json_body(request: Request) -> None:
    """A JSON request body as RFC 8259 has it: sent as ``application/json`` (with ``charset=utf-8``
    if any charset) and UTF-8 without a byte-order mark. JSON readers accept more (UTF-16 and -32,
    any ``+json`` type): one rule, said once, instead of bodies that work by accident."""
    content_type = request.headers.get("content-type", "")
    header = Message()
    header["content-type"] = content_type
    if header.get_content_type() != "application/json" or (header.get_content_charset() or "utf-8") != "utf-8":
        raise InvalidRequest("content-type", content_type, "must be application/json (UTF-8)")
    body = await request.body()
    if body.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InvalidRequest("body", "byte-order mark", "must be UTF-8 JSON without a byte-order mark")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("body", "undecodable bytes", "must be UTF-8 JSON") from None


def get_controller(request: Request) -> StudyController:
    controller: StudyController = request.app.state.controller
    return controller


def get_views(request: Request) -> StudyViews:
    return get_controller(request).views


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Controller = Annotated[StudyController, Depends(get_controller)]
Views = Annotated[StudyViews, Depends(get_views)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
# Ids are SQL integers: anything larger is refused here rather than overflowing the database driver.
StudyId = Annotated[int, Path(ge=1, le=2**31 - 1)]
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorOut, "description": description}
    for code, description in [
        (404, "No such study, or nothing to give yet."),
        (409, "Clashes with the study's state or a taken name."),
        (413, "Request body too large."),
        (422, "A field has a value the service will not act on."),
        (503, "The database is unreachable for the moment (a restart): try again."),
    ]
}
