"""What the API shows of a study and its trials, built from the service's rows and Optuna's trials."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from optuna.trial import FrozenTrial, TrialState

from hyps import HYP_ARGS, load_ultralytics_space
from service.db import BestHypRow, StudyRow, utcnow
from service.schemas import BestOut, StudyOut, TrialOut
from service.studies.trials import ERROR, counts_toward_budget

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
    recorded = trial.user_attrs.get("duration_s")
    if recorded is not None:
        return float(recorded)
    if trial.datetime_start and trial.datetime_complete:
        return (trial.datetime_complete - trial.datetime_start).total_seconds()
    return None


def trial_out(trial: FrozenTrial) -> TrialOut:
    params = dict(trial.params)
    if trial.state == TrialState.WAITING:  # an enqueued trial keeps the params it will run with here
        params = dict(trial.system_attrs.get("fixed_params", {}))
    return TrialOut(
        number=trial.number,
        state=_STATE_NAMES[trial.state],
        params=params,
        fitness=trial.value if trial.state == TrialState.COMPLETE else None,
        metrics=trial.user_attrs.get("metrics"),
        epochs=[trial.intermediate_values[step] for step in sorted(trial.intermediate_values)],
        duration_s=_duration_s(trial),
        error=trial.user_attrs.get(ERROR),
        node=trial.user_attrs.get("node"),
        node_id=trial.user_attrs.get("node_id"),
        device=trial.user_attrs.get("device"),
        pid=(trial.user_attrs.get("worker") or {}).get("pid"),
        retry_of=trial.user_attrs.get("retry_of"),
        startup=trial.user_attrs.get("startup"),
        train_args=_hyp_args(trial.user_attrs.get("train_args")),
    )


def _hyp_args(train_args: dict[str, object] | None) -> dict[str, object] | None:
    """The trainer's arguments a study can set: translated hyps, parity and ultralytics-only ones."""
    shown = {*HYP_ARGS, *load_ultralytics_space()}
    return {k: v for k, v in train_args.items() if k in shown} if train_args else None


def _eta_s(row: StudyRow, trials: Sequence[FrozenTrial]) -> float | None:
    if row.state not in ("queued", "running"):
        return 0.0 if row.state == "completed" else None
    durations = [d for t in trials if t.state == TrialState.COMPLETE and (d := _duration_s(t)) is not None]
    if not durations:
        return None
    finished = sum(counts_toward_budget(t) and t.state.is_finished() for t in trials)
    remaining = max(0, row.request["n_trials"] - finished)
    parallel = max(1, min(row.request["parallel"], remaining or 1))
    return remaining * (sum(durations) / len(durations)) / parallel


def study_out(row: StudyRow, best: BestHypRow | None, trials: Sequence[FrozenTrial]) -> StudyOut:
    counts = Counter(_STATE_NAMES[t.state] for t in trials)
    started, finished = as_utc(row.started_at), as_utc(row.finished_at)
    elapsed = ((finished or utcnow()) - started).total_seconds() if started else None
    return StudyOut(
        id=row.id,
        name=row.name,
        state=row.state,
        request=row.request,
        counts={name: counts.get(name, 0) for name in _STATE_NAMES.values()},
        best=BestOut(fitness=best.fitness, trial=best.trial_number, params=best.params, metrics=best.metrics)
        if best
        else None,
        error=row.error,
        created_at=as_utc(row.created_at),
        started_at=started,
        finished_at=finished,
        elapsed_s=elapsed,
        eta_s=_eta_s(row, trials),
    )
