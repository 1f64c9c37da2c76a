"""A stand-in for workers.task.run_trial, for tests about scheduling: no training, just the time a
trial holds its Ray resources and which GPU Ray gave it. Never used by a test that claims training
works."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import ray

from workers.task import ReportTo
from workers.training import TrialSpec

HOLD_S = 3.0


def fake_trial_here(spec: TrialSpec, report_to: ReportTo) -> dict[str, Any]:
    started = time.time()
    time.sleep(HOLD_S)
    metrics = {"precision": 0.0, "recall": 0.0, "mAP50": 0.0, "mAP50-95": 0.0}
    return {
        "fitness": 0.0,
        "metrics": metrics,
        "epochs": [0.0],
        "duration_s": time.time() - started,
        "device": "fake",
        "train_args": {
            "started": started,
            "ended": time.time(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        },
        "node_id": ray.get_runtime_context().get_node_id(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


fake_trial = ray.remote(max_retries=0)(fake_trial_here)
