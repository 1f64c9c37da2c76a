from __future__ import annotations

import yaml

from hyps import HYP_KEYS, load_seed_hyp
from service.db import BestHypRow, StudyRow
from service.studies.export import best_hyp_yaml


def _rows(seed_hyp: str, params: dict[str, float]) -> tuple[StudyRow, BestHypRow]:
    request = {"dataset": "shapes/data.yaml", "model": "yolov5n.yaml", "epochs": 3, "imgsz": 64, "batch": 16,
               "seed_hyp": seed_hyp}  # fmt: skip
    row = StudyRow(id=7, name="export", optuna_name="export", state="completed", request=request, dataset={})
    metrics = {"precision": 0.5, "recall": 0.4, "mAP50": 0.3, "mAP50-95": 0.2}
    best = BestHypRow(study_id=7, trial_number=4, fitness=0.21, params=params, metrics=metrics)
    return row, best


def test_export_has_all_28_keys_in_yolov5_order_with_best_values_and_seed_for_the_rest() -> None:
    params = {"lr0": 0.0031415926535, "momentum": 0.91, "mosaic": 0.6, "box": 0.07}
    text = best_hyp_yaml(*_rows("scratch-high", params))
    hyp = yaml.safe_load(text)
    assert list(hyp) == list(HYP_KEYS)
    assert {k: hyp[k] for k in params} == params
    seed = load_seed_hyp("scratch-high")
    # Keys not searched come from the study's seed file (scratch-high here, not scratch-low).
    assert {k: hyp[k] for k in HYP_KEYS if k not in params} == {k: seed[k] for k in HYP_KEYS if k not in params}
    assert hyp["copy_paste"] == 0.1


def test_export_header_says_where_the_values_came_from() -> None:
    text = best_hyp_yaml(*_rows("scratch-low", {"lr0": 0.02}))
    header = [line for line in text.splitlines() if line.startswith("# ") and ":" in line][:4]
    assert "study 'export' (id 7, completed)" in header[0]
    assert "trial 4, fitness 0.21" in header[1]
    assert "mAP50-95 0.2" in header[2]
    assert "yolov5n.yaml on shapes/data.yaml, 3 epochs, imgsz 64, batch 16" in header[3]
