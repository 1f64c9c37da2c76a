"""The study controller: creates studies, runs them, and answers what the API asks of them."""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hyps import fitness
from service.datasets import check_dataset
from service.db import BestHypRow, StudyRow, make_engine, make_sessionmaker
from service.errors import Conflict, InvalidRequest, NotReady, StudyNotFound
from service.schemas import StudyOut, StudyRequest, TrialOut
from service.settings import Settings
from service.studies.best import record_if_best
from service.studies.export import best_args_yaml, best_hyp_yaml
from service.studies.imports import parse_results
from service.studies.plan import StudyPlan, build_plan
from service.studies.plots import evolve_png
from service.studies.progress import study_out, trial_out
from service.studies.runner import RunnerContext, StudyRunner
from service.studies.trials import IMPORTED, fail_trial
from workers.storage import open_optuna_storage
from workers.task import run_trial

logger = logging.getLogger(__name__)

UNFINISHED = ("queued", "running")
STOP_WAIT_S = 60.0


class StudyController:
    """Owns the database, the Optuna storage and one runner thread per unfinished study."""

    def __init__(self, settings: Settings, connect_ray: Callable[[], dict[str, float]], trial_task: Any = None) -> None:
        settings.prepare_dirs()
        self.settings = settings
        self.engine = make_engine(settings.DATABASE_URL)
        self.sessions = make_sessionmaker(self.engine)
        self.storage = open_optuna_storage(
            settings.DATABASE_URL, settings.HEARTBEAT_INTERVAL_S, settings.HEARTBEAT_GRACE_S
        )
        self._context = RunnerContext(settings, self.sessions, connect_ray, trial_task or run_trial)
        self._runners: dict[int, StudyRunner] = {}
        self._lock = threading.Lock()

    # -- commands --------------------------------------------------------------------------------

    def create_study(self, request: StudyRequest) -> StudyOut:
        """Validate ``request`` against the data root, create the study with its seed trial, start it."""
        dataset = check_dataset(self.settings.DATA_ROOT, request.dataset)
        plan = build_plan(request.seed_hyp, request.evolve, request.fixed, request.bounds, request.fitness_weights)
        if request.name is not None:
            self._check_name_free(request.name)
        # SQLite has one writer: commit our row before Optuna writes through its own connection.
        with self.sessions.begin() as session:
            row = StudyRow(
                name=request.name or f"pending-{uuid.uuid4().hex}",
                optuna_name=f"pending-{uuid.uuid4().hex}",
                request=request.model_dump(),
                dataset=dataset,
                plan=plan.to_json(),
            )
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                raise Conflict(f"a study named {request.name!r} already exists") from None
            study_id = row.id
        name = request.name or f"study-{study_id}"
        try:
            study = optuna.create_study(study_name=name, storage=self.storage, direction="maximize")
        except optuna.exceptions.DuplicatedStudyError:
            self._delete_row(study_id)
            raise Conflict(f"an Optuna study named {name!r} already exists in this database") from None
        # Trial 0 is the seed file itself: the baseline every other trial is judged against.
        study.enqueue_trial(plan.start_params(), user_attrs={"seed_hyp": plan.seed_name})
        study.set_user_attr("hypevolve_study_id", study_id)
        with warnings.catch_warnings():  # experimental since Optuna 3.2 and still so: a known, stable call
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(["fitness"])  # the dashboard's axis label instead of "Objective 0"
        with self.sessions.begin() as session:
            row = session.get_one(StudyRow, study_id)
            row.name = row.optuna_name = name
        self._start_runner(study_id)
        return self.get_study(study_id)

    def stop_study(self, study_id: int) -> StudyOut:
        """Cancel running trials and start no more; the study ends ``stopped``."""
        row = self._row(study_id)
        if row.state not in UNFINISHED:
            raise Conflict(f"study {study_id} is already {row.state}")
        with self._lock:
            runner = self._runners.pop(study_id, None)
        if runner is not None and runner.is_alive():
            runner.stop("user")
            runner.join(STOP_WAIT_S)
        else:
            self._sweep_running_trials(row, "cancelled: study stopped")
            with self.sessions.begin() as session:
                session.get_one(StudyRow, study_id).state = "stopped"
        return self.get_study(study_id)

    def resume_study(self, study_id: int) -> StudyOut:
        """Start a stopped study again: its cancelled trials' params run first, then new ones."""
        row = self._row(study_id)
        if row.state != "stopped":
            raise Conflict(f"study {study_id} is {row.state}; only a stopped study can be resumed")
        with self.sessions.begin() as session:
            current = session.get_one(StudyRow, study_id)
            current.state, current.error, current.finished_at = "queued", None, None
        self._start_runner(study_id)
        return self.get_study(study_id)

    def delete_study(self, study_id: int) -> None:
        """Stop the study if it runs, then remove its trials, its rows and its artifacts (only its own)."""
        row = self._row(study_id)
        with self._lock:
            runner = self._runners.pop(study_id, None)
        if runner is not None and runner.is_alive():
            runner.stop("user")
            runner.join(STOP_WAIT_S)
        with contextlib.suppress(KeyError):  # never created: the row outlived a failed creation
            optuna.delete_study(study_name=row.optuna_name, storage=self.storage)
        with self.sessions.begin() as session:
            for kind in (BestHypRow, StudyRow):
                found = session.get(kind, study_id)
                if found is not None:
                    session.delete(found)
        artifacts = self.settings.ARTIFACTS_DIR.resolve()
        folder = (artifacts / str(int(study_id))).resolve()
        if folder.parent == artifacts and folder.is_dir():
            shutil.rmtree(folder)

    def resume_unfinished(self) -> None:
        """At start-up: trials left RUNNING by a previous process are interrupted and queued again,
        then every queued or running study gets a runner."""
        with self.sessions() as session:
            rows = session.scalars(select(StudyRow).where(StudyRow.state.in_(UNFINISHED))).all()
        for row in rows:
            self._sweep_running_trials(row, "interrupted: the service stopped while it ran")
            self._start_runner(row.id)

    def shutdown(self) -> None:
        """Stop every runner without ending its study, so the next start resumes it."""
        with self._lock:
            runners, self._runners = list(self._runners.values()), {}
        for runner in runners:
            runner.stop("shutdown")
        for runner in runners:
            runner.join(STOP_WAIT_S)
        self.engine.dispose()
        self.storage.engine.dispose()

    # -- queries ---------------------------------------------------------------------------------

    def get_study(self, study_id: int) -> StudyOut:
        row = self._row(study_id)
        with self.sessions() as session:
            best = session.get(BestHypRow, study_id)
        return study_out(row, best, self._trials(row))

    def list_studies(self) -> list[StudyOut]:
        with self.sessions() as session:
            rows = session.scalars(select(StudyRow).order_by(StudyRow.id)).all()
            bests = {b.study_id: b for b in session.scalars(select(BestHypRow)).all()}
        return [study_out(row, bests.get(row.id), self._trials(row)) for row in rows]

    def trials(self, study_id: int) -> list[TrialOut]:
        return [trial_out(t) for t in self._trials(self._row(study_id))]

    def hyp_yaml(self, study_id: int) -> tuple[str, str]:
        """The best hyps as a YOLOv5 hyp file, and the study's name; NotReady before a trial completes."""
        row, best = self._best(study_id)
        return best_hyp_yaml(row, best), row.name

    def args_yaml(self, study_id: int) -> tuple[str, str]:
        """The best hyps as an ultralytics train config, and the study's name."""
        row, best = self._best(study_id)
        return best_args_yaml(row, best), row.name

    def evolve_png(self, study_id: int) -> bytes:
        """Fitness against each searched hyp, best trial marked; NotReady before a trial completes."""
        row, best = self._best(study_id)
        completed = [t for t in self._trials(row) if t.state == optuna.trial.TrialState.COMPLETE]
        return evolve_png(completed, StudyPlan.from_json(row.plan).evolve, best.trial_number)

    def import_results(self, study_id: int, body: bytes, fmt: str | None) -> dict[str, Any]:
        """Add a user's earlier results (YOLOv5 evolve.csv, ultralytics tune results) as completed
        trials, fitness recomputed with the study's weights where the file has the metrics. All rows
        or none: a bad row refuses the file."""
        row = self._row(study_id)
        plan = StudyPlan.from_json(row.plan)
        fmt, results = parse_results(body, fmt)
        distributions = plan.distributions()
        batch = uuid.uuid4().hex
        trials = []
        for result in results:
            params = {k: v for k, v in result.hyp.items() if k in distributions}
            if not params:
                raise InvalidRequest(
                    "file", f"line {result.line}", f"has none of the searched keys {list(plan.evolve)}"
                )
            for key, value in params.items():
                bounds = plan.ranges[key]
                if not bounds.contains(value):
                    what = "is not a whole number in" if bounds.integer else "lies outside"
                    raise InvalidRequest(
                        "file", f"line {result.line}", f"{key}={value} {what} the study's range "
                        f"[{bounds.low}, {bounds.high}]",
                    )  # fmt: skip
                if bounds.integer:
                    params[key] = int(value)
            if result.metrics is not None:
                value = fitness(result.metrics, plan.fitness_weights)
            elif result.fitness is not None:
                value = result.fitness
            else:
                raise InvalidRequest("file", f"line {result.line}", "has neither metrics nor a fitness")
            attrs = {IMPORTED: fmt, "import_batch": batch, "import_line": result.line, "metrics": result.metrics}
            trials.append(
                optuna.trial.create_trial(
                    params=params,
                    distributions={k: distributions[k] for k in params},
                    value=value,
                    user_attrs=attrs,
                )
            )
        study = optuna.load_study(study_name=row.optuna_name, storage=self.storage)
        study.add_trials(trials)
        added = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("import_batch") == batch]
        top = max(added, key=lambda t: t.value or 0.0)
        record_if_best(
            self.sessions, study_id, top.number, top.params, float(top.value or 0.0), top.user_attrs["metrics"] or {}
        )
        return {"imported": len(added), "format": fmt, "trials": [t.number for t in added]}

    # -- internals -------------------------------------------------------------------------------

    def _best(self, study_id: int) -> tuple[StudyRow, BestHypRow]:
        row = self._row(study_id)
        with self.sessions() as session:
            best = session.get(BestHypRow, study_id)
        if best is None:
            raise NotReady(f"study {study_id} has no completed trial yet")
        return row, best

    def _row(self, study_id: int) -> StudyRow:
        with self.sessions() as session:
            row = session.get(StudyRow, study_id)
        if row is None:
            raise StudyNotFound(study_id)
        return row

    def _trials(self, row: StudyRow) -> list[optuna.trial.FrozenTrial]:
        try:
            optuna_id = self.storage.get_study_id_from_name(row.optuna_name)
        except KeyError:  # created a moment ago: the Optuna study is not there yet
            return []
        return self.storage.get_all_trials(optuna_id, deepcopy=False)

    def _check_name_free(self, name: str) -> None:
        with self.sessions() as session:
            taken = session.scalar(select(StudyRow.id).where(StudyRow.name == name))
        if taken is not None:
            raise Conflict(f"a study named {name!r} already exists (id {taken})")

    def _delete_row(self, study_id: int) -> None:
        with self.sessions.begin() as session:
            row = session.get(StudyRow, study_id)
            if row is not None:
                session.delete(row)

    def _sweep_running_trials(self, row: StudyRow, reason: str) -> None:
        study = optuna.load_study(study_name=row.optuna_name, storage=self.storage)
        for trial in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
            fail_trial(study, trial.number, reason, interrupted=True)

    def _start_runner(self, study_id: int) -> None:
        with self._lock:
            current = self._runners.get(study_id)
            if current is not None and current.is_alive():
                return
            runner = StudyRunner(study_id, self._context)
            self._runners[study_id] = runner
            runner.start()
