"""What hypevolve keeps on an Optuna trial beside its params and values, typed, in one place.

Optuna gives a trial a bag of JSON "user attributes". Every one hypevolve writes is named here, read
back through ``TrialTags.of`` (once per trial, with its types) and written through the functions
below, so no caller spells a key or casts a value of its own. Workers write a result's tags and
where a trial runs; the service writes the rest. The keys are the stored format: renaming one
makes older studies unreadable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

# What a training is for. screening: a trial the sampler proposed (or trial 0, a retry of either,
# or a trial imported from a results file); confirmation: a candidate or the seed hyps trained
# again on a fresh seed, for its rung's length (``TrialTags.rung``, ``TrialTags.epochs``);
# diagnostics: screening's best trained once more with ultralytics' plots on.
Stage = Literal["screening", "confirmation", "diagnostics"]
STAGES: tuple[Stage, ...] = get_args(Stage)
SCREENING: Stage = "screening"
CONFIRMATION: Stage = "confirmation"
DIAGNOSTICS: Stage = "diagnostics"

# The stored keys. Planned when a training is enqueued:
_STAGE = "stage"  # absent on screening trials
_CONFIRMS = "confirms"  # the trial whose hyps a confirmation or diagnostics training trains again
_TRAIN_SEED = "train_seed"
_EPOCHS = "epochs"  # the length a confirmation training was planned with (absent: the stage's default)
_RUNG = "rung"  # a confirmation training's rung, 0 the shortest (absent: 0, a study of one rung)
_SEED_HYP = "seed_hyp"  # on trial 0: the seed hyp file it is
# Written by the yolov5 sampler on a probe (a study's probe_keys): the move it made from the seed hyps.
_PROBE = "probe"
# On a retry: which trial it repeats, and how many lost-worker retries led to it.
_RETRY_OF = "retry_of"
_ATTEMPT = "attempt"
# On a failure: why, whether the service cut it short, whether its params were queued again (then
# this FAIL does not count against the study).
_ERROR = "error"
_INTERRUPTED = "interrupted"
_REQUEUED = "requeued"
# On a completed trial added from a user's earlier results file: the format, the upload, the line.
_IMPORTED = "imported_from"
_IMPORT_BATCH = "import_batch"
_IMPORT_LINE = "import_line"
# Written by the worker before training: where the trial runs (node_id, host, pid).
_WORKER = "worker"
# Written when a trial completes or is pruned.
_METRICS = "metrics"
_DURATION_S = "duration_s"
_DEVICE = "device"
_NODE = "node"
_NODE_ID = "node_id"
_TRAIN_ARGS = "train_args"
_STARTUP = "startup"
_BATCH = "batch"  # the batch size the trainer used
_BATCH_NOTE = "batch_note"  # how AutoBatch chose it

_ERROR_LIMIT = 4000


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class TrialTags:
    """Everything hypevolve recorded on one trial, typed. Defaults are what an absent key means."""

    stage: Stage = SCREENING
    confirms: int | None = None
    train_seed: int | None = None
    epochs: int | None = None
    rung: int | None = None
    seed_hyp: str | None = None
    probe: str | None = None
    retry_of: int | None = None
    attempt: int = 0
    error: str | None = None
    interrupted: bool = False
    requeued: bool = False
    imported_from: str | None = None
    import_batch: str | None = None
    import_line: int | None = None
    worker: dict[str, Any] | None = None
    metrics: dict[str, float] | None = None
    duration_s: float | None = None
    device: str | None = None
    node: str | None = None
    node_id: str | None = None
    train_args: dict[str, Any] | None = None
    startup: dict[str, float] | None = None
    batch: int | None = None
    batch_note: str | None = None

    @classmethod
    def of(cls, trial: FrozenTrial | optuna.Trial) -> TrialTags:
        """The tags of ``trial``, read once."""
        return cls.from_attrs(trial.user_attrs)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> TrialTags:
        stage = attrs.get(_STAGE, SCREENING)
        if stage not in STAGES:
            raise ValueError(f"unknown trial stage {stage!r}; one of {', '.join(STAGES)}")
        duration = attrs.get(_DURATION_S)
        train_args = attrs.get(_TRAIN_ARGS)
        batch = attrs.get(_BATCH)
        if batch is None and isinstance(train_args, dict):  # older trials kept it in their train args only
            batch = train_args.get("batch")
        return cls(
            stage=stage,
            confirms=_int(attrs.get(_CONFIRMS)),
            train_seed=_int(attrs.get(_TRAIN_SEED)),
            epochs=_int(attrs.get(_EPOCHS)),
            rung=_int(attrs.get(_RUNG)),
            seed_hyp=attrs.get(_SEED_HYP),
            probe=attrs.get(_PROBE),
            retry_of=_int(attrs.get(_RETRY_OF)),
            attempt=int(attrs.get(_ATTEMPT, 0)),
            error=attrs.get(_ERROR),
            interrupted=bool(attrs.get(_INTERRUPTED, False)),
            requeued=bool(attrs.get(_REQUEUED, False)),
            imported_from=attrs.get(_IMPORTED),
            import_batch=attrs.get(_IMPORT_BATCH),
            import_line=_int(attrs.get(_IMPORT_LINE)),
            worker=attrs.get(_WORKER),
            metrics=attrs.get(_METRICS),
            duration_s=None if duration is None else float(duration),
            device=attrs.get(_DEVICE),
            node=attrs.get(_NODE),
            node_id=attrs.get(_NODE_ID),
            train_args=train_args,
            startup=attrs.get(_STARTUP),
            batch=_int(batch),
            batch_note=attrs.get(_BATCH_NOTE),
        )

    @property
    def is_screening(self) -> bool:
        return self.stage == SCREENING

    @property
    def imported(self) -> bool:
        return self.imported_from is not None

    @property
    def counts_toward_budget(self) -> bool:
        """Whether the trial used one of the study's ``n_trials`` (once it has left the queue):
        screening, not requeued, not imported; the other stages have budgets of their own."""
        return self.is_screening and not self.requeued and not self.imported

    def plan(self) -> dict[str, Any]:
        """The planned tags of this training (stage, entry, seed, length, rung, probe), as stored: what a
        retry of it is enqueued with, so that it is the same training."""
        planned: dict[str, Any] = {_STAGE: None if self.is_screening else self.stage, _CONFIRMS: self.confirms}
        planned |= {_TRAIN_SEED: self.train_seed, _EPOCHS: self.epochs, _RUNG: self.rung, _PROBE: self.probe}
        return {key: value for key, value in planned.items() if value is not None}


def write_tags(storage: BaseStorage, trial_id: int, attrs: Mapping[str, Any]) -> None:
    """Store ``attrs`` (made by the functions below) on the trial with storage id ``trial_id``."""
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)


def planned_attrs(
    stage: Stage, confirms: int, train_seed: int, epochs: int | None = None, rung: int | None = None
) -> dict[str, Any]:
    """The tags of a training enqueued by a stage after screening."""
    return TrialTags(stage=stage, confirms=confirms, train_seed=train_seed, epochs=epochs, rung=rung).plan()


def seed_trial_attrs(seed_hyp: str) -> dict[str, Any]:
    """The tags of trial 0, the seed hyp file itself."""
    return {_SEED_HYP: seed_hyp}


def probe_attrs(label: str) -> dict[str, Any]:
    """The tag of a probe: the move it made from the seed hyps, e.g. 'cls 0.5 -> 1'."""
    return {_PROBE: label}


def retry_attrs(of: FrozenTrial, attempt: int) -> dict[str, Any]:
    """The tags of a retry of trial ``of``: the same planned training, and which retry it is."""
    return {_RETRY_OF: of.number, _ATTEMPT: attempt, **TrialTags.of(of).plan()}


def failure_attrs(error: str, *, interrupted: bool, requeued: bool) -> dict[str, Any]:
    """The tags of a trial ended as FAIL (the error is cut to a few kB)."""
    return {_ERROR: error[:_ERROR_LIMIT], _INTERRUPTED: interrupted, _REQUEUED: requeued}


def requeued_attrs() -> dict[str, Any]:
    """The tag that gives a standing failure another run: it stops counting."""
    return {_REQUEUED: True}


def import_attrs(fmt: str, batch: str, line: int, metrics: dict[str, float] | None) -> dict[str, Any]:
    """The tags of a completed trial imported from line ``line`` of upload ``batch``."""
    return {_IMPORTED: fmt, _IMPORT_BATCH: batch, _IMPORT_LINE: line, _METRICS: metrics}


def worker_attrs(where: dict[str, Any]) -> dict[str, Any]:
    """Where a trial runs, written by its worker before training."""
    return {_WORKER: where}


def result_attrs(
    *,
    metrics: dict[str, float],
    duration_s: float,
    device: str,
    node: str | None,
    node_id: str | None,
    batch: int | None,
    batch_note: str | None,
    train_args: dict[str, Any] | None = None,
    startup: dict[str, float] | None = None,
) -> dict[str, Any]:
    """What a completed or pruned training records (train args and startup only when it completed)."""
    attrs: dict[str, Any] = {
        _METRICS: metrics,
        _DURATION_S: duration_s,
        _DEVICE: device,
        _NODE: node,
        _NODE_ID: node_id,
        _BATCH: batch,
        _BATCH_NOTE: batch_note,
    }
    if train_args is not None:
        attrs[_TRAIN_ARGS] = train_args
    if startup is not None:
        attrs[_STARTUP] = startup
    return attrs
