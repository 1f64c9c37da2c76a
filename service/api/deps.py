"""Everything a route may ask for, declared once: the controller, the settings, a study id, and the
error answers the routes share. Routes import them from here, never from a sibling route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from service.schemas import ErrorOut
from service.settings import Settings
from service.studies.controller import StudyController
from service.studies.views import StudyViews


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
