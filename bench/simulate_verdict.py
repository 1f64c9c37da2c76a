"""How often the confirmation verdict says `improved`, in simulated studies where the truth is known.

Each simulated study is the confirmation stage of a real one: the seed hyps and k candidates, each
trained on the same n fresh seeds, their fitness made up as

    fitness(entry, seed) = base + gain(entry) + seed_effect(seed) + noise(entry, seed)

with a seed effect shared by every entry on a seed (what pairing removes) and noise of each
training's own. The numbers go through the service's own code (service.studies.confirmation:
confirmation_result and its verdict), as trials with the tags the runner writes. Two truths:

- null: no candidate is better (every gain 0): `improved` is a false positive. Goal: at most 5% of
  studies, for every k and n.
- one better candidate (gain delta, in units of the noise sd): how often `improved` is found with
  that candidate the winner (power), at the compute it costs ((k + 1) x n trainings).

Beside the service's verdict (Bonferroni-corrected intervals) it reports the verdict without the
correction (each candidate's own 95% interval), the rule before this benchmark.

Racing (confirm_seeds_max): every entry starts on n0 seeds; one seed at a time up to the cap, the
seed hyps and the candidates still racing train again (service.studies.confirmation.raced, as the
runner calls it). The same two truths, with the mean number of trainings each setting spent.

The noise is set from the benchmark's real trainings (bench/results/users_get/trainings.csv: the
final 15-epoch trainings of six methods on three seeds; residual sd of a two-way fit, methods x
seeds): shapes 0.020 per training with a shared seed effect of 0.015, small-objects 0.0035 and
0.002. The false-positive rate does not depend on them (the paired t-interval is scale-free); the
power does, through delta / noise sd, and is given for both sets' noise.

    .venv/bin/python bench/simulate_verdict.py [--studies 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.studies.confirmation import (  # noqa: E402
    BASELINE_TRIAL,
    ConfirmationPlan,
    ConfirmationResult,
    confirmation_result,
    paired_interval,
    raced,
)
from workers.trial_tags import CONFIRMATION, planned_attrs  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "simulate_verdict.md"
# (name, noise sd of one training, sd of the seed effect all entries share), from the real trainings.
NOISE = {"shapes": (0.020, 0.015), "small-objects": (0.0035, 0.002)}


def simulate_study(
    rng: np.random.Generator, k: int, n: int, gains: list[float], noise_sd: float, seed_sd: float, base: float = 0.2
) -> tuple[ConfirmationResult, bool]:
    """One confirmation stage with k candidates of true ``gains`` over the seed hyps, on n seeds:
    the service's result, and whether the uncorrected rule (each candidate's own 95% interval)
    would have said improved."""
    seeds = list(range(1, n + 1))
    candidates = {number: {} for number in range(1, k + 1)}
    plan = ConfirmationPlan(baseline={}, candidates=candidates, screening_fitness={}, seeds=seeds, epochs=1)
    seed_effect = rng.normal(0.0, seed_sd, n)
    trials: list[Any] = []
    values: dict[int, np.ndarray] = {}
    for number in range(k + 1):
        gain = gains[number - 1] if number else 0.0
        values[number] = base + gain + seed_effect + rng.normal(0.0, noise_sd, n)
        for seed, value in zip(seeds, values[number], strict=True):
            attrs = planned_attrs(CONFIRMATION, number, seed)
            trials.append(SimpleNamespace(state=TrialState.COMPLETE, value=float(value), user_attrs=attrs))
    result = confirmation_result(plan, trials)
    uncorrected = False
    if result.winner is not None and result.winner != BASELINE_TRIAL:
        interval = paired_interval(list(values[result.winner] - values[BASELINE_TRIAL]), 0.95)
        uncorrected = interval.low is not None and interval.low > 0
    return result, uncorrected


def simulate_race(
    rng: np.random.Generator, k: int, start: int, cap: int, gains: list[float], noise_sd: float, seed_sd: float
) -> tuple[ConfirmationResult, int]:
    """One top rung with racing from ``start`` seeds up to ``cap``: the service's final result and
    the trainings it spent. Every training's fitness is drawn up front (seed s is the s-th draw)."""
    seed_effect = rng.normal(0.0, seed_sd, cap)
    values = {
        n: 0.2 + (gains[n - 1] if n else 0.0) + seed_effect + rng.normal(0.0, noise_sd, cap) for n in range(k + 1)
    }
    return run_race(values, k, start, cap)


def run_race(values: Any, k: int, start: int, cap: int | None) -> tuple[ConfirmationResult, int]:
    """A top rung of k candidates whose trainings score ``values[entry][seed - 1]`` (entry 0 the seed
    hyps), racing from ``start`` seeds up to ``cap`` (None: no racing), through the service's own
    confirmation_result and raced: its final result and the trainings it spent."""
    candidates: dict[int, dict[str, Any]] = {number: {} for number in range(1, k + 1)}
    plan = ConfirmationPlan({}, candidates, {}, list(range(1, start + 1)), epochs=1, seed_cap=cap)
    while True:
        trials = [
            SimpleNamespace(
                state=TrialState.COMPLETE, value=float(values[n][s - 1]), user_attrs=planned_attrs(CONFIRMATION, n, s)
            )
            for n, s, _ in plan.trainings()
        ]
        result = confirmation_result(plan, trials)
        if result.finished:
            return result, len(trials)
        plan = raced(plan, result, screening_seed=0)


RACES = ((3, 3), (3, 5), (3, 8), (2, 8), (5, 5), (8, 8))  # (first seeds, cap); equal: no racing


def race_rows(rng: np.random.Generator, studies: int) -> tuple[list[str], list[str]]:
    null, power = [], []
    noise_sd, seed_sd = NOISE["shapes"]
    for k in (1, 3):
        for start, cap in RACES:
            hits = spent = 0
            for _ in range(studies):
                result, used = simulate_race(rng, k, start, cap, [0.0] * k, noise_sd, seed_sd)
                hits += result.verdict == "improved"
                spent += used
            met = "met" if hits / studies <= 0.05 else "NOT met"
            null.append(f"| {k} | {start} | {cap} | {rate(hits, studies)} ({met}) | {spent / studies:.1f} |")
    for k in (1, 3):
        for start, cap in RACES:
            cells = []
            for delta in (1.0, 2.0, 3.0):
                found = spent = 0
                for _ in range(studies):
                    gains = [delta * noise_sd] + [0.0] * (k - 1)
                    result, used = simulate_race(rng, k, start, cap, gains, noise_sd, seed_sd)
                    found += result.verdict == "improved" and result.winner == 1
                    spent += used
                cells.append(f"{rate(found, studies)}, {spent / studies:.1f}")
            power.append(f"| {k} | {start} | {cap} | " + " | ".join(cells) + " |")
    return null, power


def rate(hits: int, total: int) -> str:
    """A proportion with its 95% Wilson interval."""
    if total == 0:
        return "-"
    p, z = hits / total, 1.96
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return f"{100 * p:.1f}% [{100 * max(0.0, centre - half):.1f}, {100 * min(1.0, centre + half):.1f}]"


def null_rows(rng: np.random.Generator, studies: int) -> list[str]:
    rows = []
    noise_sd, seed_sd = NOISE["shapes"]
    for k in (1, 2, 3, 5):
        for n in (2, 3, 5, 8):
            corrected = uncorrected = 0
            for _ in range(studies):
                result, old = simulate_study(rng, k, n, [0.0] * k, noise_sd, seed_sd)
                corrected += result.verdict == "improved"
                uncorrected += old
            met = "met" if corrected / studies <= 0.05 else "NOT met"
            rows.append(f"| {k} | {n} | {rate(corrected, studies)} ({met}) | {rate(uncorrected, studies)} |")
    return rows


def power_rows(rng: np.random.Generator, studies: int) -> list[str]:
    rows = []
    for name, (noise_sd, seed_sd) in NOISE.items():
        for k in (1, 3):
            for n in (3, 5, 8):
                cells = []
                for delta in (1.0, 2.0, 3.0):
                    found = found_old = 0
                    for _ in range(studies):
                        gains = [delta * noise_sd] + [0.0] * (k - 1)
                        result, old = simulate_study(rng, k, n, gains, noise_sd, seed_sd)
                        right = result.winner == 1
                        found += result.verdict == "improved" and right
                        found_old += old and right
                    cells.append(f"{rate(found, studies)} / {rate(found_old, studies)}")
                rows.append(f"| {name} | {k} | {n} | {(k + 1) * n} | " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=2000, help="simulated studies per cell")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.monotonic()
    null = null_rows(rng, args.studies)
    power = power_rows(rng, args.studies)
    race_null, race_power = race_rows(rng, args.studies)
    noise = ", ".join(f"{name} noise sd {sd:g}, seed effect sd {seed:g}" for name, (sd, seed) in NOISE.items())
    lines = [
        "# The confirmation verdict in simulated studies (bench/simulate_verdict.py)",
        "",
        f"{args.studies} simulated studies per cell, numpy seed {args.seed}; {noise} (from the final trainings in "
        "bench/results/users_get/trainings.csv); each study through service.studies.confirmation. Rates with "
        f"95% Wilson intervals. {time.monotonic() - started:.0f} s on 2 cores.",
        "",
        "## No candidate is better: how often `improved` (goal: at most 5%)",
        "",
        "| candidates k | seeds n | service (Bonferroni, 1 - 0.05/k each) | uncorrected (95% each) |",
        "|---|---|---|---|",
        *null,
        "",
        "## One candidate better by delta x the noise sd: how often `improved` with it the winner",
        "",
        "Cells: service / uncorrected. Trainings: (k + 1) x n, each of `confirm_epochs` epochs.",
        "",
        "| noise of | k | n | trainings | delta 1 sd | delta 2 sd | delta 3 sd |",
        "|---|---|---|---|---|---|---|",
        *power,
        "",
        "## Racing at the top rung: seeds added one at a time from n0 up to the cap",
        "",
        "Intervals at 1 - 0.05 / (k x looks), looks = cap - n0 + 1; a candidate drops once its own 95% interval "
        "lies below 0; the race ends when the leader's corrected interval lies above 0. n0 = cap: no racing. "
        "Noise of shapes.",
        "",
        "### No candidate is better: how often `improved` (goal: at most 5%), and the mean trainings spent",
        "",
        "| k | n0 | cap | improved | trainings |",
        "|---|---|---|---|---|",
        *race_null,
        "",
        "### One candidate better by delta x the noise sd: how often `improved` with it the winner, mean trainings",
        "",
        "| k | n0 | cap | delta 1 sd | delta 2 sd | delta 3 sd |",
        "|---|---|---|---|---|---|",
        *race_power,
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
