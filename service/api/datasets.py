"""Routes under /datasets: the data sets under the data root, and each one's report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from service.api.deps import ERRORS, SettingsDep
from service.data.report import find_datasets, labels_png, report_of
from service.errors import InvalidRequest
from service.schemas import DatasetOut, DatasetReportOut

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=ERRORS)


@router.get("", response_model=list[DatasetOut])
def list_datasets(settings: SettingsDep) -> list[DatasetOut]:
    """The data.yaml files under the data root (three folders deep at most), each with its classes
    or the reason a study would refuse it."""
    return find_datasets(settings.DATA_ROOT)


@router.get("/{dataset:path}/report", response_model=DatasetReportOut)
def dataset_report(
    dataset: str,
    settings: SettingsDep,
    imgsz: Annotated[int, Query(ge=32, le=4096, description="Box sizes are measured at this training size.")] = 640,
) -> DatasetReportOut:
    """Per split: images, label files, images and instances per class, background images, boxes by
    size, and label problems with example files; warnings name the guide's recommendations the data
    set misses. The first report scans every file; an unchanged data set is answered from a cache."""
    if imgsz % 32:
        raise InvalidRequest("imgsz", imgsz, "must be a multiple of 32 (YOLOv5's largest stride)")
    return report_of(settings.DATA_ROOT, dataset, imgsz, settings.dataset_reports_dir)


@router.get(
    "/{dataset:path}/labels.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}},
)
def labels_plot(dataset: str, settings: SettingsDep) -> Response:
    """ultralytics' labels plot of the training split: instances per class, the boxes drawn at the
    image centre, where box centres lie, and box widths against heights. Drawn offline."""
    return Response(labels_png(settings.DATA_ROOT, dataset, settings.dataset_reports_dir), media_type="image/png")
