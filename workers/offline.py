"""Keep ultralytics off the network: a training must never download fonts, weights or telemetry.

Two calls in the training path reach out even with plots off: the data-set check fetches Arial.ttf
(used only for plots), and the CUDA AMP check downloads yolo26n.pt to compare FP32 and FP16
outputs. Both are replaced here; everything else honours YOLO_OFFLINE. With plots on, the
annotator's font lookup would download Arial too: it gets DejaVu Sans, which matplotlib ships.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

OFFLINE_ENV: dict[str, str] = {"YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False"}


def _no_font(font: str = "Arial.ttf") -> None:
    return None


def bundled_font(font: str = "Arial.ttf") -> str:
    """A TrueType font on disk for ultralytics' plots, whatever font they ask for: DejaVu Sans from
    matplotlib's own data (Latin, Greek and Cyrillic; other scripts draw as boxes)."""
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")


def _offline_check_amp(model: Any) -> bool:
    # The upstream check only detects a few old GPUs with broken FP16 by running a downloaded
    # model; without that model it assumes AMP works, which is what we do, minus the download.
    import torch

    device = next(model.parameters()).device
    if device.type != "cuda":
        return False
    name = torch.cuda.get_device_name(device).lower()
    broken = ("1660", "1650", "1630", "t400", "t550", "t600", "t1000", "t1200", "t2000", "k40m")
    return not any(tag in name for tag in broken)


def seal_ultralytics() -> None:
    """Set the offline environment and replace ultralytics' two network calls (idempotent)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    import ultralytics.data.utils as data_utils
    import ultralytics.engine.trainer as trainer
    import ultralytics.utils.plotting as plotting

    data_utils.check_font = _no_font
    trainer.check_amp = _offline_check_amp
    plotting.check_font = bundled_font
