"""Routes under /studies: each validates through its schema, makes one controller call, returns."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from service.schemas import StudyOut, StudyRequest, TrialOut
from service.studies.controller import StudyController


def get_controller(request: Request) -> StudyController:
    controller: StudyController = request.app.state.controller
    return controller


Controller = Annotated[StudyController, Depends(get_controller)]
router = APIRouter(prefix="/studies", tags=["studies"])


@router.post("", status_code=201, response_model=StudyOut)
def create_study(body: StudyRequest, controller: Controller) -> StudyOut:
    """Start a study: trial 0 is the seed hyp file, the sampler proposes the rest."""
    return controller.create_study(body)


@router.get("", response_model=list[StudyOut])
def list_studies(controller: Controller) -> list[StudyOut]:
    return controller.list_studies()


@router.get("/{study_id}", response_model=StudyOut)
def get_study(study_id: int, controller: Controller) -> StudyOut:
    return controller.get_study(study_id)


@router.get("/{study_id}/trials", response_model=list[TrialOut])
def list_trials(study_id: int, controller: Controller) -> list[TrialOut]:
    return controller.trials(study_id)


@router.get(
    "/{study_id}/hyp.yaml",
    response_class=PlainTextResponse,
    responses={200: {"content": {"application/x-yaml": {}}}, 404: {"description": "No completed trial yet."}},
)
def download_hyp_yaml(study_id: int, controller: Controller) -> PlainTextResponse:
    """The best hyperparameters as a YOLOv5 hyp file (all 28 keys, YOLOv5's order)."""
    text, name = controller.hyp_yaml(study_id)
    headers = {"Content-Disposition": f'attachment; filename="hyp.{name}.yaml"'}
    return PlainTextResponse(text, media_type="application/x-yaml", headers=headers)


@router.post("/{study_id}/stop", response_model=StudyOut)
def stop_study(study_id: int, controller: Controller) -> StudyOut:
    """Start no new trials, cancel running ones; the study ends ``stopped``."""
    return controller.stop_study(study_id)
