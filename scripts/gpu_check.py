"""GPU check: a 2-trial study on CUDA through the real controller, Ray and ultralytics.

Prints the GPU, Ray's resources, and each trial's device, time, fitness and the batch AutoBatch
chose for its share of the GPU (batch -1, two trials on one GPU by default); exits non-zero unless
every training completed on a CUDA device with a batch and one of them learned (fitness above 0).
Installs and downloads nothing (plots off, YOLO_OFFLINE).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import torch

from service.cluster.runtime import RayLink
from service.data.sample import write_sample_dataset
from service.schemas import StudyRequest
from service.settings import Settings
from service.studies.controller import StudyController


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--gpus-per-trial", type=float, default=0.5, help="0.5: both trials share one GPU")
    parser.add_argument("--batch", type=float, default=-1, help="-1: AutoBatch, sized to each trial's share of the GPU")
    parser.add_argument("--cpu-smoke", action="store_true", help="run the same path on the CPU (checks the script)")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}", flush=True)
    if args.cpu_smoke:
        args.gpus_per_trial = 0.0
    elif not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 2
    else:
        print(f"GPU: {torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} visible)", flush=True)

    with tempfile.TemporaryDirectory(prefix="hypevolve-gpu-check-") as tmp:
        home, data_root = Path(tmp) / "home", Path(tmp) / "data"
        write_sample_dataset(data_root / "shapes")
        settings = Settings(HOME=home, DATA_ROOT=data_root)  # type: ignore[call-arg]
        controller = StudyController(settings, RayLink(settings))
        print(f"Ray resources: {controller.ray.connect()}", flush=True)
        request = StudyRequest(
            dataset="shapes/data.yaml", epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, n_trials=2, parallel=2,
            gpus_per_trial=args.gpus_per_trial, name="gpu-check",
        )  # fmt: skip
        started = time.monotonic()
        study = controller.create_study(request)
        while (study := controller.views.get_study(study.id)).state in ("queued", "running"):
            time.sleep(1)
        print(f"study {study.state} in {time.monotonic() - started:.1f}s" + (f": {study.error}" if study.error else ""))
        trials = controller.views.trials(study.id)
        for t in trials:
            fitness = f"{t.fitness:.4f}" if t.fitness is not None else "-"
            error = f", error {t.error}" if t.error else ""
            print(f"  trial {t.number}: {t.state:8} device {t.device} on {t.node}, {t.duration_s or 0:.1f}s, "
                  f"fitness {fitness}, epochs {[round(v, 3) for v in t.epochs]}, batch {t.batch} "
                  f"({t.batch_note or 'as asked'}){error}")  # fmt: skip
        controller.shutdown()
        controller.ray.close()
    device = "cpu" if args.cpu_smoke else "0"
    # The trainings must learn, not only run: a batch that swallows the whole training set trains
    # one step an epoch and scores 0 everywhere (what AutoBatch did on an H200 before its cap).
    learned = max((t.fitness or 0.0) for t in trials) if trials else 0.0
    print(f"best fitness over the study's trainings: {learned:.4f}")
    ok = (
        study.state == "completed"
        and learned > 0
        and all(t.state == "complete" and t.device == device and t.batch is not None and t.batch >= 1 for t in trials)
    )
    print("GPU check passed" if ok else "GPU check FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
