"""The Ray task that runs one trial on whatever node and device Ray gives it."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import optuna
import ray

from workers.db_retry import first_line, is_transient_db_error, retry_db
from workers.pruning import build_pruner
from workers.storage import open_optuna_storage
from workers.training import Placement, StopTraining, TrialResult, TrialSpec, train_trial
from workers.trial_tags import worker_attrs, write_tags

logger = logging.getLogger(__name__)


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
            try:
                storage.record_heartbeat(trial_id)
            except Exception as exc:  # a database restarting: beat again next time, never die of it
                if not is_transient_db_error(exc):
                    raise
                logger.warning("trial %d: heartbeat not recorded (%s)", trial_id, first_line(exc))
            if stop.wait(interval_s):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@dataclass(frozen=True)
class ReportTo:
    """Where a worker reports: the Optuna storage and trial, how often to beat, which pruner to ask."""

    storage_url: str
    study_name: str
    trial_id: int
    heartbeat_s: float = 10.0
    pruner: str = "none"


def placement_here() -> Placement:
    """The Ray node, host and process this task runs in."""
    return Placement(ray.get_runtime_context().get_node_id(), socket.gethostname(), os.getpid())


def run_trial_here(spec: TrialSpec, report_to: ReportTo) -> TrialResult:
    """Train ``spec``, reporting each epoch's fitness to Optuna as an intermediate value and a
    heartbeat every ``heartbeat_s`` seconds; stop early when the pruner says so.

    Returns the TrialResult with where it ran; a pruned training returns ``pruned=True`` and the
    epochs it trained.
    """
    # Every database call below waits out a restart (workers.db_retry); if the database stays away
    # longer, DatabaseUnreachable ends the training and the controller requeues it as an interruption.
    storage = retry_db(lambda: open_optuna_storage(report_to.storage_url), "open storage")
    trial_id = report_to.trial_id
    where = placement_here()
    # Where the trial runs, recorded before training: an operator (or a test) can find the process.
    retry_db(lambda: write_tags(storage, trial_id, worker_attrs(asdict(where))), "worker placement")
    pruner = build_pruner(report_to.pruner, spec.epochs)
    study = retry_db(
        lambda: optuna.load_study(study_name=report_to.study_name, storage=storage, pruner=pruner), "load study"
    )
    trial = optuna.trial.Trial(study, trial_id)

    def report(epoch: int, value: float, metrics: dict[str, float]) -> None:
        # Reporting a step again is harmless: Optuna keeps the first value of a step.
        retry_db(lambda: trial.report(value, epoch), f"trial {spec.trial_number} epoch {epoch}")
        # After the last epoch there is nothing left to save: a finished training is a result, not a
        # pruned one, whatever the pruner would say of its final value.
        if epoch + 1 < spec.epochs and retry_db(trial.should_prune, f"trial {spec.trial_number} pruning"):
            raise StopTraining(f"pruned after epoch {epoch + 1}")

    _limit_cpu_threads()
    device = assigned_device()
    with heartbeat(storage, trial_id, report_to.heartbeat_s):
        # A pruned training comes back as what it trained (its batch included), marked pruned.
        result = train_trial(spec, device=device, on_epoch=report)
    return replace(result, placement=where)


# max_retries=0: Ray would otherwise re-run a crashed trial up to 3 times behind the controller's
# back (one trial training four times); the controller owns retries.
run_trial = ray.remote(max_retries=0)(run_trial_here)
