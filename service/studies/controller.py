"""The study controller: creates studies, runs them, and answers what the API asks of them."""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any, Literal

import optuna

from hyps import fitness
from service.cluster.runtime import RayLink
from service.data.datasets import check_dataset
from service.data.report import STUDY_ATTR as DATASET_REPORT
from service.data.report import dataset_report
from service.data.weights import model_source
from service.errors import Conflict, InvalidRequest, NotReady
from service.schemas import (
    ArtifactOut,
    DatasetReportOut,
    ImportOut,
    StudyOut,
    StudyRequest,
    StudyState,
    TrialOut,
)
from service.settings import Settings
from service.studies.confirmation import (
    BASELINE_TRIAL,
    ConfirmationPlan,
    ConfirmationResult,
    confirmation_result,
    plotting_seed,
)
from service.studies.confirmation import PLAN_ATTR as CONFIRMATION_PLAN
from service.studies.export import Answer, args_yaml, confirmed_answer, hyp_yaml, screening_answer
from service.studies.plan import build_plan
from service.studies.plots import evolve_png
from service.studies.progress import study_out, trial_out
from service.studies.result_files import parse_results
from service.studies.runner import RunnerContext, StudyRunner
from service.studies.store import BestTrial, StudyRecord, StudyStore
from service.studies.trials import TrialBook
from workers.storage import open_optuna_storage
from workers.trial_tags import CONFIRMATION, DIAGNOSTICS, TrialTags, import_attrs, seed_trial_attrs

logger = logging.getLogger(__name__)

STOP_WAIT_S = 60.0
ExportSource = Literal["confirmation", "screening"]


# What a plotting training leaves that is worth showing: ultralytics' plots, images and results.csv.
ARTIFACT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".csv": "text/csv"}


def _batches(trials: list[optuna.trial.FrozenTrial]) -> tuple[int, ...]:
    """The batch sizes ``trials`` completed with (what AutoBatch chose for them)."""
    found = (TrialTags.of(t).batch for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    return tuple(b for b in found if b is not None)


def _planned(tags: TrialTags) -> tuple[str, int | None, int | None]:
    return tags.stage, tags.confirms, tags.train_seed


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
        plan = build_plan(request.seed_hyp, request.evolve, request.fixed, request.bounds, request.fitness_weights)
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
        return self.get_study(study_id)

    def stop_study(self, study_id: int) -> StudyOut:
        """Cancel running trials and start no more; the study ends ``stopped``."""
        record = self.store.get(study_id)
        if not record.state.unfinished:
            raise Conflict(f"study {study_id} is already {record.state}")
        if not self._stop_runner(study_id):
            self._sweep_running_trials(record, "cancelled: study stopped")
            self.store.set_state(study_id, StudyState.STOPPED)
        return self.get_study(study_id)

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
        return self.get_study(study_id)

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
        for runner in runners:
            runner.join(STOP_WAIT_S)
        self.store.dispose()
        self.storage.engine.dispose()

    def ping(self) -> None:
        """Raise unless the service's database answers."""
        self.store.ping()

    # -- queries ---------------------------------------------------------------------------------

    def get_study(self, study_id: int) -> StudyOut:
        record = self.store.get(study_id)
        return self._out(record, self.store.best(study_id))

    def list_studies(self) -> list[StudyOut]:
        bests = self.store.bests()
        return [self._out(record, bests.get(record.id)) for record in self.store.studies()]

    def artifacts(self, study_id: int) -> list[ArtifactOut]:
        """The winner's and the seed hyps' diagnostic plots: the files their plotting training drew."""
        record = self.store.get(study_id)
        return [out for out, _ in self._artifact_files(record)]

    def artifact(self, study_id: int, name: str) -> tuple[bytes, str]:
        """One file of the listing (by its listed name only), and its media type."""
        record = self.store.get(study_id)
        for out, path in self._artifact_files(record):
            if out.name == name:
                return path.read_bytes(), ARTIFACT_TYPES[path.suffix]
        raise NotReady(f"study {study_id} has no artifact named {name!r}; GET /studies/{study_id}/artifacts lists them")

    def _artifact_files(self, record: StudyRecord) -> list[tuple[ArtifactOut, Path]]:
        if not record.request.diagnostics:
            raise NotReady(f"study {record.id} was created with diagnostics off: it keeps no plots")
        trials = self._trials(record)
        result = self._confirmation(record, trials)
        drawn: dict[str, optuna.trial.FrozenTrial | None]
        completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        if result is not None:
            if not result.finished or result.winner is None:
                raise NotReady("the winner's plots come once confirmation has finished")
            seed = plotting_seed(record.request.seed)

            def drawing(entry: int) -> optuna.trial.FrozenTrial | None:
                wanted = (CONFIRMATION, entry, seed)
                return next((t for t in completed if _planned(TrialTags.of(t)) == wanted), None)

            drawn = {"winner": drawing(result.winner)}
            if result.winner != BASELINE_TRIAL:  # the seed hyps lost: theirs too, to compare
                drawn["baseline"] = drawing(BASELINE_TRIAL)
        else:
            done = [t for t in completed if TrialTags.of(t).stage == DIAGNOSTICS]
            if not done:
                raise NotReady(f"study {record.id} has no diagnostics training yet: it runs after screening")
            drawn = {"winner": done[-1]}
        root = self.settings.ARTIFACTS_DIR.resolve() / str(record.id)
        files = []
        for entry, trial in drawn.items():
            if trial is None:
                continue
            folder = root / str(trial.number)
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                if path.suffix in ARTIFACT_TYPES and path.is_file() and not path.is_symlink():
                    out = ArtifactOut(
                        name=f"{entry}/{path.name}", entry=entry, trial=trial.number, size_bytes=path.stat().st_size
                    )
                    files.append((out, path))
        return files

    def trials(self, study_id: int) -> list[TrialOut]:
        record = self.store.get(study_id)
        return [trial_out(t, record.request.seed) for t in self._trials(record)]

    def hyp_yaml(self, study_id: int, source: ExportSource = "confirmation") -> tuple[str, str]:
        """The study's answer as a YOLOv5 hyp file, and the study's name; NotReady before a trial completes."""
        record, answer = self._answer(study_id, source)
        return hyp_yaml(record, answer), record.name

    def args_yaml(self, study_id: int, source: ExportSource = "confirmation") -> tuple[str, str]:
        """The study's answer as an ultralytics train config, and the study's name."""
        record, answer = self._answer(study_id, source)
        return args_yaml(record, answer), record.name

    def evolve_png(self, study_id: int) -> bytes:
        """Fitness against each searched hyp over the screening trials, best trial marked; NotReady
        before a trial completes."""
        record = self.store.get(study_id)
        best = self.store.best(study_id)
        if best is None:
            raise NotReady(f"study {study_id} has no completed trial yet")
        completed = [
            t
            for t in self._trials(record)
            if t.state == optuna.trial.TrialState.COMPLETE and TrialTags.of(t).is_screening
        ]
        return evolve_png(completed, record.plan.evolve, best.trial)

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

    def _answer(self, study_id: int, source: ExportSource) -> tuple[StudyRecord, Answer]:
        """The confirmed winner once confirmation has finished (unless ``source`` is screening), else
        screening's top trial, saying why it is unconfirmed."""
        record = self.store.get(study_id)
        trials = self._trials(record)
        result = self._confirmation(record, trials) if source == "confirmation" else None
        if result is not None and result.finished and result.winner is not None:
            winner = result.winner
            behind = [t for t in trials if (tags := TrialTags.of(t)).stage == CONFIRMATION and tags.confirms == winner]
            return record, confirmed_answer(record, result, _batches(behind))
        best = self.store.best(study_id)
        if best is None:
            raise NotReady(f"study {study_id} has no completed trial yet")
        note = None
        if source == "confirmation" and record.request.confirm_top_k > 0:
            if record.state == StudyState.COMPLETED and result is None:
                note = "nothing to confirm: no completed trial differs from the seed hyps"
            else:
                note = "unconfirmed: screening's top trial, one training at one seed; confirmation has not finished"
        behind = [t for t in trials if t.number == best.trial]
        return record, screening_answer(record, best, note, _batches(behind))

    def _study_attrs(self, record: StudyRecord) -> dict[str, Any]:
        try:
            optuna_id = self.storage.get_study_id_from_name(record.optuna_name)
        except KeyError:  # created a moment ago: the Optuna study is not there yet
            return {}
        return self.storage.get_study_user_attrs(optuna_id)

    def _confirmation(
        self, record: StudyRecord, trials: list[optuna.trial.FrozenTrial], attrs: dict[str, Any] | None = None
    ) -> ConfirmationResult | None:
        """The confirmation stage's numbers, once screening has ended and it was planned."""
        data = (self._study_attrs(record) if attrs is None else attrs).get(CONFIRMATION_PLAN)
        return confirmation_result(ConfirmationPlan.from_json(data), trials) if data else None

    def _out(self, record: StudyRecord, best: BestTrial | None) -> StudyOut:
        trials = self._trials(record)
        attrs = self._study_attrs(record)
        report = attrs.get(DATASET_REPORT)
        return study_out(
            record,
            best,
            trials,
            self._confirmation(record, trials, attrs),
            self._waiting(record.id),
            DatasetReportOut.model_validate(report) if report else None,
        )

    def _trials(self, record: StudyRecord) -> list[optuna.trial.FrozenTrial]:
        try:
            optuna_id = self.storage.get_study_id_from_name(record.optuna_name)
        except KeyError:  # created a moment ago: the Optuna study is not there yet
            return []
        return self.storage.get_all_trials(optuna_id, deepcopy=False)

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
        """Stop the study's runner and wait for it to end; False when none was running."""
        with self._lock:
            runner = self._runners.pop(study_id, None)
        if runner is None or not runner.is_alive():
            return False
        runner.stop("user")
        runner.join(STOP_WAIT_S)
        return True
