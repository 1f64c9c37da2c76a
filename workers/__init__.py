"""Where training happens: the Ray task that runs one trial, and the ultralytics training it wraps.

Imports ``hyps`` and never ``service``, so a GPU worker node needs no web stack.
"""

from __future__ import annotations

from workers.pruning import PRUNER_NAMES, build_pruner
from workers.storage import open_optuna_storage
from workers.training import TrialResult, TrialSpec, train_trial

__all__ = ["PRUNER_NAMES", "TrialResult", "TrialSpec", "build_pruner", "open_optuna_storage", "train_trial"]
