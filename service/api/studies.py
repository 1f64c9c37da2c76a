"""Routes under /studies: each validates through its schema, makes one controller call, returns."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response

from service.api.deps import ERRORS, Controller, StudyId, Views, json_body
from service.schemas import ArtifactOut, ImportOut, StudyOut, StudyRequest, TrialOut
from service.studies.views import ARTIFACT_TYPES

ARTIFACT_MEDIA = sorted(set(ARTIFACT_TYPES.values()))


router = APIRouter(prefix="/studies", tags=["studies"], responses=ERRORS)


@router.post("", status_code=201, response_model=StudyOut, dependencies=[Depends(json_body)])
def create_study(body: StudyRequest, controller: Controller) -> StudyOut:
    """Start a study: trial 0 is the seed hyp file, the sampler proposes the rest."""
    return controller.create_study(body)


@router.get("", response_model=list[StudyOut])
def list_studies(views: Views) -> list[StudyOut]:
    return views.list_studies()


@router.get("/{study_id}", response_model=StudyOut)
def get_study(study_id: StudyId, views: Views) -> StudyOut:
    return views.get_study(study_id)


@router.get("/{study_id}/trials", response_model=list[TrialOut])
def list_trials(study_id: StudyId, views: Views) -> list[TrialOut]:
    return views.trials(study_id)


# The files are YAML; their errors are JSON like every other error (ERRORS, from the router). With
# response_class=Response no media type is assumed, so each answer documents its own.
YAML_FILE: dict[int | str, dict[str, object]] = {
    200: {"content": {"application/x-yaml": {"schema": {"type": "string"}}}},
}


def yaml_attachment(text: str, filename: str) -> PlainTextResponse:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return PlainTextResponse(text, media_type="application/x-yaml", headers=headers)


Source = Annotated[
    Literal["confirmation", "screening"],
    Query(
        description="confirmation (default): the confirmed winner once confirmation has finished, else screening's "
        "top trial marked unconfirmed; screening: the trial with the highest single screening fitness."
    ),
]


@router.get("/{study_id}/hyp.yaml", response_class=Response, responses=YAML_FILE)
def download_hyp_yaml(study_id: StudyId, views: Views, source: Source = "confirmation") -> PlainTextResponse:
    """The study's answer as a YOLOv5 hyp file (all 28 keys, YOLOv5's order), its verdict in the header."""
    text, name = views.hyp_yaml(study_id, source)
    return yaml_attachment(text, f"hyp.{name}.yaml")


@router.get("/{study_id}/args.yaml", response_class=Response, responses=YAML_FILE)
def download_args_yaml(study_id: StudyId, views: Views, source: Source = "confirmation") -> PlainTextResponse:
    """The study's answer as ultralytics train arguments, for ``yolo train cfg=args.yaml``."""
    text, name = views.args_yaml(study_id, source)
    return yaml_attachment(text, f"args.{name}.yaml")


@router.get(
    "/{study_id}/evolve.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}},
)
def evolve_plot(study_id: StudyId, views: Views) -> Response:
    """Fitness against each searched hyp, one scatter per key, the best trial marked (YOLOv5's evolve.png)."""
    return Response(views.evolve_png(study_id), media_type="image/png")


@router.get("/{study_id}/artifacts", response_model=list[ArtifactOut])
def list_artifacts(study_id: StudyId, views: Views) -> list[ArtifactOut]:
    """The winner's and the seed hyps' diagnostics, as ultralytics draws them (results.png,
    BoxPR_curve.png, confusion_matrix.png, train_batch*.jpg, labels.jpg, results.csv, ...), and that
    training's weights (last.pt, the model whose final fitness was counted): from their first
    confirmation training of the top rung, or, without confirmation, from one more training of the
    best trial. 404 until confirmation has finished (or that training has run)."""
    return views.artifacts(study_id)


@router.get(
    "/{study_id}/artifacts/{name:path}",
    response_class=Response,
    responses={200: {"content": {t: {"schema": {"type": "string", "format": "binary"}} for t in ARTIFACT_MEDIA}}},
)
def get_artifact(study_id: StudyId, name: str, views: Views) -> Response:
    """One file of the listing, by its listed name ('winner/results.png'); any other name is a 404."""
    content, media_type = views.artifact(study_id, name)
    return Response(content, media_type=media_type)


@router.post(
    "/{study_id}/import",
    response_model=ImportOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A YOLOv5 evolve.csv, or an ultralytics tune_results.csv or .ndjson, as the raw body.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def import_results(
    study_id: StudyId,
    request: Request,
    controller: Controller,
    format: str | None = Query(None, description="evolve-csv, tune-csv or tune-ndjson; detected when absent"),
) -> ImportOut:
    """Add earlier results as completed trials: the request body is a YOLOv5 evolve.csv or an
    ultralytics tune_results (.csv or .ndjson). A malformed file gets 422 and adds nothing."""
    body = await request.body()
    return controller.import_results(study_id, body, format)


@router.post("/{study_id}/resume", response_model=StudyOut)
def resume_study(study_id: StudyId, controller: Controller) -> StudyOut:
    """Start a stopped study again; the trials the stop cancelled run first."""
    return controller.resume_study(study_id)


@router.delete("/{study_id}", status_code=204)
def delete_study(study_id: StudyId, controller: Controller) -> Response:
    """Stop the study if it runs and remove its trials, its rows and its artifacts."""
    controller.delete_study(study_id)
    return Response(status_code=204)


@router.post("/{study_id}/stop", response_model=StudyOut)
def stop_study(study_id: StudyId, controller: Controller) -> StudyOut:
    """Start no new trials, cancel running ones; the study ends ``stopped``."""
    return controller.stop_study(study_id)
