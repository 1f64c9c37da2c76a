from __future__ import annotations

import pytest

from hyps import fitness


def test_fitness_is_yolov5s_weighted_map() -> None:
    metrics = {"precision": 0.9, "recall": 0.8, "mAP50": 0.5, "mAP50-95": 0.3}
    assert fitness(metrics) == pytest.approx(0.1 * 0.5 + 0.9 * 0.3)


def test_nan_and_missing_metrics_count_as_zero() -> None:
    assert fitness({"mAP50": float("nan")}) == 0.0


def test_weights_must_cover_the_four_metrics() -> None:
    with pytest.raises(ValueError, match="need 4 values"):
        fitness({}, [0.5, 0.5])
