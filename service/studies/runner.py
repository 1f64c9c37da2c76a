"""Where trials are asked for and told: one thread per running study, dispatching Ray tasks."""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import optuna
from optuna.trial import TrialState

from service.cluster.driver import TaskOutcome, error_text
from service.cluster.runtime import DriverError, RayLink, RayLost
from service.data.weights import model_path
from service.samplers import build_sampler
from service.schemas import StudyRequest, StudyState
from service.settings import Settings
from service.studies.confirmation import draws_plots, start_confirmation, start_diagnostics
from service.studies.store import StudyRecord, StudyStore
from service.studies.trials import TrialBook, counted_failures
from workers.db_retry import Backoff, is_transient_db_error, retry_db
from workers.storage import open_optuna_storage
from workers.task import ReportTo
from workers.training import TrialResult, TrialSpec
from workers.trial_tags import CONFIRMATION, TrialTags

logger = logging.getLogger(__name__)

POLL_S = 0.5
T = TypeVar("T")
StopReason = Literal["user", "shutdown"]


@dataclass(frozen=True)
class RunnerContext:
    """What every runner shares: settings, the study store, the link to Ray, and the Ray task that
    runs one trial, as "module:name" (workers.task:run_trial; tests of scheduling name a stand-in)."""

    settings: Settings
    store: StudyStore
    ray: RayLink
    trial_task: str = "workers.task:run_trial"


def auto_batch_share(batch: float, gpus: float) -> float:
    """What a trial on ``gpus`` of one GPU passes to ultralytics for a study's AutoBatch ``batch`` (-1,
    or a fraction of memory): AutoBatch sizes a batch to a fraction (default 0.6) of the memory it
    finds free, so two trials starting together on halves of a GPU would each take 60% of all of it.
    A part of a GPU gets that part of the fraction; a whole GPU (or more, or the CPU) keeps it."""
    fraction = 0.6 if batch == -1 else batch
    return fraction * gpus if 0 < gpus < 1 else batch


@dataclass
class _StageRun:
    """One stage's loop state: what it runs on, the budget used, when heartbeats are next judged,
    whether it recovers from an outage, and the failure that ends it."""

    study: optuna.Study
    book: TrialBook
    space: dict[str, Any]
    gpus: float
    screening: bool
    used: int
    next_reap: float = 0.0
    recovering: bool = False
    failure: str | None = None

    def more(self, n_trials: int) -> bool:
        """Whether the stage has a trial left to start: screening until n_trials were used, a later
        stage while trainings it enqueued are waiting."""
        if self.screening:
            return self.used < n_trials
        return bool(self.study.get_trials(deepcopy=False, states=[TrialState.WAITING]))


class StudyRunner(threading.Thread):
    """Runs study ``study_id`` to its end: at most ``parallel`` trials at once, ``n_trials`` in all.

    Each trial ends in exactly one state: COMPLETE with its fitness, or FAIL with an error. Trials
    cut short by a stop or a shutdown are FAIL and marked interrupted, and their params are queued
    again, so a resumed study re-runs them.
    """

    def __init__(self, record: StudyRecord, context: RunnerContext) -> None:
        super().__init__(name=f"study-{record.id}", daemon=True)
        self.study_id = record.id
        self._record = record
        self._context = context
        self._stop_reason: StopReason | None = None
        self._stopping = threading.Event()  # set with _stop_reason: what a wait on Ray gives up for
        # Set by the controller once it stopped waiting for this runner (blocked on a Ray that does not
        # answer) and ended the study itself: the runner then writes nothing more, and just ends.
        self._detached = False
        # The trials dispatched and not settled, and their book: what a crash of the loop must end.
        self._inflight: dict[str, optuna.Trial] = {}
        # Outcomes Ray has handed over (its driver keeps no handle of them after that) and not yet
        # recorded: a database error while recording one must not lose it, nor let it be reaped.
        self._received: dict[str, TaskOutcome] = {}
        self._book: TrialBook | None = None
        self._ray_generation = 0
        # Why the study runs no trials at the moment (Ray lost and being restarted); None while it does.
        self.waiting: str | None = None

    def stop(self, reason: StopReason) -> None:
        """Ask the runner to cancel its running trials and end (returns at once; join to wait).
        The loop sees it within POLL_S."""
        self._stop_reason = reason
        self._stopping.set()

    def detach(self) -> None:
        """For a runner asked to stop that did not end in time: its study's trials and state are the
        controller's from now on, and the runner ends without writing, once its call returns."""
        self._detached = True

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:
            if self._detached:  # e.g. its study was deleted under it: nothing of it is this runner's now
                logger.info("study %d: a detached runner ended on %s", self.study_id, error_text(exc))
                return
            logger.exception("study %d failed", self.study_id)
            error = error_text(exc)
            self._end_orphans(f"interrupted: the study failed: {error}")
            try:
                self._set_state(StudyState.FAILED, error=error)
            except Exception:  # the database stayed away: the study is still running for the next start
                logger.exception("study %d: could not record that it failed", self.study_id)

    def _end_orphans(self, reason: str) -> None:
        """After the loop itself raised: cancel what it dispatched and end every trial it left RUNNING
        (requeued, so that resuming the study runs them again). Nothing may stay running for good."""
        self._context.ray.cancel(list(self._inflight))
        self._inflight.clear()
        self._received.clear()
        if self._book is None:
            return
        try:
            self._book.fail_running(reason)
        except Exception:  # the storage itself is what failed: the next service start sweeps them
            logger.exception("study %d: could not end its running trials", self.study_id)

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        record = self._record
        request, plan = record.request, record.plan
        resources = self._connect_ray()
        if resources is None:  # stopped before Ray answered
            if self._stop_reason == "user":
                self._set_state(StudyState.STOPPED)
            return
        self._ray_generation = self._context.ray.generation
        settings = self._context.settings
        storage_url = settings.DATABASE_URL
        storage = open_optuna_storage(storage_url, settings.HEARTBEAT_INTERVAL_S, settings.HEARTBEAT_GRACE_S)
        study = self._retry(lambda: optuna.load_study(study_name=record.optuna_name, storage=storage), "load")
        book = self._book = self._retry(lambda: TrialBook(study, storage), "load")
        # Offset by the trials already run, so a resumed study does not replay its first proposals.
        sampler_seed = request.seed + len(self._retry(lambda: study.get_trials(deepcopy=False), "load"))
        study.sampler = build_sampler(
            request.sampler, sampler_seed, plan.ranges, plan.start_params(), request.probe_keys or ()
        )
        space = plan.distributions()
        gpus = self._gpus_per_trial(request, resources)
        self._set_state(StudyState.RUNNING)

        failure = self._drain(study, book, space, gpus, screening=True)

        def screened_trials() -> list[optuna.trial.FrozenTrial]:
            completed = study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])
            return [t for t in completed if TrialTags.of(t).is_screening]

        screened = self._retry(screened_trials, "screening's results")
        confirming = self._stop_reason is None and failure is None and screened and request.confirm_top_k > 0
        confirmed = False
        while confirming:
            # One step at a time: a rung is planned (and promoted into) once the one below has ended, and
            # at the top rung racing adds a seed once the last one's trainings have ended.
            step = self._retry(lambda: start_confirmation(study, plan, request), "confirmation")
            if step is None:
                break
            confirmed = True
            if not self._retry(lambda: study.get_trials(deepcopy=False, states=[TrialState.WAITING]), "queue"):
                break  # nothing more to train: the top rung has ended
            failure = self._drain(study, book, space, gpus, screening=False)
            confirming = failure is None and self._stop_reason is None
        # Without a confirmation (off, or nothing to confirm), the best trial trains once more with
        # ultralytics' plots on: the diagnostics its user looks at before trusting it.
        diagnosing = (
            request.diagnostics and not confirmed and self._stop_reason is None and not failure and bool(screened)
        )
        best = self._retry(lambda: self._context.store.best(self.study_id), "best") if diagnosing else None
        if best is not None:
            self._retry(lambda: start_diagnostics(study, best.trial, request.seed), "diagnostics")
            failure = self._drain(study, book, space, gpus, screening=False)

        if failure is not None:
            self._set_state(StudyState.FAILED, error=failure)
        elif self._stop_reason == "user":
            self._set_state(StudyState.STOPPED)
        elif self._stop_reason is None:
            if screened:
                self._set_state(StudyState.COMPLETED)
            else:
                used = self._retry(book.budget_used, "budget")
                self._set_state(StudyState.FAILED, error=f"none of the {used} trials completed; see each trial's error")

    def _retry(self, call: Callable[[], T], what: str) -> T:
        """``call()``, waiting out a database that restarts (workers.db_retry) for DB_PATIENCE_S."""
        return retry_db(call, f"study {self.study_id}: {what}", self._context.settings.DB_PATIENCE_S)

    def _drain(
        self, study: optuna.Study, book: TrialBook, space: dict[str, Any], gpus: float, screening: bool
    ) -> str | None:
        """Run trials until the stage has none left to start and none running, a stop, or too many
        failures (returned as the study's error). Screening asks the sampler for up to n_trials
        trials; a later stage runs the trainings it enqueued, and asks nothing new.

        Each step is a few named phases, as Ray Tune's controller steps: recover (after an outage),
        fill (start what fits), collect (settle what ended), reap (end what went silent). A database
        that goes away pauses the loop (trainings go on; workers wait out the outage on their side)
        and the step is tried again once it is back; trials asked but never dispatched meanwhile are
        requeued. A settled result is dropped from ``inflight`` only once recorded, so a result the
        database missed is recorded on the next try, never lost."""
        settings = self._context.settings
        stage = _StageRun(study, book, space, gpus, screening, used=self._retry(book.budget_used, "budget"))
        stage.next_reap = time.monotonic() + settings.HEARTBEAT_INTERVAL_S
        backoff = Backoff(f"study {self.study_id}", settings.DB_PATIENCE_S)
        while self._stop_reason is None and stage.failure is None:
            try:
                if stage.recovering:
                    self._recover(stage)
                    backoff.reset()
                self._fill(stage)
                if not self._inflight:
                    break
                settled = self._collect(stage)
                reaped = self._reap(stage)
                if settled or reaped:
                    # A requeued failure gave its place in the budget back to its retry.
                    stage.used = book.budget_used()
                    stage.failure = self._too_many_failures(study)
            except RayLost as lost:
                self._wait_for_ray(book, self._inflight, lost.reason)
                stage.recovering = True  # recount the budget; let workers beat before judging heartbeats
            except Exception as exc:
                if not is_transient_db_error(exc):
                    raise
                backoff.wait(exc)  # raises once DB_PATIENCE_S is spent: the study fails
                stage.recovering = True
        if self._stop_reason is not None or stage.failure is not None:
            self._retry(lambda: self._cancel(book, self._inflight), "cancel")
        return stage.failure

    def _recover(self, stage: _StageRun) -> None:
        """After an outage (database or Ray): requeue what was asked but never dispatched, queue the
        retries a failure's write left out, recount the budget, and give workers time to beat again
        before any trial is judged lost (heartbeats could not be written meanwhile)."""
        self._requeue_undispatched(stage.book, self._inflight)
        stage.book.enqueue_missing_retries()
        stage.used = stage.book.budget_used()
        stage.recovering = False
        stage.next_reap = time.monotonic() + 2 * self._context.settings.HEARTBEAT_INTERVAL_S

    def _fill(self, stage: _StageRun) -> None:
        """Ask for and dispatch trials while fewer than ``parallel`` run and the stage has more."""
        request, settings = self._record.request, self._context.settings
        while self._stop_reason is None and len(self._inflight) < request.parallel and stage.more(request.n_trials):
            trial = self._ask(stage.study, stage.space)
            screening_trial = TrialTags.of(trial).is_screening
            stage.used += screening_trial
            # Workers write epoch reports to the storage directly, keyed by Optuna's trial id.
            report_to = ReportTo(
                settings.DATABASE_URL,
                self._record.optuna_name,
                stage.book.trial_id(trial.number),
                settings.HEARTBEAT_INTERVAL_S,
                # Trainings after screening are never pruned: each is one paired measurement.
                request.pruner if screening_trial else "none",
            )
            self._inflight[self._dispatch(trial, report_to, stage.gpus)] = trial

    def _collect(self, stage: _StageRun) -> bool:
        """Wait up to POLL_S for trainings to end and record each; whether any did. An outcome is
        kept until it is recorded: after a database error the next step records it, with no wait."""
        running = [key for key in self._inflight if key not in self._received]
        if running:
            try:
                ready = self._context.ray.wait(running, 0.0 if self._received else POLL_S)
            except DriverError:
                self._check_ray()
                raise
            self._received.update(ready)
        settled = bool(self._received)
        self._record_received(stage.book)
        return settled

    def _record_received(self, book: TrialBook, results_only: bool = False) -> None:
        """Record every outcome in hand; each leaves ``inflight`` once recorded. ``results_only``
        (Ray lost, or a stop): record finished trainings' results and forget the other outcomes,
        whose trials are then interrupted with the rest of ``inflight``."""
        for key, outcome in list(self._received.items()):
            if results_only and outcome.kind != "result":
                del self._received[key]
                continue
            self._settle(book, self._inflight[key], outcome)
            del self._inflight[key], self._received[key]

    def _reap(self, stage: _StageRun) -> bool:
        """Every HEARTBEAT_INTERVAL_S, end the trials whose heartbeat went stale; whether any was."""
        if time.monotonic() < stage.next_reap:
            return False
        reaped = self._reap_stale(stage.book, self._inflight)
        stage.next_reap = time.monotonic() + self._context.settings.HEARTBEAT_INTERVAL_S
        return reaped

    def _requeue_undispatched(self, book: TrialBook, inflight: dict[str, optuna.Trial]) -> None:
        """After a database outage: a trial that is RUNNING but not in flight was asked when the
        database went away, before its training was dispatched. Nothing will end it: requeue it."""
        dispatched = {trial.number for trial in inflight.values()}
        for trial in book.study.get_trials(deepcopy=False, states=[TrialState.RUNNING]):
            if trial.number not in dispatched:
                book.fail(trial.number, "interrupted: the database was unreachable", interrupted=True)

    def _check_ray(self) -> None:
        """Raise RayLost when Ray itself does not run a task; return when it does (then what went
        wrong was one worker or task, and the caller's own handling applies)."""
        problem = self._context.ray.problem()
        if problem is not None:
            raise RayLost(problem)

    def _wait_for_ray(self, book: TrialBook, inflight: dict[str, optuna.Trial], reason: str) -> None:
        """Ray is gone: its trials are interrupted (requeued, not counted against max_retries or
        max_failed_trials), then Ray is restarted (local) or joined again (a cluster, once its head
        is back), trying with a backoff up to 30 s until it runs a task or the study is stopped."""
        logger.warning("study %d: Ray lost (%s); waiting for it", self.study_id, reason)
        self.waiting = f"waiting for Ray: {reason}"
        error = f"interrupted: Ray was lost ({reason})"
        # What ended before Ray was lost is a result, not an interruption: also what the driver kept
        # of trainings that had ended and were not yet collected.
        self._received.update(self._context.ray.harvested([k for k in inflight if k not in self._received]))
        self._retry(partial(self._record_received, book, results_only=True), "record")
        self._context.ray.cancel(list(inflight))
        for trial in inflight.values():
            self._retry(partial(book.fail, trial.number, error, interrupted=True), "interrupt")
        inflight.clear()
        delay = 1.0
        while self._stop_reason is None:
            try:
                self._context.ray.restart(self._ray_generation, reason)
                self._context.ray.connect(until=self._stopping)
                self._ray_generation = self._context.ray.generation
                problem = self._context.ray.problem()
                if problem is None:
                    break
                reason = problem
            except Exception as exc:
                reason = error_text(exc)
            self.waiting = f"waiting for Ray: {reason}"
            self._stopping.wait(delay)
            delay = min(delay * 2, 30.0)
        logger.info("study %d: Ray is back", self.study_id)
        self.waiting = None

    def _connect_ray(self) -> dict[str, float] | None:
        """Ray's resources once it is reached; None if the study is stopped first. A Ray that cannot be
        started or joined (a cluster whose head or this node is not up yet) is waited for, as a lost
        one is, with ``waiting`` saying why: the study does not fail for it."""
        delay = 1.0
        while self._stop_reason is None:
            try:
                resources = self._context.ray.connect(until=self._stopping)
                self.waiting = None
                return resources
            except RayLost:
                break  # stopped while connecting
            except RuntimeError as exc:
                self.waiting = f"waiting for Ray: {error_text(exc)}"
                logger.warning("study %d: %s", self.study_id, self.waiting)
            self._stopping.wait(delay)
            delay = min(delay * 2, 30.0)
        return None

    @staticmethod
    def _ask(study: optuna.Study, space: dict[str, Any]) -> optuna.Trial:
        with warnings.catch_warnings():
            # Optuna warns that heartbeats belong to study.optimize(); with ask/tell the workers beat
            # themselves (workers/task.py) and the runner reaps stale trials, as its docs ask.
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            return study.ask(space)

    def _spec(self, trial: optuna.Trial, gpus: float = 1.0) -> TrialSpec:
        """What trial ``trial`` trains: a screening trial at the study's seed and epochs; a confirmation
        training at the seed it was enqueued with, for its rung's epochs. On ``gpus`` < 1 (a part
        of a GPU), AutoBatch is asked for that part of the GPU's memory, not for the whole of it."""
        settings, request, plan = self._context.settings, self._record.request, self._record.plan
        tags = TrialTags.of(trial)
        if tags.is_screening or tags.train_seed is None:
            seed, epochs = request.seed, request.epochs
        else:
            # A training planned by a later stage: its own seed, and the length it was planned with
            # (older confirmation trainings recorded none: the study's confirmation length).
            seed = tags.train_seed
            epochs = tags.epochs or (request.confirmation_epochs() if tags.stage == CONFIRMATION else request.epochs)
        return TrialSpec(
            trial_number=trial.number,
            data=self._record.dataset,
            model=model_path(settings.WEIGHTS_DIR, request.model),
            epochs=epochs,
            imgsz=request.imgsz,
            batch=auto_batch_share(request.batch, gpus) if request.auto_batch() else request.batch,
            seed=seed,
            hyp=plan.hyp_for(trial.params),
            ultralytics_args=plan.ultralytics_args_for(trial.params),
            fitness_weights=plan.fitness_weights,
            output_dir=str(Path(settings.ARTIFACTS_DIR) / str(self.study_id) / str(trial.number)),
            dataloader_workers=settings.CPUS_PER_TRIAL - 1,
            label_cache_dir=str(Path(settings.ARTIFACTS_DIR) / "label-cache"),
            plots=request.diagnostics and draws_plots(tags, request.seed),
        )

    def _gpus_per_trial(self, request: StudyRequest, resources: dict[str, float]) -> float:
        cluster_gpus = resources.get("GPU", 0.0)
        asked = request.gpus_per_trial
        if asked is None:
            asked = self._context.settings.GPUS_PER_TRIAL
        if asked is None:
            return 1.0 if cluster_gpus > 0 else 0.0
        if asked > cluster_gpus:
            # Ray would queue such a task forever: say so instead of hanging.
            raise ValueError(f"gpus_per_trial {asked:g} but the Ray cluster has {cluster_gpus:g} GPUs")
        return float(asked)

    def _dispatch(self, trial: optuna.Trial, report_to: ReportTo, gpus: float) -> str:
        spec = self._spec(trial, gpus)
        options = {
            "num_cpus": self._context.settings.CPUS_PER_TRIAL,
            "num_gpus": gpus,
            "name": f"study-{self.study_id}/trial-{spec.trial_number}",
        }
        try:
            return self._context.ray.submit(self._context.trial_task, options, spec, report_to)
        except Exception as exc:
            # The trial was asked; it is RUNNING with nothing to end it: interrupt it, then see why.
            book, error = self._book, f"interrupted: {error_text(exc)}"
            assert book is not None
            self._retry(lambda: book.fail(trial.number, error, interrupted=True), "dispatch")
            self._check_ray()
            raise

    def _settle(self, book: TrialBook, trial: optuna.Trial, outcome: TaskOutcome) -> None:
        number = trial.number
        if outcome.kind == "cancelled":
            book.fail(number, "cancelled", interrupted=True)
            return
        if outcome.kind == "raised":
            if outcome.database_unreachable:  # not the training's doing: run it again
                book.fail(number, f"interrupted: {outcome.error}", interrupted=True)
                return
            # The training itself raised: a retry would too.
            logger.warning("study %d trial %d failed: %s", self.study_id, number, outcome.error)
            book.fail(number, outcome.error)
            return
        if outcome.kind == "lost":  # its worker process or node was lost, or Ray itself
            self._check_ray()
            error = f"worker lost: {outcome.error}"
            logger.warning("study %d trial %d: %s", self.study_id, number, error)
            book.fail(number, error, max_retries=self._record.request.max_retries)
            return
        result: TrialResult = outcome.result
        if result.pruned:
            book.prune(number, result.user_attrs())
            return
        # complete() is False when the trial had ended already: also when this is a second try after the
        # database dropped the first one's answer, so ask whether it is COMPLETE now.
        told = book.complete(number, result.fitness, result.user_attrs()) or book.is_complete(number)
        if told and TrialTags.of(trial).is_screening:
            # The best-trial row is screening's (what ?source=screening exports); confirmation
            # trainings are judged together, in the verdict.
            self._context.store.record_if_best(self.study_id, number, trial.params, result.fitness, result.metrics)

    def _reap_stale(self, book: TrialBook, inflight: dict[str, optuna.Trial]) -> bool:
        """Fail running trials whose heartbeat went stale (a hung or vanished worker that Ray has not
        reported), cancel their tasks, and requeue them under the retry policy."""
        stale = book.stale_trial_ids()
        if stale and any(book.trial_id(t.number) in stale for t in inflight.values()):
            self._check_ray()  # silent workers because Ray itself is gone: not their loss
        reaped = False
        for key, trial in list(inflight.items()):
            # A trial whose outcome is in hand ended: its silence is not a lost worker's.
            if key not in self._received and book.trial_id(trial.number) in stale:
                self._context.ray.cancel([key])
                del inflight[key]
                grace = self._context.settings.HEARTBEAT_GRACE_S
                book.fail(
                    trial.number,
                    f"worker lost: no heartbeat for over {grace}s",
                    max_retries=self._record.request.max_retries,
                )
                reaped = True
        return reaped

    def _too_many_failures(self, study: optuna.Study) -> str | None:
        limit = self._record.request.max_failed_trials
        failed = counted_failures(study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.FAIL]))
        if len(failed) < limit:
            return None
        last = max(failed, key=lambda t: t.number)
        return (
            f"{len(failed)} trials failed (max_failed_trials {limit}); "
            f"last, trial {last.number}: {TrialTags.of(last).error}"
        )

    def _cancel(self, book: TrialBook, inflight: dict[str, optuna.Trial]) -> None:
        reason = {
            "user": "cancelled: study stopped",
            "shutdown": "interrupted: service shut down",
            None: "cancelled: the study failed",
        }[self._stop_reason]
        self._record_received(book, results_only=True)  # trainings that ended before the stop keep their results
        self._context.ray.cancel(list(inflight))
        # Also when detached: the controller's sweep ended the trials running then, and this ends any
        # the runner started after it (failing an ended trial does nothing).
        for trial in inflight.values():
            book.fail(trial.number, reason, interrupted=True)

    # -- the service's own row -------------------------------------------------------------------

    def _set_state(self, state: StudyState, error: str | None = None) -> None:
        if self._detached:
            return
        self._retry(lambda: self._context.store.set_state(self.study_id, state, error), f"state {state}")
