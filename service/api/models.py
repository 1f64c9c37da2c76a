"""``GET /models``: what a study's ``model`` may name."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import SettingsDep
from service.data.weights import models
from service.schemas import ModelsOut

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=ModelsOut)
def list_models(settings: SettingsDep) -> ModelsOut:
    """The YOLOv5 architectures (trained from scratch) and the pretrained weights in the operator's
    weights folder (fine-tuned from). Weights are never uploaded: an operator copies them there."""
    return models(settings.WEIGHTS_DIR)
