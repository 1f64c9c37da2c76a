"""Names of the user attributes hypevolve keeps on Optuna trials, in one place: workers and the
controller write them, the API's views read them, and a name typed twice can drift apart."""

from __future__ import annotations

# Written by the worker before training: where the trial runs (node_id, host, pid).
WORKER = "worker"
# Written when a trial completes or is pruned (see TrialResult.user_attrs).
METRICS = "metrics"
DURATION_S = "duration_s"
DEVICE = "device"
NODE = "node"
NODE_ID = "node_id"
TRAIN_ARGS = "train_args"
STARTUP = "startup"
BATCH = "batch"  # the batch size the trainer used
BATCH_NOTE = "batch_note"  # how AutoBatch chose it
# Written when a trial fails: why, whether the service cut it short, whether its params were queued
# again (then this FAIL does not count against the study).
ERROR = "error"
INTERRUPTED = "interrupted"
REQUEUED = "requeued"
# On a retry: which trial it repeats, and how many lost-worker retries led to it.
RETRY_OF = "retry_of"
ATTEMPT = "attempt"
# On a completed trial added from a user's earlier results file: the format, the upload, the line.
IMPORTED = "imported_from"
IMPORT_BATCH = "import_batch"
IMPORT_LINE = "import_line"
# On a confirmation training: its stage ("confirmation"; screening trials carry none), the
# screening trial whose hyps it trains again, and its training seed.
STAGE = "stage"
CONFIRMS = "confirms"
TRAIN_SEED = "train_seed"
# On trial 0: the seed hyp file it is.
SEED_HYP = "seed_hyp"
