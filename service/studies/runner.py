"""Where trials are asked for and told: one thread per running study, dispatching Ray tasks."""

from __future__ import annotations

import logging
import re
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
import ray
from sqlalchemy.orm import sessionmaker

from service.db import StudyRow, utcnow
from service.schemas import request_defaults
from service.settings import Settings
from service.studies.best import record_if_best
from service.studies.plan import StudyPlan
from service.studies.samplers import build_sampler
from service.studies.trials import (
    ERROR,
    budget_used,
    complete_trial,
    counted_failures,
    fail_trial,
    prune_trial,
    stale_trial_ids,
)
from workers.storage import open_optuna_storage
from workers.task import ReportTo
from workers.training import TrialSpec

logger = logging.getLogger(__name__)

POLL_S = 0.5
StopReason = Literal["user", "shutdown"]


@dataclass(frozen=True)
class RunnerContext:
    """What every runner shares: settings, the service's SQL sessions, how to reach Ray, and the Ray
    task that runs one trial (workers.task.run_trial; tests of scheduling pass a stand-in)."""

    settings: Settings
    sessions: sessionmaker
    connect_ray: Callable[[], dict[str, float]]
    trial_task: Any


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def _error_text(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)  # RayTaskError carries the worker's own exception
    if isinstance(cause, BaseException):
        exc = cause
    # ultralytics colours its messages for terminals; an API answer should not carry the codes.
    return _ANSI_ESCAPE.sub("", f"{type(exc).__name__}: {exc}")


class StudyRunner(threading.Thread):
    """Runs study ``study_id`` to its end: at most ``parallel`` trials at once, ``n_trials`` in all.

    Each trial ends in exactly one state: COMPLETE with its fitness, or FAIL with an error. Trials
    cut short by a stop or a shutdown are FAIL and marked interrupted, and their params are queued
    again, so a resumed study re-runs them.
    """

    def __init__(self, study_id: int, context: RunnerContext) -> None:
        super().__init__(name=f"study-{study_id}", daemon=True)
        self.study_id = study_id
        self._context = context
        self._stop_reason: StopReason | None = None

    def stop(self, reason: StopReason) -> None:
        """Ask the runner to cancel its running trials and end (returns at once; join to wait).
        The loop sees it within POLL_S."""
        self._stop_reason = reason

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:
            logger.exception("study %d failed", self.study_id)
            self._set_state("failed", error=_error_text(exc))

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        with self._context.sessions() as session:
            row = session.get(StudyRow, self.study_id)
            assert row is not None, f"study {self.study_id} has no row"
            # Fields added after a study was created take their defaults.
            request = request_defaults() | dict(row.request)
            dataset, optuna_name = dict(row.dataset), row.optuna_name
            plan = StudyPlan.from_json(row.plan)
        resources = self._context.connect_ray()
        settings = self._context.settings
        storage_url = settings.DATABASE_URL
        storage = open_optuna_storage(storage_url, settings.HEARTBEAT_INTERVAL_S, settings.HEARTBEAT_GRACE_S)
        study = optuna.load_study(study_name=optuna_name, storage=storage)
        # Offset by the trials already run, so a resumed study does not replay its first proposals.
        sampler_seed = request["seed"] + len(study.get_trials(deepcopy=False))
        study.sampler = build_sampler(request["sampler"], sampler_seed, plan.ranges, plan.start_params())
        space = plan.distributions()
        gpus = self._gpus_per_trial(request, resources)
        self._set_state("running")

        used = budget_used(study)
        inflight: dict[ray.ObjectRef, optuna.Trial] = {}
        failure: str | None = None
        next_reap = time.monotonic() + settings.HEARTBEAT_INTERVAL_S
        while self._stop_reason is None and failure is None:
            while len(inflight) < request["parallel"] and used < request["n_trials"]:
                trial = self._ask(study, space)
                used += 1
                spec = self._spec(trial, request, dataset, plan)
                # Workers write epoch reports to the storage directly, keyed by Optuna's trial id.
                report_to = ReportTo(
                    storage_url, optuna_name, trial._trial_id, settings.HEARTBEAT_INTERVAL_S, request["pruner"]
                )
                ref = self._dispatch(spec, report_to, gpus)
                inflight[ref] = trial
            if not inflight:
                break
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=POLL_S)
            for ref in ready:
                self._settle(study, inflight.pop(ref), ref, request)
            reaped = False
            if time.monotonic() >= next_reap:
                reaped = self._reap_stale(study, inflight, request)
                next_reap = time.monotonic() + settings.HEARTBEAT_INTERVAL_S
            if ready or reaped:
                # A requeued failure gave its place in the budget back to its retry.
                used = budget_used(study)
                failure = self._too_many_failures(study, request)

        if self._stop_reason is not None or failure is not None:
            self._cancel(study, inflight)
        if failure is not None:
            self._set_state("failed", error=failure)
        elif self._stop_reason == "user":
            self._set_state("stopped")
        elif self._stop_reason is None:
            completed = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
            if completed:
                self._set_state("completed")
            else:
                self._set_state("failed", error=f"none of the {used} trials completed; see each trial's error")

    @staticmethod
    def _ask(study: optuna.Study, space: dict[str, Any]) -> optuna.Trial:
        with warnings.catch_warnings():
            # Optuna warns that heartbeats belong to study.optimize(); with ask/tell the workers beat
            # themselves (workers/task.py) and the runner reaps stale trials, as its docs ask.
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            return study.ask(space)

    def _spec(
        self,
        trial: optuna.Trial,
        request: dict[str, Any],
        dataset: dict[str, Any],
        plan: StudyPlan,
    ) -> TrialSpec:
        settings = self._context.settings
        return TrialSpec(
            trial_number=trial.number,
            data=dataset,
            model=request["model"],
            epochs=request["epochs"],
            imgsz=request["imgsz"],
            batch=request["batch"],
            seed=request["seed"],
            hyp=plan.hyp_for(trial.params),
            ultralytics_args=plan.ultralytics_args_for(trial.params),
            fitness_weights=plan.fitness_weights,
            output_dir=str(Path(settings.ARTIFACTS_DIR) / str(self.study_id) / str(trial.number)),
            dataloader_workers=settings.CPUS_PER_TRIAL - 1,
            label_cache_dir=str(Path(settings.ARTIFACTS_DIR) / "label-cache"),
        )

    def _gpus_per_trial(self, request: dict[str, Any], resources: dict[str, float]) -> float:
        cluster_gpus = resources.get("GPU", 0.0)
        asked = request.get("gpus_per_trial")
        if asked is None:
            asked = self._context.settings.GPUS_PER_TRIAL
        if asked is None:
            return 1.0 if cluster_gpus > 0 else 0.0
        if asked > cluster_gpus:
            # Ray would queue such a task forever: say so instead of hanging.
            raise ValueError(f"gpus_per_trial {asked:g} but the Ray cluster has {cluster_gpus:g} GPUs")
        return float(asked)

    def _dispatch(self, spec: TrialSpec, report_to: ReportTo, gpus: float) -> ray.ObjectRef:
        options = {
            "num_cpus": self._context.settings.CPUS_PER_TRIAL,
            "num_gpus": gpus,
            "name": f"study-{self.study_id}/trial-{spec.trial_number}",
        }
        return self._context.trial_task.options(**options).remote(spec, report_to)

    def _settle(self, study: optuna.Study, trial: optuna.Trial, ref: ray.ObjectRef, request: dict[str, Any]) -> None:
        number = trial.number
        try:
            result = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            fail_trial(study, number, "cancelled", interrupted=True)
            return
        except ray.exceptions.RayTaskError as exc:  # the training itself raised: a retry would too
            logger.warning("study %d trial %d failed: %s", self.study_id, number, _error_text(exc))
            fail_trial(study, number, _error_text(exc))
            return
        except ray.exceptions.RayError as exc:  # its worker process or node was lost
            error = f"worker lost: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            logger.warning("study %d trial %d: %s", self.study_id, number, error)
            fail_trial(study, number, error, max_retries=request["max_retries"])
            return
        if result.get("pruned"):
            attrs = {"metrics": result["metrics"], "duration_s": result["duration_s"], "device": result["device"],
                     "node": result["host"], "node_id": result["node_id"]}  # fmt: skip
            prune_trial(study, number, attrs)
            return
        attrs = {
            "metrics": result["metrics"],
            "duration_s": result["duration_s"],
            "device": result["device"],
            "node": result["host"],
            "node_id": result["node_id"],
            "train_args": result["train_args"],
            "startup": result.get("startup"),
        }
        if complete_trial(study, number, result["fitness"], attrs):
            record_if_best(
                self._context.sessions, self.study_id, number, trial.params, result["fitness"], result["metrics"]
            )

    def _reap_stale(
        self, study: optuna.Study, inflight: dict[ray.ObjectRef, optuna.Trial], request: dict[str, Any]
    ) -> bool:
        """Fail running trials whose heartbeat went stale (a hung or vanished worker that Ray has not
        reported), cancel their tasks, and requeue them under the retry policy."""
        stale = stale_trial_ids(study)
        reaped = False
        for ref, trial in list(inflight.items()):
            if trial._trial_id in stale:
                ray.cancel(ref, force=True)
                del inflight[ref]
                grace = self._context.settings.HEARTBEAT_GRACE_S
                fail_trial(
                    study,
                    trial.number,
                    f"worker lost: no heartbeat for over {grace}s",
                    max_retries=request["max_retries"],
                )
                reaped = True
        return reaped

    def _too_many_failures(self, study: optuna.Study, request: dict[str, Any]) -> str | None:
        failed = counted_failures(study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.FAIL]))
        if len(failed) < request["max_failed_trials"]:
            return None
        last = max(failed, key=lambda t: t.number)
        return (
            f"{len(failed)} trials failed (max_failed_trials {request['max_failed_trials']}); "
            f"last, trial {last.number}: {last.user_attrs.get(ERROR)}"
        )

    def _cancel(self, study: optuna.Study, inflight: dict[ray.ObjectRef, optuna.Trial]) -> None:
        reason = {
            "user": "cancelled: study stopped",
            "shutdown": "interrupted: service shut down",
            None: "cancelled: the study failed",
        }[self._stop_reason]
        for ref in inflight:
            ray.cancel(ref, force=True)
        for trial in inflight.values():
            fail_trial(study, trial.number, reason, interrupted=True)

    # -- the service's own row -------------------------------------------------------------------

    def _set_state(self, state: str, error: str | None = None) -> None:
        with self._context.sessions.begin() as session:
            row = session.get(StudyRow, self.study_id)
            if row is None:
                return
            row.state = state
            if state == "running":
                row.started_at = row.started_at or utcnow()
                row.finished_at = None
                row.error = None
            else:
                row.finished_at = utcnow()
                row.error = error
