"""A trial's tags: written by the functions of workers.trial_tags, read back typed by TrialTags."""

from __future__ import annotations

import dataclasses

import optuna
import pytest

from workers.trial_tags import (
    CONFIRMATION,
    DIAGNOSTICS,
    TrialTags,
    failure_attrs,
    import_attrs,
    planned_attrs,
    probe_attrs,
    result_attrs,
    retry_attrs,
    seed_trial_attrs,
    worker_attrs,
)


def _trial(**attrs: object) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(value=0.5, user_attrs=attrs)


def test_what_each_writer_writes_reads_back_typed() -> None:
    attrs = {
        **planned_attrs(CONFIRMATION, 3, 17, 36, 2),
        **seed_trial_attrs("scratch-low"),
        **probe_attrs("box 0.05 -> 0.025, cls 0.5 -> 2"),
        **failure_attrs("x" * 5000, interrupted=True, requeued=True),
        **import_attrs("evolve-csv", "upload-1", 4, {"metrics/mAP50(B)": 0.5}),
        **worker_attrs({"host": "h", "node_id": "n", "pid": 7}),
        **result_attrs(metrics={"m": 1.0}, duration_s=2, device="cpu", node="h", node_id="n", batch=8,
                       batch_note=None, train_args={"lr0": 0.01}, startup={"imports_s": 1.0}),
    }  # fmt: skip
    tags = TrialTags.of(_trial(**attrs))
    assert (tags.stage, tags.confirms, tags.train_seed, tags.epochs, tags.rung) == ("confirmation", 3, 17, 36, 2)
    assert tags.seed_hyp == "scratch-low"
    assert tags.probe == "box 0.05 -> 0.025, cls 0.5 -> 2"
    # The error is kept to a few kB.
    assert tags.error == "x" * 4000
    assert (tags.interrupted, tags.requeued) == (True, True)
    assert (tags.imported_from, tags.import_batch, tags.import_line, tags.imported) == (
        "evolve-csv",
        "upload-1",
        4,
        True,
    )
    assert tags.worker == {"host": "h", "node_id": "n", "pid": 7}
    assert (tags.duration_s, tags.device, tags.batch, tags.train_args) == (2.0, "cpu", 8, {"lr0": 0.01})
    assert not tags.is_screening
    assert not tags.counts_toward_budget


def test_no_tags_is_a_screening_trial_that_counts() -> None:
    tags = TrialTags.of(_trial())
    assert tags == TrialTags()
    assert tags.is_screening
    assert tags.counts_toward_budget
    # Requeued or imported screening trials do not use the study's budget.
    assert not TrialTags.of(_trial(**failure_attrs("e", interrupted=True, requeued=True))).counts_toward_budget
    assert not TrialTags.of(_trial(**import_attrs("tune-csv", "b", 1, None))).counts_toward_budget


def test_a_retry_is_the_same_planned_training() -> None:
    first = _trial(**planned_attrs(DIAGNOSTICS, 5, 0), **failure_attrs("lost", interrupted=False, requeued=True))
    first.number = 9
    retry = TrialTags.of(_trial(**retry_attrs(first, 1)))
    assert (retry.stage, retry.confirms, retry.train_seed, retry.retry_of, retry.attempt) == ("diagnostics", 5, 0, 9, 1)
    # The failure's own tags stay with the failure.
    assert (retry.error, retry.requeued) == (None, False)
    # A screening trial's retry carries no stage: it is screening too.
    plain = _trial()
    plain.number = 2
    assert retry_attrs(plain, 0) == {"retry_of": 2, "attempt": 0}
    # A probe's retry is the same probe.
    probe = _trial(**probe_attrs("cls 0.5 -> 1"))
    probe.number = 3
    assert retry_attrs(probe, 1) == {"retry_of": 3, "attempt": 1, "probe": "cls 0.5 -> 1"}


def test_older_trials_kept_their_batch_in_the_train_args() -> None:
    assert TrialTags.of(_trial(train_args={"batch": 16})).batch == 16


def test_an_unknown_stage_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown trial stage 'rung-9'"):
        TrialTags.of(_trial(stage="rung-9"))


def test_every_field_has_a_writer() -> None:
    written = {
        **planned_attrs(CONFIRMATION, 1, 1, 1, 0),
        **seed_trial_attrs("s"),
        **probe_attrs("cls 0.5 -> 1"),
        **retry_attrs(_trial(), 1),
        **failure_attrs("e", interrupted=False, requeued=False),
        **import_attrs("f", "b", 1, {}),
        **worker_attrs({}),
        **result_attrs(metrics={}, duration_s=1, device="cpu", node=None, node_id=None, batch=None,
                       batch_note=None, train_args={}, startup={}),
    }  # fmt: skip
    # Each stored key is the field of the same name: a field nothing writes would always read its default.
    assert set(written) == {f.name for f in dataclasses.fields(TrialTags)}
