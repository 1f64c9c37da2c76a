"""What the API shows of a study and its trials, built from the service's rows and Optuna's trials."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from optuna.trial import FrozenTrial, TrialState

from hyps import HYP_ARGS, load_ultralytics_space
from service.db import utcnow
from service.schemas import (
    BestOut,
    ConfirmationOut,
    ConfirmedOut,
    DatasetReportOut,
    StudyOut,
    StudyState,
    TrialOut,
    VsBaseline,
)
from service.studies.confirmation import CONFIRMATION, ConfirmationResult, ConfirmedEntry, is_screening, stage_of
from service.studies.optuna_internals import enqueued_params
from service.studies.store import BestTrial, StudyRecord
from service.studies.trials import counts_toward_budget
from workers import trial_attrs as attrs

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
    recorded = trial.user_attrs.get(attrs.DURATION_S)
    if recorded is not None:
        return float(recorded)
    if trial.datetime_start and trial.datetime_complete:
        return (trial.datetime_complete - trial.datetime_start).total_seconds()
    return None


def trial_out(trial: FrozenTrial, screening_seed: int) -> TrialOut:
    # An enqueued trial runs with the params it was enqueued with; ask() writes them one by one, so a
    # trial still waiting, or one a kill interrupted between those writes, shows the whole set.
    params = {**enqueued_params(trial), **trial.params}
    # Where it runs is written before training starts (a running trial has it too); where it ran, at the end.
    placement = trial.user_attrs.get(attrs.WORKER) or {}
    return TrialOut(
        number=trial.number,
        state=_STATE_NAMES[trial.state],
        params=params,
        fitness=trial.value if trial.state == TrialState.COMPLETE else None,
        metrics=trial.user_attrs.get(attrs.METRICS),
        epochs=[trial.intermediate_values[step] for step in sorted(trial.intermediate_values)],
        duration_s=_duration_s(trial),
        error=trial.user_attrs.get(attrs.ERROR),
        node=trial.user_attrs.get(attrs.NODE, placement.get("host")),
        node_id=trial.user_attrs.get(attrs.NODE_ID, placement.get("node_id")),
        device=trial.user_attrs.get(attrs.DEVICE),
        pid=placement.get("pid"),
        retry_of=trial.user_attrs.get(attrs.RETRY_OF),
        startup=trial.user_attrs.get(attrs.STARTUP),
        train_args=_hyp_args(trial.user_attrs.get(attrs.TRAIN_ARGS)),
        batch=trial_batch(trial),
        batch_note=trial.user_attrs.get(attrs.BATCH_NOTE),
        stage=stage_of(trial),
        confirms=trial.user_attrs.get(attrs.CONFIRMS),
        seed=trial.user_attrs.get(attrs.TRAIN_SEED, screening_seed),
    )


def trial_batch(trial: FrozenTrial) -> int | None:
    """The batch size trial ``trial`` trained with (older trials recorded it in their train_args)."""
    batch = trial.user_attrs.get(attrs.BATCH)
    if batch is None:
        batch = (trial.user_attrs.get(attrs.TRAIN_ARGS) or {}).get("batch")
    return int(batch) if batch is not None else None


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
    screening_s = _mean([d for t in done if is_screening(t) and (d := _duration_s(t)) is not None])
    confirming_s = _mean([d for t in done if not is_screening(t) and (d := _duration_s(t)) is not None])
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


def _confirmed_out(entry: ConfirmedEntry) -> ConfirmedOut:
    vs = entry.vs_baseline
    return ConfirmedOut(
        trial=entry.trial,
        params=entry.params,
        screening_fitness=entry.screening_fitness,
        fitness_by_seed=entry.fitness_by_seed,
        mean=entry.mean,
        vs_baseline=VsBaseline(mean=vs.mean, low=vs.low, high=vs.high) if vs is not None else None,
    )


def confirmation_out(result: ConfirmationResult) -> ConfirmationOut:
    return ConfirmationOut(
        finished=result.finished,
        verdict=result.verdict,
        winner=result.winner,
        baseline=_confirmed_out(result.baseline),
        candidates=[_confirmed_out(c) for c in result.candidates],
        noise_floor=result.noise_floor,
        rank_correlation=result.rank_correlation,
        epochs=result.epochs,
        seeds=result.seeds,
        trainings_done=result.trainings_done,
        trainings_total=result.trainings_total,
    )


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
    stage = None
    if record.state.unfinished:
        stage = CONFIRMATION if confirmation is not None else "screening"
    return StudyOut(
        id=record.id,
        name=record.name,
        state=record.state,
        request=record.request.model_dump(),
        counts={name: counts.get(name, 0) for name in _STATE_NAMES.values()},
        best=BestOut(fitness=best.fitness, trial=best.trial_number, params=best.params, metrics=best.metrics)
        if best
        else None,
        error=record.error,
        created_at=created,
        started_at=started,
        finished_at=finished,
        elapsed_s=elapsed,
        eta_s=_eta_s(record, trials, confirmation),
        stage=stage,
        confirmation=confirmation_out(confirmation) if confirmation is not None else None,
        waiting=waiting if record.state.unfinished else None,
        dataset_report=dataset_report,
    )
