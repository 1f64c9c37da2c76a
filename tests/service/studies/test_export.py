from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml
from ultralytics.cfg import get_cfg

from hyps import HYP_KEYS, load_seed_hyp
from service.schemas import StudyRequest, StudyState
from service.studies.export import Answer, args_yaml, hyp_yaml, screening_answer
from service.studies.plan import build_plan
from service.studies.store import BestTrial, StudyRecord
from service.studies.tables import utcnow


def _rows(seed_hyp: str, params: dict[str, float], **plan: object) -> tuple[StudyRecord, BestTrial]:
    request = StudyRequest(dataset="shapes/data.yaml", model="yolov5n.yaml", epochs=3, imgsz=64, batch=16,
                           seed_hyp=seed_hyp, seed=0)  # fmt: skip
    record = StudyRecord(
        id=7,
        name="export",
        optuna_name="export",
        state=StudyState.COMPLETED,
        request=request,
        plan=build_plan(seed_hyp, **plan),  # type: ignore[arg-type]
        dataset={},
        error=None,
        created_at=utcnow(),
        started_at=None,
        finished_at=None,
    )
    metrics = {"precision": 0.5, "recall": 0.4, "mAP50": 0.3, "mAP50-95": 0.2}
    return record, BestTrial(trial=4, fitness=0.21, params=params, metrics=metrics)


def test_export_has_all_28_keys_in_yolov5_order_with_best_values_and_seed_for_the_rest() -> None:
    params = {"lr0": 0.0031415926535, "momentum": 0.91, "mosaic": 0.6, "box": 0.07}
    text = hyp_yaml(*_screening("scratch-high", params))
    hyp = yaml.safe_load(text)
    assert list(hyp) == list(HYP_KEYS)
    assert {k: hyp[k] for k in params} == params
    seed = load_seed_hyp("scratch-high")
    # Keys not searched come from the study's seed file (scratch-high here, not scratch-low).
    assert {k: hyp[k] for k in HYP_KEYS if k not in params} == {k: seed[k] for k in HYP_KEYS if k not in params}
    assert hyp["copy_paste"] == 0.1


def test_export_header_says_where_the_values_came_from() -> None:
    text = hyp_yaml(*_screening("scratch-low", {"lr0": 0.02}))
    header = text.splitlines()[:4]
    assert "study 'export' (id 7, completed)" in header[0]
    assert "trial 4, fitness 0.21 (weights [P, R, mAP50, mAP50-95] = [0, 0, 0.1, 0.9])" in header[1]
    assert "mAP50-95 0.2" in header[2]
    assert "yolov5n.yaml on shapes/data.yaml, 3 epochs, imgsz 64, batch 16" in header[3]


def test_fixed_values_reach_the_export() -> None:
    hyp = yaml.safe_load(hyp_yaml(*_screening("scratch-low", {"lr0": 0.02}, fixed={"mixup": 0.3, "fliplr": 0.4})))
    assert (hyp["lr0"], hyp["mixup"], hyp["fliplr"]) == (0.02, 0.3, 0.4)


def test_args_yaml_passes_ultralytics_own_config_check() -> None:
    text = args_yaml(*_screening("scratch-low", {"lr0": 0.02, "box": 0.1, "mosaic": 0.5}))
    args = yaml.safe_load(text)
    # get_cfg raises on any unknown argument or wrong type, as `yolo train cfg=args.yaml` would.
    cfg = get_cfg(overrides=args)
    assert (cfg.lr0, cfg.mosaic, cfg.optimizer, cfg.model, cfg.imgsz) == (0.02, 0.5, "SGD", "yolov5n.yaml", 64)
    # box in ultralytics' scale: twice YOLOv5's default is twice ultralytics' default.
    assert cfg.box == 15.0
    assert args["cls_pw"] == 0.0
    assert not {"obj", "anchor_t", "fl_gamma", "iou_t", "obj_pw"} & set(args)


def test_an_autobatch_export_names_the_batch_the_trainings_used() -> None:
    record, best = _rows("scratch-low", {"lr0": 0.02})
    record = replace(record, request=record.request.model_copy(update={"batch": -1}))
    answer = screening_answer(record, best, batches=(24, 32, 24))
    assert yaml.safe_load(args_yaml(record, answer))["batch"] == 24
    assert "batch 24 (AutoBatch, asked -1; these trainings used [24, 32])" in hyp_yaml(record, answer)
    # Nothing recorded (trials from before batches were): the export asks AutoBatch again.
    unrecorded = screening_answer(record, best)
    assert yaml.safe_load(args_yaml(record, unrecorded))["batch"] == -1
    assert "batch chosen by AutoBatch (-1; not recorded)" in hyp_yaml(record, unrecorded)


def _screening(*args: Any, **kwargs: Any) -> tuple[StudyRecord, Answer]:
    """What the exports of screening's top trial are made of, for the rows ``_rows`` gives."""
    record, best = _rows(*args, **kwargs)
    return record, screening_answer(record, best)
