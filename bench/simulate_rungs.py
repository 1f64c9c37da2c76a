"""Which confirmation plan exports hyps that hold at the final length: whole studies, simulated at equal
compute, with the length effects measured on real trainings.

The model, per generated set, from bench/results/length_signal/params.json (bench/length_signal.py):

- a candidate's true gains over the seed hyps at the measured lengths (a trial's 3 epochs, 9, and the
  final 15) are drawn from a multivariate normal with each length's mean gain and true-gain sd and
  the true correlations between lengths; the seed hyps' gain is 0 at every length;
- one training of an entry at length L on seed s scores gain_L + seed_L(s) + noise_L, the seed
  effect shared by every entry on that seed (what pairing removes), both normal with the measured
  sds.

A simulated study has a budget of E training epochs (budget_epochs). Its plan: the rung lengths
(lowest first), the candidates each rung trains (the top rung's k, times the promotion factor per
rung below), the seeds per rung, and the top rung's racing cap. Screening gets what the plan leaves:
N trials of 3 epochs on one seed, candidates drawn independently (the yolov5 sampler's later
generations draw nearer good parents: this models its first generation only, a conservative
search). The lowest rung takes the top screening trials; each rung promotes its best candidates by
mean paired gain on seeds of its own; the top rung decides through the service's own code
(service.studies.confirmation: confirmation_result and raced, Bonferroni over k and the looks). The
export is what the service exports: the winner when the verdict is `improved` or `inconclusive`,
the seed hyps when `defaults`.

The truth is the exported hyps' true gain at the final length. Reported per set, budget and plan:
the mean true gain of the export (with its 95% interval over the simulated studies), how often the
export is worse than the seed hyps, P(`improved`), P(`improved` while the true gain is not above 0:
a contradicted verdict), and the screening trials the plan leaves. Also the same study exporting
only on `improved` (the seed hyps otherwise), and no confirmation at all (the top screening trial).

    .venv/bin/python bench/simulate_rungs.py [--studies 2000] [--seed 0] [--budgets 90 360]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.simulate_verdict import rate, run_race  # noqa: E402

PARAMS = ROOT / "bench" / "results" / "length_signal" / "params.json"
RESULTS = ROOT / "bench" / "results" / "simulate_rungs.md"
TRIAL_EPOCHS = 3


@dataclass(frozen=True)
class Plan:
    name: str
    lengths: tuple[int, ...]  # each rung's training length, the lowest first; () = no confirmation
    k: int = 1  # the top rung's candidates
    seeds: int = 2  # per rung (the top rung's first seeds when racing)
    cap: int = 0  # the top rung's racing cap; 0: no racing
    factor: int = 3  # each rung below trains factor times the candidates of the one above

    def candidates(self) -> list[int]:
        rungs = len(self.lengths)
        return [self.k * self.factor ** (rungs - 1 - r) for r in range(rungs)]

    def epochs(self) -> int:
        """Confirmation epochs planned, racing at its cap (as the service's budget counts them)."""
        total = 0
        for rung, (length, count) in enumerate(zip(self.lengths, self.candidates(), strict=True)):
            seeds = max(self.cap, self.seeds) if rung == len(self.lengths) - 1 else self.seeds
            total += (count + 1) * seeds * length
        return total


PLANS = (
    Plan("no confirmation (top screening trial)", ()),
    Plan("today: 1 rung at 9, k 1, 2 seeds", (9,), 1, 2),
    Plan("1 rung at 9, k 1, 3 seeds", (9,), 1, 3),
    Plan("1 rung at 9, k 3, 3 seeds", (9,), 3, 3),
    Plan("1 rung at 9, k 1, 2 seeds racing to 4", (9,), 1, 2, 4),
    Plan("1 rung at 15, k 1, 2 seeds", (15,), 1, 2),
    Plan("1 rung at 15, k 1, 3 seeds", (15,), 1, 3),
    Plan("1 rung at 15, k 1, 2 seeds racing to 4", (15,), 1, 2, 4),
    Plan("2 rungs 3, 9 (factor 3), k 1, 2 seeds", (3, 9), 1, 2),
    Plan("2 rungs 3, 9 (factor 3), k 1, 2 seeds racing to 3", (3, 9), 1, 2, 3),
    Plan("2 rungs 9, 15 (factor 3), k 1, 2 seeds", (9, 15), 1, 2),
    Plan("2 rungs 9, 15 (factor 2), k 1, 2 seeds", (9, 15), 1, 2, factor=2),
    Plan("3 rungs 3, 9, 15 (factor 2), k 1, 2 seeds", (3, 9, 15), 1, 2, factor=2),
    Plan("1 rung at 15, k 2, 2 seeds", (15,), 2, 2),
    Plan("2 rungs 3, 15 (factor 2), k 1, 2 seeds", (3, 15), 1, 2, factor=2),
)


class Model:
    """One set's measured length effects, as distributions to draw from."""

    def __init__(self, params: dict[str, Any]) -> None:
        by_length = {int(k): v for k, v in params["by_length"].items()}
        self.lengths = sorted(by_length)
        self.final = max(self.lengths)
        self.mean = np.array([by_length[n]["gain_mean"] for n in self.lengths])
        sds = np.array([by_length[n]["true_gain_sd"] for n in self.lengths])
        corr = np.eye(len(self.lengths))
        for i, a in enumerate(self.lengths):
            for j, b in enumerate(self.lengths):
                if a < b:
                    r = params["true_r"][f"{a}-{b}"]
                    corr[i, j] = corr[j, i] = 0.0 if math.isnan(r) else r
        self.corr = nearest_correlation(corr)
        self.cov = np.outer(sds, sds) * self.corr
        self.noise = {n: by_length[n]["noise_sd"] for n in self.lengths}
        self.seed_sd = {n: by_length[n]["seed_sd"] for n in self.lengths}

    def candidates(self, rng: np.random.Generator, count: int) -> dict[int, np.ndarray]:
        """True gains by length (index into self.lengths) of ``count`` candidates."""
        draws = rng.multivariate_normal(self.mean, self.cov, size=count, method="eigh")
        return {length: draws[:, i] for i, length in enumerate(self.lengths)}

    def trainings(self, rng: np.random.Generator, gains: np.ndarray, length: int, seeds: int) -> np.ndarray:
        """Fitness of the seed hyps (row 0, gain 0) and each candidate (``gains``) on ``seeds`` seeds."""
        true = np.concatenate([[0.0], gains])[:, None]
        seed_effect = rng.normal(0.0, self.seed_sd[length], seeds)[None, :]
        return 0.3 + true + seed_effect + rng.normal(0.0, self.noise[length], (len(true), seeds))


def nearest_correlation(corr: np.ndarray) -> np.ndarray:
    """``corr`` with negative eigenvalues clipped, rescaled to a unit diagonal: separately estimated
    correlations need not form a valid matrix together."""
    values, vectors = np.linalg.eigh(corr)
    fixed = vectors @ np.diag(np.clip(values, 1e-6, None)) @ vectors.T
    scale = np.sqrt(np.diag(fixed))
    return fixed / np.outer(scale, scale)


def top_rung(values: np.ndarray, k: int, seeds: int, cap: int) -> tuple[str, int | None]:
    """The service's verdict and winner (index into ``values``' rows, 0 the seed hyps) for a top rung
    whose trainings score ``values`` (entries x cap seeds, drawn up front; seed s is column s - 1)."""
    result, _ = run_race(values, k, seeds, cap or None)
    return str(result.verdict), result.winner


def simulate(rng: np.random.Generator, model: Model, plan: Plan, budget: int) -> tuple[str, float] | None:
    """One study: its verdict and its export's true gain at the final length; None when the plan does
    not fit the budget with at least its lowest rung's candidates screened."""
    screening = (budget - plan.epochs()) // TRIAL_EPOCHS
    counts = plan.candidates()
    if screening < max(counts[:1] or [1]):
        return None
    gains = model.candidates(rng, screening)
    first = model.lengths.index(TRIAL_EPOCHS) if TRIAL_EPOCHS in model.lengths else 0
    observed = gains[model.lengths[first]] + rng.normal(0.0, model.noise[model.lengths[first]], screening)
    alive = np.argsort(-observed)  # candidate indices, best screening first
    if not plan.lengths:
        return "none", float(gains[model.final][alive[0]])
    for rung, (length, count) in enumerate(zip(plan.lengths, counts, strict=True)):
        alive = alive[:count]
        top = rung == len(plan.lengths) - 1
        seeds = max(plan.cap, plan.seeds) if top else plan.seeds
        values = model.trainings(rng, gains[length][alive], length, seeds)
        if top:
            verdict, winner = top_rung(values, len(alive), plan.seeds, plan.cap)
            exported = 0.0 if verdict == "defaults" or winner is None else float(gains[model.final][alive[winner - 1]])
            return verdict, exported
        paired = (values[1:] - values[0]).mean(1)
        alive = alive[np.argsort(-paired, kind="stable")]
    raise AssertionError("unreachable: the top rung returns")


def cell(rng: np.random.Generator, model: Model, plan: Plan, budget: int, studies: int) -> list[str] | None:
    outcomes = [simulate(rng, model, plan, budget) for _ in range(studies)]
    if any(o is None for o in outcomes):
        return None
    verdicts = [o[0] for o in outcomes if o is not None]
    gains = np.array([o[1] for o in outcomes if o is not None])
    only_improved = np.where(np.array(verdicts) == "improved", gains, 0.0)
    improved = sum(v == "improved" for v in verdicts)
    contradicted = sum(v == "improved" and g <= 0 for v, g in zip(verdicts, gains, strict=True))
    worse = int((gains < 0).sum())
    screening = (budget - plan.epochs()) // TRIAL_EPOCHS

    def mean_ci(x: np.ndarray) -> str:
        half = 1.96 * float(np.std(x, ddof=1)) / math.sqrt(len(x))
        return f"{x.mean():+.4f} [{x.mean() - half:+.4f}, {x.mean() + half:+.4f}]"

    return [
        plan.name,
        str(screening),
        mean_ci(gains),
        rate(worse, studies),
        rate(improved, studies) if plan.lengths else "-",
        rate(contradicted, studies) if plan.lengths else "-",
        mean_ci(only_improved) if plan.lengths else "-",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=2000, help="simulated studies per cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budgets", type=int, nargs="+", default=[90, 360], help="budget_epochs of a study")
    parser.add_argument("--params", type=Path, default=PARAMS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    params = json.loads(args.params.read_text())
    rng = np.random.default_rng(args.seed)
    started = time.monotonic()
    lines = [
        "# Which confirmation plan exports hyps that hold at the final length (bench/simulate_rungs.py)",
        "",
        f"{args.studies} simulated studies per cell, numpy seed {args.seed}; the length effects of each set from "
        f"{args.params.relative_to(ROOT) if args.params.is_relative_to(ROOT) else args.params} (real trainings, "
        "bench/length_signal.py). Trials of 3 epochs; the truth is the export's true gain at the final length. "
        "Gain: the export's mean true gain over the seed hyps (95% interval over the simulated studies); worse: "
        "how often the export is worse than the seed hyps; contradicted: `improved` while the true gain is not above "
        "0; export only if improved: the same studies exporting the seed hyps unless the verdict is `improved`. "
        "Rates with 95% Wilson intervals. A plan that does not fit the budget, or has a rung at a length the "
        "length-signal run did not train, is left out.",
    ]
    for name, entry in params.items():
        model = Model(entry)
        lines += [
            "",
            f"## {name}",
            "",
            "Model: mean true gain by length "
            + ", ".join(f"{n} ep {m:+.4f}" for n, m in zip(model.lengths, model.mean, strict=True))
            + "; true-gain sd "
            + ", ".join(f"{n} ep {math.sqrt(model.cov[i, i]):.4f}" for i, n in enumerate(model.lengths))
            + "; noise sd "
            + ", ".join(f"{n} ep {model.noise[n]:.4f}" for n in model.lengths)
            + "; true correlation with the final length "
            + ", ".join(f"{n} ep {model.corr[i, -1]:+.2f}" for i, n in enumerate(model.lengths[:-1]))
            + ".",
        ]
        for budget in args.budgets:
            lines += [
                "",
                f"### budget {budget} epochs",
                "",
                "| plan | screening trials | gain of the export | worse | improved | contradicted "
                "| export only if improved |",
                "|---|---|---|---|---|---|---|",
            ]
            for plan in PLANS:
                if not set(plan.lengths) <= set(model.lengths):
                    continue  # a rung length the length-signal run did not train
                row = cell(rng, model, plan, budget, args.studies)
                if row is not None:
                    lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"{time.monotonic() - started:.0f} s on 2 cores."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
