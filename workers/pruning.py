"""Pruners by name: stop a trial whose per-epoch fitness trails the others.

Built in the worker, where the epochs are reported: a pruned training stops at once and frees its
worker, instead of running to the end for a result nobody wants.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

_BUILDERS: dict[str, Callable[[int], optuna.pruners.BasePruner]] = {
    "none": lambda epochs: optuna.pruners.NopPruner(),
    # Compare from a third of the way in: YOLO fitness in the first epochs (warmup) says little.
    "median": lambda epochs: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=max(1, epochs // 3)),
    "hyperband": lambda epochs: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3),
    "sha": lambda epochs: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
}

PRUNER_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def build_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """The pruner called ``name`` for trials of ``epochs`` epochs; ValueError lists the valid names."""
    try:
        return _BUILDERS[name](epochs)
    except KeyError:
        raise ValueError(f"unknown pruner {name!r}; valid names: {', '.join(PRUNER_NAMES)}") from None
