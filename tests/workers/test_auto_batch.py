"""AutoBatch's batch is capped so that an epoch keeps MIN_BATCHES_PER_EPOCH batches, and the trial
says so. (AutoBatch itself runs only on a GPU: scripts/gpu_check.sh checks the cap there.)"""

from __future__ import annotations

from workers.training import MIN_BATCHES_PER_EPOCH, batch_note, capped_auto_batch


def test_autobatch_keeps_enough_batches_an_epoch() -> None:
    assert MIN_BATCHES_PER_EPOCH == 16
    # 512 images: AutoBatch's 512 (the whole set, one step an epoch) becomes 32; a smaller choice stays.
    assert capped_auto_batch(512, 512) == 32
    assert capped_auto_batch(24, 512) == 24
    # A data set smaller than the minimum still trains, one image a batch; an unknown size is not capped.
    assert capped_auto_batch(64, 10) == 1
    assert capped_auto_batch(64, 0) == 64


def test_the_note_says_when_the_cap_made_the_batch_smaller() -> None:
    assert batch_note(-1, "0", 32, auto_chose=512) == (
        "AutoBatch chose 512 for 60% of the GPU memory free at the start; capped at 32 so that an epoch has at "
        "least 16 batches"
    )
    assert batch_note(0.3, "0", 24, auto_chose=24) == (
        "AutoBatch chose 24, the largest batch for 30% of the GPU memory free at the start"
    )
    assert batch_note(16, "0", 16) is None  # a batch size the study gave
