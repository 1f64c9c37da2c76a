"""The best hyperparameters of a study as a YOLOv5 hyp.yaml and as ultralytics train arguments."""

from __future__ import annotations

from typing import Any

import yaml

from hyps import HELD_KEYS, YOLOV5_PARITY_ARGS, render_hyp_yaml, translate_hyp
from service.db import BestHypRow, StudyRow, utcnow
from service.studies.plan import StudyPlan


def _provenance(row: StudyRow, best: BestHypRow, plan: StudyPlan) -> list[str]:
    request = row.request
    metrics = ", ".join(f"{k} {v:.5g}" for k, v in best.metrics.items())
    weights = ", ".join(f"{w:g}" for w in plan.fitness_weights)
    return [
        f"hypevolve study '{row.name}' (id {row.id}, {row.state}): its best trial",
        f"trial {best.trial_number}, fitness {best.fitness:.6g} (weights [P, R, mAP50, mAP50-95] = [{weights}])",
        f"metrics: {metrics}",
        f"trained: {request['model']} on {request['dataset']}, {request['epochs']} epochs, "
        f"imgsz {request['imgsz']}, batch {request['batch']}, SGD, ultralytics backend",
        f"searched: {', '.join(plan.evolve)}",
        f"not searched: the {plan.seed_name} seed's values" + (f", fixed {plan.fixed}" if plan.fixed else ""),
        f"exported {utcnow().strftime('%Y-%m-%d %H:%M:%S')} UTC",
    ]


def best_hyp_yaml(row: StudyRow, best: BestHypRow) -> str:
    """A complete hyp file for ``python train.py --hyp``: the best trial's values for the searched
    keys, the fixed and seed values for the rest, and a header saying where they came from."""
    plan = StudyPlan.from_json(row.plan)
    extras = plan.ultralytics_args_for(best.params)
    untried = []
    if extras.get("close_mosaic", 0) >= row.request["epochs"]:
        untried = [
            f"close_mosaic {extras['close_mosaic']} >= {row.request['epochs']} epochs: this trial trained without "
            "mosaic, so the mosaic value below was not tried"
        ]
    header = [
        *_provenance(row, best, plan),
        f"{', '.join(HELD_KEYS)} have no effect on the ultralytics backend: carried unchanged",
        *([f"ultralytics-only, so in args.yaml and not here: {extras}"] if extras else []),
        *untried,
        "usage: python train.py --hyp hyp.yaml",
    ]
    return render_hyp_yaml(plan.hyp_for(best.params), header)


def best_train_args(row: StudyRow, best: BestHypRow) -> dict[str, Any]:
    """The best trial's training as ultralytics arguments: translated hyps plus the study's setup."""
    plan = StudyPlan.from_json(row.plan)
    request = row.request
    return {
        "model": request["model"],
        "epochs": request["epochs"],
        "imgsz": request["imgsz"],
        "batch": request["batch"],
        "seed": request["seed"],
        **YOLOV5_PARITY_ARGS,
        **translate_hyp(plan.hyp_for(best.params)),
        **plan.ultralytics_args_for(best.params),
    }


def best_args_yaml(row: StudyRow, best: BestHypRow) -> str:
    """best_train_args as a file for ``yolo train cfg=args.yaml data=your/data.yaml``."""
    plan = StudyPlan.from_json(row.plan)
    header = [
        *_provenance(row, best, plan),
        "box and cls are converted to ultralytics' scale (box 7.5 x box/0.05); YOLOv5-only keys are left out",
        "usage: yolo train cfg=args.yaml data=path/to/data.yaml",
    ]
    comments = "".join(f"# {line}\n" for line in header)
    return comments + "\n" + yaml.safe_dump(best_train_args(row, best), sort_keys=False)
