"""Optuna samplers by name, YOLOv5's own evolution among them."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import optuna

from hyps import KeyRange
from service.samplers.yolov5 import YOLOv5EvolutionSampler

_Builder = Callable[[int, Mapping[str, KeyRange], Mapping[str, float], Sequence[str]], optuna.samplers.BaseSampler]


def _qmc(seed: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():  # "experimental" since Optuna 3.0; chosen knowingly
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)


_BUILDERS: dict[str, _Builder] = {
    # Optuna 5's TPE default is multivariate with constant_liar, which keeps parallel workers from
    # proposing the same point while earlier trials are still running.
    "tpe": lambda seed, ranges, start, probes: optuna.samplers.TPESampler(seed=seed),
    # CMA-ES and GP start from a few finished trials; the seed trial counts as one.
    "cmaes": lambda seed, ranges, start, probes: optuna.samplers.CmaEsSampler(
        seed=seed, warn_independent_sampling=False
    ),
    "gp": lambda seed, ranges, start, probes: optuna.samplers.GPSampler(seed=seed),
    "nsga2": lambda seed, ranges, start, probes: optuna.samplers.NSGAIISampler(seed=seed),
    "qmc": lambda seed, ranges, start, probes: _qmc(seed),
    "random": lambda seed, ranges, start, probes: optuna.samplers.RandomSampler(seed=seed),
    "yolov5": lambda seed, ranges, start, probes: YOLOv5EvolutionSampler(ranges, start, seed, probes),
}

SAMPLER_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def build_sampler(
    name: str,
    seed: int,
    ranges: Mapping[str, KeyRange],
    start: Mapping[str, float],
    probe_keys: Sequence[str] = (),
) -> optuna.samplers.BaseSampler:
    """The sampler called ``name`` over ``ranges``, seeded; ``start`` is the seed trial's params
    (YOLOv5's evolution mutates it until trials complete), ``probe_keys`` the keys it probes first (the
    yolov5 sampler only: the request refuses them with another). ValueError lists the valid names."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; valid names: {', '.join(SAMPLER_NAMES)}") from None
    return builder(seed, ranges, start, probe_keys)


__all__ = ["SAMPLER_NAMES", "YOLOv5EvolutionSampler", "build_sampler"]
