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
    StudyRequest,
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


def trial_out(trial: FrozenTrial, request: StudyRequest) -> TrialOut:
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
        seed=request.seed if tags.train_seed is None else tags.train_seed,
        rung=(tags.rung or 0) if tags.stage == CONFIRMATION else None,
        probe=tags.probe,
        train_epochs=_train_epochs(tags, request),
    )


def _train_epochs(tags: TrialTags, request: StudyRequest) -> int | None:
    """The length a training was planned to run (None for an imported trial: not ours to know)."""
    if tags.imported:
        return None
    if tags.epochs is not None:
        return tags.epochs
    # Older confirmation trainings recorded no length: their study's confirmation length.
    return request.confirmation_epochs() if tags.stage == CONFIRMATION else request.epochs


def _hyp_args(train_args: dict[str, object] | None) -> dict[str, object] | None:
    """The trainer's arguments a study can set: translated hyps, parity and ultralytics-only ones."""
    shown = {*HYP_ARGS, *load_ultralytics_space()}
    return {k: v for k, v in train_args.items() if k in shown} if train_args else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _eta_s(
    record: StudyRecord, trials: Sequence[FrozenTrial], planned: PlannedEpochsOut, epochs_done: int
) -> float | None:
    """Seconds left: screening trials still to run at their mean duration, then the confirmation
    epochs left (over every rung) at the seconds per epoch its trainings took so far (before any
    has run: screening's)."""
    if not record.state.unfinished:
        return 0.0 if record.state == StudyState.COMPLETED else None
    request = record.request
    screening_s: list[float] = []
    per_epoch_s: list[float] = []
    for trial in trials:
        tags = TrialTags.of(trial)
        duration = _duration_s(trial)
        if trial.state != TrialState.COMPLETE or duration is None or tags.imported:
            continue
        if tags.is_screening:
            screening_s.append(duration)
        else:
            per_epoch_s.append(duration / max(1, _train_epochs(tags, request) or request.epochs))
    if not screening_s and not per_epoch_s:
        return None
    trial_s = _mean(screening_s)
    epoch_s = _mean(per_epoch_s) or (trial_s or 0.0) / request.epochs
    finished = sum(counts_toward_budget(t) and t.state.is_finished() for t in trials)
    screening_left = max(0, request.n_trials - finished)
    confirming_left = max(0, planned.confirmation - epochs_done)
    return (screening_left * (trial_s or epoch_s * request.epochs) + confirming_left * epoch_s) / max(
        1, request.parallel
    )


def planned_epochs(record: StudyRecord, rungs: Sequence[ConfirmationResult]) -> PlannedEpochsOut:
    """The training epochs ``record``'s study plans, by stage (at most). Each confirmation rung
    planned so far counts its own trainings; each rung still to come, its planned candidates (at
    most the trials besides trial 0, and at most the rung below's) and the seed hyps on
    confirm_seeds seeds; the top rung, on its racing cap (confirm_seeds_max) of seeds."""
    request = record.request
    by_rung = {rung.rung: rung for rung in rungs}
    confirming = 0
    plans = request.rung_plans()
    # Nothing to confirm: no candidate, or completed without a rung.
    if plans[0][0] > 0 and (rungs or record.state != StudyState.COMPLETED):
        below: int | None = None  # candidates of the rung below, once counted
        for rung, (candidates, seeds, epochs) in enumerate(plans):
            if (result := by_rung.get(rung)) is not None:
                below = len(result.candidates)
                confirming += result.trainings_total * result.epochs
                if rung == request.confirm_rungs - 1 and not result.finished:  # racing may add seeds, to its cap
                    racing = sum(not c.dropped for c in result.candidates)
                    confirming += (racing + 1) * max(0, result.seed_cap - len(result.seeds)) * result.epochs
            else:
                below = candidates if below is None else min(candidates, below)
                confirming += (below + 1) * seeds * epochs
    # Without a confirmation, screening's best trains once more with its plots.
    diagnostics = request.epochs if request.diagnostics and confirming == 0 else 0
    screening = request.n_trials * request.epochs
    total = screening + confirming + diagnostics
    return PlannedEpochsOut(screening=screening, confirmation=confirming, diagnostics=diagnostics, total=total)


def confirmation_epochs_done(trials: Sequence[FrozenTrial], request: StudyRequest) -> int:
    """Epochs of the confirmation trainings that have ended (completed or failed for good)."""
    done = 0
    for trial in trials:
        tags = TrialTags.of(trial)
        if tags.stage == CONFIRMATION and trial.state.is_finished() and not tags.requeued:
            done += _train_epochs(tags, request) or 0
    return done


def _stage(record: StudyRecord, trials: Sequence[FrozenTrial], rungs: Sequence[ConfirmationResult]) -> Stage | None:
    """What an unfinished study is doing: screening, confirming (a rung is planned), or training
    screening's best with plots on (diagnostics, after a screening with nothing to confirm)."""
    if not record.state.unfinished:
        return None
    if rungs:
        return CONFIRMATION
    if any(TrialTags.of(t).stage == DIAGNOSTICS for t in trials):
        return DIAGNOSTICS
    return SCREENING


FLAT_SCREENING_TRIALS = 3  # completed screening trials, all at fitness 0, before a study says so


def screening_warnings(record: StudyRecord, trials: Sequence[FrozenTrial]) -> list[str]:
    """What the user should know of the screening's numbers: that every screening trial so far (at
    least FLAT_SCREENING_TRIALS) scored exactly 0, so the sampler and the candidates it sends to
    confirmation follow no signal, and a verdict of ``defaults`` then says nothing of the keys."""
    screened = [
        t for t in trials
        if t.state == TrialState.COMPLETE and (tags := TrialTags.of(t)).is_screening and not tags.imported
    ]  # fmt: skip
    if len(screened) < FLAT_SCREENING_TRIALS or any(t.value for t in screened):
        return []
    epochs = record.request.epochs
    return [
        f"all {len(screened)} screening trials so far scored fitness 0: trials of {epochs} epochs measure "
        "nothing on this data set (warmup alone takes min(warmup_epochs, epochs - 1) of them), so the search "
        "has no signal to follow and its candidates are chance; give the trials more epochs"
    ]


def study_out(
    record: StudyRecord,
    best: BestTrial | None,
    trials: Sequence[FrozenTrial],
    rungs: Sequence[ConfirmationResult] = (),
    waiting: str | None = None,
    dataset_report: DatasetReportOut | None = None,
) -> StudyOut:
    """``rungs``: the confirmation rungs planned so far, lowest first; the last is the top rung (the
    confirmation shown) once ``record``'s confirm_rungs are all planned."""
    top = [r for r in rungs if r.rung == record.request.confirm_rungs - 1]
    confirmation = top[0] if top else None
    planned = planned_epochs(record, rungs)
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
        eta_s=_eta_s(record, trials, planned, confirmation_epochs_done(trials, record.request)),
        planned_epochs=planned,
        stage=_stage(record, trials, rungs),
        confirmation=ConfirmationOut.model_validate(confirmation) if confirmation is not None else None,
        rungs=[ConfirmationOut.model_validate(r) for r in rungs if r is not confirmation],
        searched=list(record.plan.evolve),
        warnings=screening_warnings(record, trials),
        waiting=waiting if record.state.unfinished else None,
        dataset_report=dataset_report,
    )
