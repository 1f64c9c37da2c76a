"""The best hyperparameters of a study as a YOLOv5 hyp.yaml."""

from __future__ import annotations

from hyps import HELD_KEYS, render_hyp_yaml
from service.db import BestHypRow, StudyRow, utcnow


def best_hyp_yaml(row: StudyRow, best: BestHypRow) -> str:
    """A complete hyp file for ``python train.py --hyp``: the best trial's values for the searched
    keys, the seed file's for the rest, and a header saying where they came from."""
    request = row.request
    metrics = ", ".join(f"{k} {v:.5g}" for k, v in best.metrics.items())
    header = [
        f"hypevolve study '{row.name}' (id {row.id}, {row.state}): its best trial",
        f"trial {best.trial_number}, fitness {best.fitness:.6g} (0.1 x mAP@0.5 + 0.9 x mAP@0.5:0.95)",
        f"metrics: {metrics}",
        f"trained: {request['model']} on {request['dataset']}, {request['epochs']} epochs, "
        f"imgsz {request['imgsz']}, batch {request['batch']}, SGD, ultralytics backend",
        f"keys not searched are hyp.{request['seed_hyp']}.yaml's; "
        f"{', '.join(HELD_KEYS)} have no effect on that backend",
        f"exported {utcnow().strftime('%Y-%m-%d %H:%M:%S')} UTC",
        "usage: python train.py --hyp hyp.yaml",
    ]
    return render_hyp_yaml(best.params, header, seed_hyp=request["seed_hyp"])
