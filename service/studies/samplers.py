"""Optuna samplers by name."""

from __future__ import annotations

from collections.abc import Callable

import optuna

_BUILDERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    # Optuna 5's TPE default is multivariate with constant_liar, which keeps parallel workers from
    # proposing the same point while earlier trials are still running.
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    # CMA-ES needs a few finished trials before it moves; the seed trial counts as one.
    "cmaes": lambda seed: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
}

SAMPLER_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def build_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler called ``name``, seeded; ValueError lists the valid names for any other."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; valid names: {', '.join(SAMPLER_NAMES)}") from None
    return builder(seed)
