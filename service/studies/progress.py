"""What the API shows of a study and its trials, built from the service's rows and Optuna's trials."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from optuna.trial import FrozenTrial, TrialState

from hyps import HYP_ARGS, load_ultralytics_space
from service.schemas import (
    BestOut,
    ConfirmationOut,
    DatasetReportOut,
    PlannedEpochsOut,
    StudyOut,
    StudyState,
    TrialOut,
)
from service.studies.confirmation import ConfirmationResult
from service.studies.optuna_internals import full_params
from service.studies.store import BestTrial, StudyRecord
from service.studies.tables import utcnow
from service.studies.trials import counts_toward_budget
from workers.trial_tags import CONFIRMATION, DIAGNOSTICS, SCREENING, Stage, TrialTags

_STATE_NAMES = {
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "fail",
}


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without a zone; every timestamp here is written in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _duration_s(trial: FrozenTrial) -> float | None:
    recorded = TrialTags.of(trial).duration_s
    if recorded is not None:
        return recorded
    if trial.datetime_start and trial.datetime_complete:
        return (trial.datetime_complete - trial.datetime_start).total_seconds()
    return None


def trial_out(trial: FrozenTrial, screening_seed: int) -> TrialOut:
    tags = TrialTags.of(trial)
    # Where it runs is written before training starts (a running trial has it too); where it ran, at the end.
    placement = tags.worker or {}
    return TrialOut(
        number=trial.number,
        state=_STATE_NAMES[trial.state],
        # An enqueued trial shows its whole enqueued set, also while waiting or when a kill cut ask().
        params=full_params(trial),
        fitness=trial.value if trial.state == TrialState.COMPLETE else None,
        metrics=tags.metrics,
        epochs=[trial.intermediate_values[step] for step in sorted(trial.intermediate_values)],
        duration_s=_duration_s(trial),
        error=tags.error,
        node=tags.node or placement.get("host"),
        node_id=tags.node_id or placement.get("node_id"),
        device=tags.device,
        pid=placement.get("pid"),
        retry_of=tags.retry_of,
        startup=tags.startup,
        train_args=_hyp_args(tags.train_args),
        batch=tags.batch,
        batch_note=tags.batch_note,
        stage=tags.stage,
        confirms=tags.confirms,
        seed=screening_seed if tags.train_seed is None else tags.train_seed,
    )


def _hyp_args(train_args: dict[str, object] | None) -> dict[str, object] | None:
    """The trainer's arguments a study can set: translated hyps, parity and ultralytics-only ones."""
    shown = {*HYP_ARGS, *load_ultralytics_space()}
    return {k: v for k, v in train_args.items() if k in shown} if train_args else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _eta_s(record: StudyRecord, trials: Sequence[FrozenTrial], confirmation: ConfirmationResult | None) -> float | None:
    """Seconds left: screening trials still to run at their mean duration, then the confirmation
    trainings at theirs (before any has run: screening's, scaled by the epochs)."""
    if not record.state.unfinished:
        return 0.0 if record.state == StudyState.COMPLETED else None
    request = record.request
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    screening = [TrialTags.of(t).is_screening for t in done]
    screening_s = _mean([d for t, s in zip(done, screening, strict=True) if s and (d := _duration_s(t)) is not None])
    confirming_s = _mean(
        [d for t, s in zip(done, screening, strict=True) if not s and (d := _duration_s(t)) is not None]
    )
    if screening_s is None and confirming_s is None:
        return None
    finished = sum(counts_toward_budget(t) and t.state.is_finished() for t in trials)
    screening_left = max(0, request.n_trials - finished)
    if confirmation is not None:
        confirming_left = confirmation.trainings_total - confirmation.trainings_done
    elif request.confirm_top_k > 0:
        confirming_left = (min(request.confirm_top_k, request.n_trials - 1) + 1) * request.confirm_seeds
    else:
        confirming_left = 0
    if confirming_s is None:
        confirming_s = (screening_s or 0.0) * request.confirmation_epochs() / request.epochs
    left = screening_left + confirming_left
    parallel = max(1, min(request.parallel, left or 1))
    return (screening_left * (screening_s or 0.0) + confirming_left * confirming_s) / parallel


def planned_epochs(record: StudyRecord, confirmation: ConfirmationResult | None) -> PlannedEpochsOut:
    """The training epochs ``record``'s study plans, by stage: its confirmation's own count once
    screening has ended; before, confirm_top_k candidates (at most the trials besides trial 0)."""
    request = record.request
    candidates = min(request.confirm_top_k, request.n_trials - 1)
    if confirmation is not None:
        confirming = confirmation.trainings_total * confirmation.epochs
    elif candidates > 0 and record.state != StudyState.COMPLETED:  # completed without: nothing to confirm
        confirming = (candidates + 1) * request.confirm_seeds * request.confirmation_epochs()
    else:
        confirming = 0
    # Without a confirmation, screening's best trains once more with its plots.
    diagnostics = request.epochs if request.diagnostics and confirming == 0 else 0
    screening = request.n_trials * request.epochs
    total = screening + confirming + diagnostics
    return PlannedEpochsOut(screening=screening, confirmation=confirming, diagnostics=diagnostics, total=total)


def _stage(record: StudyRecord, trials: Sequence[FrozenTrial], confirmation: ConfirmationResult | None) -> Stage | None:
    """What an unfinished study is doing: screening, confirming, or training screening's best with
    plots on (diagnostics, after a screening with nothing to confirm)."""
    if not record.state.unfinished:
        return None
    if confirmation is not None:
        return CONFIRMATION
    if any(TrialTags.of(t).stage == DIAGNOSTICS for t in trials):
        return DIAGNOSTICS
    return SCREENING


def study_out(
    record: StudyRecord,
    best: BestTrial | None,
    trials: Sequence[FrozenTrial],
    confirmation: ConfirmationResult | None = None,
    waiting: str | None = None,
    dataset_report: DatasetReportOut | None = None,
) -> StudyOut:
    counts = Counter(_STATE_NAMES[t.state] for t in trials)
    started, finished = as_utc(record.started_at), as_utc(record.finished_at)
    elapsed = ((finished or utcnow()) - started).total_seconds() if started else None
    created = as_utc(record.created_at)
    assert created is not None
    return StudyOut(
        id=record.id,
        name=record.name,
        state=record.state,
        request=record.request,
        counts={name: counts.get(name, 0) for name in _STATE_NAMES.values()},
        best=BestOut.model_validate(best) if best else None,
        error=record.error,
        created_at=created,
        started_at=started,
        finished_at=finished,
        elapsed_s=elapsed,
        eta_s=_eta_s(record, trials, confirmation),
        planned_epochs=planned_epochs(record, confirmation),
        stage=_stage(record, trials, confirmation),
        confirmation=ConfirmationOut.model_validate(confirmation) if confirmation is not None else None,
        waiting=waiting if record.state.unfinished else None,
        dataset_report=dataset_report,
    )
