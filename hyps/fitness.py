"""YOLOv5's fitness: a weighted sum of precision, recall, mAP@0.5 and mAP@0.5:0.95."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

METRIC_NAMES: tuple[str, ...] = ("precision", "recall", "mAP50", "mAP50-95")

# ultralytics' names for the same validation metrics (its trainer.metrics keys, the columns of its
# results.csv and tune logs), in METRIC_NAMES order.
ULTRALYTICS_METRIC_COLUMNS: tuple[str, ...] = (
    "metrics/precision(B)",
    "metrics/recall(B)",
    "metrics/mAP50(B)",
    "metrics/mAP50-95(B)",
)

# YOLOv5 utils/metrics.py fitness(): [P, R, mAP@0.5, mAP@0.5:0.95]. The ultralytics package's own
# fitness is mAP@0.5:0.95 alone, so ours is computed from the metrics, never read from the trainer.
YOLOV5_FITNESS_WEIGHTS: tuple[float, float, float, float] = (0.0, 0.0, 0.1, 0.9)


def fitness(metrics: Mapping[str, float], weights: Sequence[float] = YOLOV5_FITNESS_WEIGHTS) -> float:
    """Weighted sum of ``metrics`` (keys of METRIC_NAMES); a missing or NaN metric counts as 0."""
    if len(weights) != len(METRIC_NAMES):
        raise ValueError(f"fitness weights need {len(METRIC_NAMES)} values {METRIC_NAMES}; got {list(weights)}")
    total = 0.0
    for name, weight in zip(METRIC_NAMES, weights, strict=True):
        value = float(metrics.get(name, 0.0))
        total += weight * (0.0 if value != value else value)
    return total
