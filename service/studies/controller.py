"""The study controller: the commands that change studies (create, stop, resume, delete, import),
and one runner thread per unfinished study. What the API shows of them is ``views``'s."""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
import uuid
import warnings

import optuna
import ray

from hyps import fitness
from service.cluster.runtime import RayLink
from service.data.datasets import check_dataset
from service.data.report import STUDY_ATTR as DATASET_REPORT
from service.data.report import dataset_report
from service.data.weights import model_source
from service.errors import Conflict, InvalidRequest
from service.samplers.yolov5 import default_probe_keys
from service.schemas import ImportOut, StudyOut, StudyRequest, StudyState
from service.settings import Settings
from service.studies.confirmation import default_confirm_probe_keys
from service.studies.plan import build_plan
from service.studies.result_files import parse_results
from service.studies.runner import RunnerContext, StudyRunner
from service.studies.store import StudyRecord, StudyStore
from service.studies.trials import TrialBook
from service.studies.views import StudyViews
from workers.storage import open_optuna_storage
from workers.trial_tags import TrialTags, import_attrs, seed_trial_attrs

logger = logging.getLogger(__name__)

# How long stop, delete and shutdown wait for a runner to end by itself. One still running then is
# blocked on a Ray that does not answer (a call can take a minute to time out, a connect three): it
# is detached, and the controller ends the study's trials and state itself, so the answer is at once.
STOP_WAIT_S = 5.0


def _keys_among(field: str, keys: list[str], allowed: list[str], verb: str) -> None:
    """A 422 naming ``field`` when one of its ``keys`` is not among those the study ``verb``s."""
    for key in keys:
        if key not in allowed:
            raise InvalidRequest(field, keys, f"names {key!r}, which the study does not {verb}: {allowed}")


class StudyController:
    """Owns the database, the Optuna storage and one runner thread per unfinished study."""

    def __init__(self, settings: Settings, ray: RayLink, trial_task: str = "workers.task:run_trial") -> None:
        settings.prepare_dirs()
        self.settings = settings
        self.store = StudyStore(settings.DATABASE_URL)
        self.storage = open_optuna_storage(
            settings.DATABASE_URL, settings.HEARTBEAT_INTERVAL_S, settings.HEARTBEAT_GRACE_S
        )
        self.ray = ray
        self._context = RunnerContext(settings, self.store, ray, trial_task)
        self._runners: dict[int, StudyRunner] = {}
        self._lock = threading.Lock()
        self.views = StudyViews(settings, self.store, self.storage, self._waiting)

    # -- commands --------------------------------------------------------------------------------

    def create_study(self, request: StudyRequest) -> StudyOut:
        """Validate ``request`` against the data root, create the study with its seed trial, start it."""
        dataset = check_dataset(self.settings.DATA_ROOT, request.dataset)
        model_source(self.settings.WEIGHTS_DIR, request.model)
        report = dataset_report(
            request.dataset, dataset, self.settings.DATA_ROOT, request.imgsz, self.settings.dataset_reports_dir
        )
        if not report.usable:
            train = report.splits[0]
            raise InvalidRequest(
                "dataset",
                request.dataset,
                f"has no box training can use in its train split ({train.images} images, {train.images_ignored} "
                f"rejected, {train.background_images} without labels); GET /datasets/{request.dataset}/report says why",
            )
        self._check_gpus(request)
        segments = report.splits[0].segment_images > 0  # the train split's: what training sees
        plan = build_plan(
            request.seed_hyp, request.evolve, request.fixed, request.bounds, request.fitness_weights,
            keys_from=request.key_set, segments=segments,
        )  # fmt: skip
        if request.probe_keys is None:  # stored resolved: the study's request says what it probes
            request = request.model_copy(update={"probe_keys": default_probe_keys(request.sampler, plan.evolve)})
        probed = request.probe_keys or []
        _keys_among("probe_keys", probed, list(plan.evolve), "search")
        if request.confirm_probe_keys is None:  # stored resolved, as probe_keys
            resolved = default_confirm_probe_keys(probed, request.confirm_top_k)
            request = request.model_copy(update={"confirm_probe_keys": resolved})
        _keys_among("confirm_probe_keys", request.confirm_probe_keys or [], probed, "probe")
        if request.name is not None and (taken := self.store.name_taken_by(request.name)) is not None:
            raise Conflict(f"a study named {request.name!r} already exists (id {taken})")
        # SQLite has one writer: commit our row before Optuna writes through its own connection.
        study_id = self.store.create(request.name, request, dataset, plan)
        name = request.name or f"study-{study_id}"
        try:
            study = optuna.create_study(study_name=name, storage=self.storage, direction="maximize")
        except optuna.exceptions.DuplicatedStudyError:
            self.store.delete(study_id)
            raise Conflict(f"an Optuna study named {name!r} already exists in this database") from None
        # Trial 0 is the seed file itself: the baseline every other trial is judged against.
        study.enqueue_trial(plan.start_params(), user_attrs=seed_trial_attrs(plan.seed_name))
        study.set_user_attr("hypevolve_study_id", study_id)
        study.set_user_attr(DATASET_REPORT, report.model_dump(mode="json"))
        with warnings.catch_warnings():  # experimental since Optuna 3.2 and still so: a known, stable call
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(["fitness"])  # the dashboard's axis label instead of "Objective 0"
        self.store.set_names(study_id, name)
        self._start_runner(study_id)
        return self.views.get_study(study_id)

    def _check_gpus(self, request: StudyRequest) -> None:
        """Refuse GPUs per trial that the Ray the study would run on does not have: Ray would queue
        such trials forever. A local Ray has the GPUs this machine has; a cluster (RAY_ADDRESS, or a
        Ray this process joined) is asked, which joins it now rather than at the first trial."""
        asked = request.gpus_per_trial if request.gpus_per_trial is not None else self.settings.GPUS_PER_TRIAL
        if not asked:
            return
        if self.settings.RAY_ADDRESS or ray.is_initialized():
            have, where = self.ray.connect().get("GPU", 0.0), "the Ray cluster has"
        else:
            import torch  # the local Ray sees the GPUs torch sees

            have, where = float(torch.cuda.device_count()), "this machine's local Ray has"
        if asked > have or (asked < 1 and have < 1):
            field = (
                "gpus_per_trial"
                if request.gpus_per_trial is not None
                else "gpus_per_trial (the GPUS_PER_TRIAL setting)"
            )
            raise InvalidRequest(field, asked, f"{where} {have:g} GPUs; 0 trains on the CPU")

    def stop_study(self, study_id: int) -> StudyOut:
        """Cancel running trials and start no more; the study ends ``stopped``."""
        record = self.store.get(study_id)
        if not record.state.unfinished:
            raise Conflict(f"study {study_id} is already {record.state}")
        if not self._stop_runner(study_id):  # none ran, or it was detached: end what it would have
            self._sweep_running_trials(record, "cancelled: study stopped")
            self.store.set_state(study_id, StudyState.STOPPED)
        return self.views.get_study(study_id)

    def resume_study(self, study_id: int) -> StudyOut:
        """Start a stopped or failed study again: its cancelled trials' params run first, then new ones.
        A failed study's failed trials run again too (its cause fixed, they no longer count)."""
        record = self.store.get(study_id)
        if record.state not in (StudyState.STOPPED, StudyState.FAILED):
            raise Conflict(f"study {study_id} is {record.state}; only a stopped or failed study can be resumed")
        if record.state == StudyState.FAILED:
            self._book(record).requeue_failures()
        self.store.set_state(study_id, StudyState.QUEUED)
        self._start_runner(study_id)
        return self.views.get_study(study_id)

    def delete_study(self, study_id: int) -> None:
        """Stop the study if it runs, then remove its trials, its rows and its artifacts (only its own)."""
        record = self.store.get(study_id)
        self._stop_runner(study_id)
        with contextlib.suppress(KeyError):  # never created: the row outlived a failed creation
            optuna.delete_study(study_name=record.optuna_name, storage=self.storage)
        self.store.delete(study_id)
        artifacts = self.settings.ARTIFACTS_DIR.resolve()
        folder = (artifacts / str(int(study_id))).resolve()
        if folder.parent == artifacts and folder.is_dir():
            shutil.rmtree(folder)

    def resume_unfinished(self) -> None:
        """At start-up: trials left RUNNING by a previous process are interrupted and queued again (in
        every study, whatever its state: no trial stays running for good), then every queued or
        running study gets a runner."""
        for record in self.store.studies():
            self._sweep_running_trials(record, "interrupted: the service stopped while it ran")
            if record.state.unfinished:
                self._start_runner(record.id)

    def shutdown(self) -> None:
        """Stop every runner without ending its study, so the next start resumes it."""
        with self._lock:
            runners, self._runners = list(self._runners.values()), {}
        for runner in runners:
            runner.stop("shutdown")
        deadline = time.monotonic() + STOP_WAIT_S
        for runner in runners:
            runner.join(max(0.0, deadline - time.monotonic()))
            if runner.is_alive():  # blocked on Ray: its trials are swept as interrupted at the next start
                runner.detach()
        self.store.dispose()
        self.storage.engine.dispose()

    def ping(self) -> None:
        """Raise unless the service's database answers."""
        self.store.ping()

    def import_results(self, study_id: int, body: bytes, fmt: str | None) -> ImportOut:
        """Add a user's earlier results (YOLOv5 evolve.csv, ultralytics tune results) as completed
        trials, fitness recomputed with the study's weights where the file has the metrics. All rows
        or none: a bad row refuses the file."""
        record = self.store.get(study_id)
        plan = record.plan
        fmt, results = parse_results(body, fmt)
        distributions = plan.distributions()
        batch = uuid.uuid4().hex
        trials = []
        for result in results:
            where = f"line {result.line}"
            params = plan.searched_params(result.hyp, "file", where)
            if result.metrics is not None:
                value = fitness(result.metrics, plan.fitness_weights)
            elif result.fitness is not None:
                value = result.fitness
            else:
                raise InvalidRequest("file", where, "has neither metrics nor a fitness")
            attrs = import_attrs(fmt, batch, result.line, result.metrics)
            trials.append(
                optuna.trial.create_trial(
                    params=params,
                    distributions={k: distributions[k] for k in params},
                    value=value,
                    user_attrs=attrs,
                )
            )
        study = optuna.load_study(study_name=record.optuna_name, storage=self.storage)
        study.add_trials(trials)
        added = [t for t in study.get_trials(deepcopy=False) if TrialTags.of(t).import_batch == batch]
        top = max(added, key=lambda t: t.value or 0.0)
        metrics = TrialTags.of(top).metrics or {}
        self.store.record_if_best(study_id, top.number, top.params, float(top.value or 0.0), metrics)
        return ImportOut(imported=len(added), format=fmt, trials=[t.number for t in added])

    # -- internals -------------------------------------------------------------------------------

    def _waiting(self, study_id: int) -> str | None:
        runner = self._runners.get(study_id)
        return runner.waiting if runner is not None and runner.is_alive() else None

    def _book(self, record: StudyRecord) -> TrialBook:
        return TrialBook(optuna.load_study(study_name=record.optuna_name, storage=self.storage), self.storage)

    def _sweep_running_trials(self, record: StudyRecord, reason: str) -> None:
        try:
            book = self._book(record)
        except KeyError:  # the row outlived a failed creation: there is no Optuna study, nor trials
            return
        # A completed study runs nothing again; any other can be resumed, and runs them then.
        unfinished = record.state != StudyState.COMPLETED
        book.fail_running(reason, interrupted=unfinished)
        if unfinished:
            book.enqueue_missing_retries()

    def _start_runner(self, study_id: int) -> None:
        with self._lock:
            current = self._runners.get(study_id)
            if current is not None and current.is_alive():
                return
            runner = StudyRunner(self.store.get(study_id), self._context)
            self._runners[study_id] = runner
            runner.start()

    def _stop_runner(self, study_id: int) -> bool:
        """Stop the study's runner and wait up to STOP_WAIT_S for it to end: True when it did (it ended
        its trials and the study's state itself), False when none was running or it was detached."""
        with self._lock:
            runner = self._runners.pop(study_id, None)
        if runner is None or not runner.is_alive():
            return False
        runner.stop("user")
        runner.join(STOP_WAIT_S)
        if runner.is_alive():
            logger.warning("study %d: its runner did not end within %gs (Ray does not answer)", study_id, STOP_WAIT_S)
            runner.detach()
            return False
        return True
