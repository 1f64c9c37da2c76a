"""What a study trains: a YOLOv5 architecture built from scratch, or pretrained weights to fine-tune.

A ``.pt`` file is a pickle, and unpickling runs code: weights never come with a request. A request
names a file the operator put in ``HYPEVOLVE_WEIGHTS_DIR``; the name is a bare file name (no
folder, no ``..``), and a symlink there that leads out of the folder is refused like a missing file.
"""

from __future__ import annotations

import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from service.errors import InvalidRequest
from service.schemas import WEIGHTS_NAME, ModelsOut, WeightsOut

# ultralytics builds these YOLOv5 ("YOLOv5u", anchor-free) architectures offline from its own yaml.
ARCHITECTURES: tuple[str, ...] = tuple(f"yolov5{size}{p6}.yaml" for p6 in ("", "6") for size in "nsmlx")
_WEIGHTS_NAME = re.compile(rf"^{WEIGHTS_NAME}$")


def is_weights_name(model: str) -> bool:
    return model.endswith(".pt")


def _weights_file(weights_dir: Path, name: str) -> Path | None:
    """The file ``name`` names inside ``weights_dir``, or None when there is none (or it leads out)."""
    if not _WEIGHTS_NAME.match(name):
        return None
    root = weights_dir.resolve()
    path = (root / name).resolve()  # follows a symlink, so one that points out is caught here
    if path.parent != root or not path.is_file():
        return None
    return path


def _is_checkpoint(path: Path) -> bool:
    # torch.save writes a zip archive holding a pickle (data.pkl); anything else is not a checkpoint
    # ultralytics can load. Reading the archive's index runs no code.
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def model_path(weights_dir: Path, model: str) -> str:
    """What ``YOLO()`` loads for a checked ``model``: an architecture name as it is, weights by their
    absolute path in the weights folder (each node checks it has them before training)."""
    return str(weights_dir.resolve() / model) if is_weights_name(model) else model


def model_source(weights_dir: Path, model: str, field: str = "model") -> str:
    """Check a request's ``model`` and return model_path's answer for it; InvalidRequest naming
    ``field`` for an unknown architecture or weights that are not a checkpoint in the folder."""
    if not is_weights_name(model):
        if model not in ARCHITECTURES:
            raise InvalidRequest(field, model, f"unknown architecture; valid: {', '.join(ARCHITECTURES)}")
        return model
    if not _WEIGHTS_NAME.match(model):
        raise InvalidRequest(
            field, model, "must be the bare name of a .pt file in the weights folder (letters, digits, . _ -)"
        )
    path = _weights_file(weights_dir, model)
    if path is None:
        listed = ", ".join(w.name for w in list_weights(weights_dir)) or "none"
        raise InvalidRequest(field, model, f"is not in the weights folder; available weights: {listed}")
    if not _is_checkpoint(path):
        raise InvalidRequest(field, model, "is not a PyTorch checkpoint (torch.save's zip format)")
    return model_path(weights_dir, model)


def list_weights(weights_dir: Path) -> list[WeightsOut]:
    """The weights a study may name: .pt files directly in the folder that stay inside it."""
    if not weights_dir.is_dir():
        return []
    found = []
    for entry in sorted(weights_dir.iterdir()):
        path = _weights_file(weights_dir, entry.name)
        if path is not None:
            stat = path.stat()
            modified = datetime.fromtimestamp(stat.st_mtime, UTC)
            found.append(WeightsOut(name=entry.name, size_bytes=stat.st_size, modified=modified))
    return found


def models(weights_dir: Path) -> ModelsOut:
    return ModelsOut(architectures=list(ARCHITECTURES), weights=list_weights(weights_dir))
