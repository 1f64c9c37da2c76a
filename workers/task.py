"""The Ray task that runs one trial on whatever node and device Ray gives it."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import ray

from workers.storage import open_optuna_storage
from workers.training import TrialSpec, train_trial


def assigned_device() -> str:
    """'0' when Ray gave this task a GPU (Ray sets CUDA_VISIBLE_DEVICES to it), else 'cpu'."""
    gpus = ray.get_gpu_ids()
    if not gpus:
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(
            f"Ray assigned GPU {gpus} on node {socket.gethostname()}, but CUDA is not available there "
            "(a node that declares GPUs it does not have, or a CPU-only torch)"
        )
    return "0"


def _limit_cpu_threads() -> None:
    # ultralytics sets torch's thread count to min(8, cores - 1) of the whole node; parallel trials
    # on one node would oversubscribe it. Use the CPUs Ray reserved for this task instead.
    import ultralytics.utils.torch_utils as torch_utils

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch_utils.NUM_THREADS = max(1, int(cpus))


@contextmanager
def heartbeat(storage: Any, trial_id: int, interval_s: float) -> Iterator[None]:
    """Record Optuna heartbeats for ``trial_id`` every ``interval_s`` while the block runs. With
    ask/tell nothing does this by itself; without it the controller cannot tell a hung or vanished
    worker from a slow one."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial_id)
            if stop.wait(interval_s):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_trial_here(spec: TrialSpec, storage_url: str, trial_id: int, heartbeat_s: float = 10.0) -> dict[str, Any]:
    """Train ``spec``, writing each epoch's fitness to Optuna as an intermediate value of ``trial_id``
    and a heartbeat every ``heartbeat_s`` seconds.

    Returns the TrialResult as a plain dict plus where it ran (node, host, pid).
    """
    storage = open_optuna_storage(storage_url)
    where = {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "pid": os.getpid()}
    # Where the trial runs, recorded before training: an operator (or a test) can find the process.
    storage.set_trial_user_attr(trial_id, "worker", where)

    def report(epoch: int, value: float, metrics: dict[str, float]) -> None:
        storage.set_trial_intermediate_value(trial_id, epoch, value)

    _limit_cpu_threads()
    with heartbeat(storage, trial_id, heartbeat_s):
        result = train_trial(spec, device=assigned_device(), on_epoch=report)
    return {**asdict(result), **where}


# max_retries=0: Ray would otherwise re-run a crashed trial up to 3 times behind the controller's
# back (one trial training four times); the controller owns retries.
run_trial = ray.remote(max_retries=0)(run_trial_here)
