"""What the API shows of studies: their state, trials, answers, plots and files, read from the
service's rows and Optuna's trials. Queries only: nothing here changes a study (the controller's
commands do)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.storages import BaseStorage

from service.data.report import STUDY_ATTR as DATASET_REPORT
from service.errors import NotReady
from service.schemas import ArtifactOut, DatasetReportOut, StudyOut, StudyState, TrialOut
from service.settings import Settings
from service.studies.confirmation import (
    BASELINE_TRIAL,
    ConfirmationResult,
    confirmation_result,
    plotting_seed,
    saved_rungs_of,
)
from service.studies.export import Answer, args_yaml, confirmed_answer, hyp_yaml, screening_answer
from service.studies.plots import evolve_png
from service.studies.progress import study_out, trial_out
from service.studies.store import BestTrial, StudyRecord, StudyStore
from workers.trial_tags import CONFIRMATION, DIAGNOSTICS, TrialTags

ExportSource = Literal["confirmation", "screening"]
# What a plotting training leaves that is worth showing: ultralytics' plots, images and results.csv;
# and its weights (WEIGHTS: the model at the end of the training whose final fitness was counted).
ARTIFACT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".csv": "text/csv", ".pt": "application/octet-stream"}
WEIGHTS = Path("weights") / "last.pt"


def _batches(trials: list[optuna.trial.FrozenTrial]) -> tuple[int, ...]:
    """The batch sizes ``trials`` completed with (what AutoBatch chose for them)."""
    found = (TrialTags.of(t).batch for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    return tuple(b for b in found if b is not None)


def _planned(tags: TrialTags) -> tuple[str, int | None, int | None]:
    return tags.stage, tags.confirms, tags.train_seed


class StudyViews:
    """Answers the API's questions about studies. ``waiting(study_id)`` says why a running study
    runs no trial at the moment (its runner knows)."""

    def __init__(
        self, settings: Settings, store: StudyStore, storage: BaseStorage, waiting: Callable[[int], str | None]
    ) -> None:
        self.settings = settings
        self.store = store
        self.storage = storage
        self._waiting = waiting

    def get_study(self, study_id: int) -> StudyOut:
        record = self.store.get(study_id)
        return self._out(record, self.store.best(study_id))

    def list_studies(self) -> list[StudyOut]:
        bests = self.store.bests()
        return [self._out(record, bests.get(record.id)) for record in self.store.studies()]

    def artifacts(self, study_id: int) -> list[ArtifactOut]:
        """The winner's and the seed hyps' diagnostic plots, the files their plotting training drew,
        and its trained weights (last.pt)."""
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
        rungs = self._rungs(record, trials)
        drawn: dict[str, optuna.trial.FrozenTrial | None]
        completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        if rungs:
            result = rungs[-1]
            if result.rung != record.request.confirm_rungs - 1 or not result.finished or result.winner is None:
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
            shown = [*sorted(folder.iterdir()), folder / WEIGHTS] if folder.is_dir() else []
            for path in shown:
                if path.suffix in ARTIFACT_TYPES and path.is_file() and not path.is_symlink():
                    out = ArtifactOut(
                        name=f"{entry}/{path.name}", entry=entry, trial=trial.number, size_bytes=path.stat().st_size
                    )
                    files.append((out, path))
        return files

    def trials(self, study_id: int) -> list[TrialOut]:
        record = self.store.get(study_id)
        return [trial_out(t, record.request) for t in self._trials(record)]

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

    # -- internals -------------------------------------------------------------------------------

    def _answer(self, study_id: int, source: ExportSource) -> tuple[StudyRecord, Answer]:
        """The confirmed winner once confirmation has finished (unless ``source`` is screening), else
        screening's top trial, saying why it is unconfirmed."""
        record = self.store.get(study_id)
        trials = self._trials(record)
        result = self._confirmation(record, trials) if source == "confirmation" else None
        if result is not None and result.finished and result.winner is not None:
            winner = result.winner
            behind = [
                t
                for t in trials
                if (tags := TrialTags.of(t)).stage == CONFIRMATION
                and tags.confirms == winner
                and (tags.rung or 0) == result.rung
            ]
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
        """The confirmation's top rung and its numbers, once it is planned."""
        rungs = self._rungs(record, trials, attrs)
        top = rungs[-1] if rungs else None
        return top if top is not None and top.rung == record.request.confirm_rungs - 1 else None

    def _rungs(
        self, record: StudyRecord, trials: list[optuna.trial.FrozenTrial], attrs: dict[str, Any] | None = None
    ) -> list[ConfirmationResult]:
        """Every confirmation rung planned so far and its numbers, lowest first; a rung below the top
        says which candidates it promoted once the next is planned."""
        plans = saved_rungs_of(self._study_attrs(record) if attrs is None else attrs)
        top = record.request.confirm_rungs - 1
        results = [confirmation_result(plan, trials, top=plan.rung == top) for plan in plans]
        return [
            replace(result, promoted=list(plans[i + 1].candidates)) if i + 1 < len(plans) else result
            for i, result in enumerate(results)
        ]

    def _out(self, record: StudyRecord, best: BestTrial | None) -> StudyOut:
        trials = self._trials(record)
        attrs = self._study_attrs(record)
        report = attrs.get(DATASET_REPORT)
        return study_out(
            record,
            best,
            trials,
            self._rungs(record, trials, attrs),
            self._waiting(record.id),
            DatasetReportOut.model_validate(report) if report else None,
        )

    def _trials(self, record: StudyRecord) -> list[optuna.trial.FrozenTrial]:
        try:
            optuna_id = self.storage.get_study_id_from_name(record.optuna_name)
        except KeyError:  # created a moment ago: the Optuna study is not there yet
            return []
        return self.storage.get_all_trials(optuna_id, deepcopy=False)
