"""Does a short training rank hyps as the long one does? The length effects the rung simulator needs.

Scratch-low and --candidates hyps drawn as the service's yolov5 sampler draws them (each 1, 2 or 3
successive mutations of scratch-low over today's default keys, as a search some generations in;
copy_paste left out: it does nothing on box labels) are trained on the generated sets at each of
--lengths epochs (a screening trial, a lower rung, the benchmark's final length) on the same
--seeds, fine-tuned as `bench/what_users_get.py --pretrained` fine-tunes (its cached weights are
reused). Per set and length it reports:

- each hyp's paired gain over scratch-low, the mean over the seeds;
- the noise: the residual sd of one training in a hyps x seeds two-way fit, and the sd of the seed
  effect every hyp shares on a seed (what pairing removes);
- the spread of the hyps' true gains: the sd of the mean gains with the noise's share taken out;
- how the gains at each length agree with those at the longest: Pearson's and Spearman's r over
  the candidates, and the correlation of the *true* gains (Pearson's r corrected for the noise in
  both, capped at 1).

summary.md says it in words; params.json carries the numbers to bench/simulate_rungs.py.

--moves FILE trains named hand-made candidates instead of sampled ones: a YAML mapping of a name to
the values it changes, YOLOv5 keys (cls: 1.0) or ultralytics-only arguments (dfl: 3.0). A value
counted in epochs can be given as a fraction of each training's length instead:
``close_mosaic_fraction: 0.67`` trains close_mosaic = round(0.67 x epochs), 2 at 3 epochs and 10 at 15
(ultralytics turns mosaic off for the last close_mosaic epochs). See bench/moves_far.yaml.

    .venv/bin/python bench/length_signal.py                                   # both sets, 3/9/15 epochs
    .venv/bin/python bench/length_signal.py --sets shapes --candidates 4 --seeds 100 101 --lengths 2 4
    .venv/bin/python bench/length_signal.py --moves bench/moves_far.yaml --lengths 3 15 --seeds 100 101 102 103 \
        --out bench/results/length_signal_far                                 # far moves of a few keys
    .venv/bin/python bench/length_signal.py --moves bench/moves_yolov5_aug.yaml --sets shapes --lengths 3 9 15 \
        --seeds 100 101 102 103 --out bench/results/length_signal_aug           # hyp.yaml augmentation keys
    .venv/bin/python bench/length_signal.py --summarize                       # redo the report from the CSV
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bench.what_users_get import GENERATED, _final, model_file, pretrain  # noqa: E402
from hyps import (  # noqa: E402
    HYP_KEYS,
    NEEDS_SEGMENTS,
    default_evolve_keys,
    load_search_space,
    load_seed_hyp,
    load_ultralytics_space,
)
from service.data.datasets import check_dataset  # noqa: E402
from service.samplers.yolov5 import mutate  # noqa: E402
from workers.training import TrialSpec  # noqa: E402

FIELDS = ["dataset", "hyp", "epochs", "seed", "fitness", "wall_s", "params"]
BASELINE = "scratch-low"
FRACTION = "_fraction"  # a move's key ending so: that key at this fraction of each training's length


def candidate_hyps(count: int, seed: int) -> dict[str, dict[str, float]]:
    """scratch-low and ``count`` candidates, candidate i being (i % 3) + 1 successive mutations."""
    start = load_seed_hyp("scratch-low")
    space = load_search_space()
    ranges = {k: space[k] for k in default_evolve_keys() if k not in NEEDS_SEGMENTS}
    rng = np.random.RandomState(seed)
    hyps = {BASELINE: dict(start)}
    for number in range(1, count + 1):
        child = {k: float(start[k]) for k in ranges}
        for _ in range(number % 3 + 1):
            child = mutate(child, ranges, rng)
        hyps[f"c{number}"] = {**start, **{k: float(v) for k, v in child.items()}}
    return hyps


def read_moves(path: Path) -> dict[str, dict[str, float]]:
    """The named moves of a --moves file, each checked against the keys a training takes."""
    moves = yaml.safe_load(path.read_text())
    known = set(HYP_KEYS) | set(load_ultralytics_space())
    if not isinstance(moves, dict) or not moves:
        raise ValueError(f"{path}: a mapping of candidate names to their changed values is needed")
    for name, change in moves.items():
        if name == BASELINE or not isinstance(change, dict) or not change:
            raise ValueError(f"{path}: {name!r} must be a new name mapping keys to values")
        unknown = sorted(k for k in change if k.removesuffix(FRACTION) not in known)
        if unknown:
            raise ValueError(f"{path}: {name!r} changes unknown keys {unknown}")
    return {str(name): {str(k): float(v) for k, v in change.items()} for name, change in moves.items()}


def training_values(values: dict[str, float], epochs: int) -> tuple[dict[str, float], dict[str, Any]]:
    """(YOLOv5 hyp, ultralytics-only arguments) of one candidate at one length: a ``*_fraction`` key
    becomes that key at round(fraction x epochs)."""
    extras: dict[str, Any] = {"close_mosaic": 0}
    hyp: dict[str, float] = {}
    space = load_ultralytics_space()
    for key, value in values.items():
        name = key.removesuffix(FRACTION)
        value = round(value * epochs) if key.endswith(FRACTION) else value
        if name in space:
            extras[name] = int(value) if space[name].integer else float(value)
        else:
            hyp[name] = value
    return hyp, extras


def train_all(args: argparse.Namespace, csv_path: Path) -> None:
    if args.moves:
        start = load_seed_hyp("scratch-low")
        hyps = {BASELINE: dict(start), **{name: {**start, **move} for name, move in read_moves(args.moves).items()}}
    else:
        hyps = candidate_hyps(args.candidates, args.hyp_seed)
    done = set()
    if csv_path.exists():  # a run that stopped goes on where it stopped
        done = {(r["dataset"], r["hyp"], int(r["epochs"]), int(r["seed"])) for r in read_rows(csv_path)}
    context = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="hypevolve-length-") as tmp,
        ProcessPoolExecutor(2, mp_context=context) as pool,
    ):
        work = Path(tmp)
        args.pretrained = True  # what model_file and pretrain read
        for name in args.sets:
            writer, imgsz = GENERATED[name]
            data_yaml = writer(work / "data" / name)
            data = check_dataset(data_yaml.parent.parent, f"{data_yaml.parent.name}/{data_yaml.name}")
            pretrain(name, args, work)
            jobs = [
                (label, epochs, seed)
                for epochs in args.lengths
                for label in hyps
                for seed in args.seeds
                if (name, label, epochs, seed) not in done
            ]
            specs = [
                TrialSpec(
                    trial_number=seed, data=data, model=str(model_file(name, args, work)), epochs=epochs,
                    imgsz=imgsz, batch=args.batch, seed=seed, hyp=hyp, ultralytics_args=extras,
                    output_dir=str(work / f"{name}-{label}-{epochs}" / str(seed)),
                )
                for label, epochs, seed in jobs
                for hyp, extras in [training_values(hyps[label], epochs)]
            ]  # fmt: skip
            started = time.monotonic()
            for (label, epochs, seed), (fitness, wall) in zip(jobs, pool.map(_final, specs), strict=True):
                row = {"dataset": name, "hyp": label, "epochs": epochs, "seed": seed, "fitness": f"{fitness:.5f}",
                       "wall_s": f"{wall:.1f}", "params": json.dumps(hyps[label])}  # fmt: skip
                append_row(csv_path, row)
                print(f"{name} {label} {epochs}ep seed {seed}: {fitness:.4f} ({wall:.0f}s)", flush=True)
            print(f"== {name}: {len(jobs)} trainings in {time.monotonic() - started:.0f}s", flush=True)


def append_row(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


# -- the report ---------------------------------------------------------------------------------


def two_way(table: np.ndarray) -> tuple[float, float]:
    """(residual sd of one training, sd of the seed effect) of a hyps x seeds table, by a two-way
    additive fit (hyp + seed effects)."""
    hyps, seeds = table.shape
    residual = table - table.mean(1, keepdims=True) - table.mean(0, keepdims=True) + table.mean()
    noise_var = float((residual**2).sum() / ((hyps - 1) * (seeds - 1)))
    seed_means = table.mean(0)
    seed_var = max(float(np.var(seed_means, ddof=1)) - noise_var / hyps, 0.0)
    return math.sqrt(noise_var), math.sqrt(seed_var)


def true_correlation(a: np.ndarray, b: np.ndarray, stats_a: dict[str, Any], stats_b: dict[str, Any]) -> float:
    """Pearson's r of two lengths' gains corrected for the noise in both (disattenuated: r over the
    square root of both reliabilities, true variance / observed variance), clipped to [-1, 1]; NaN
    where either length's true spread is 0. Assumes the two lengths' noises are independent: they
    are separate trainings, and the learning-rate schedule differs with the length from the start."""
    reliability = [s["true_gain_sd"] ** 2 / max(s["gain_sd"] ** 2, 1e-12) for s in (stats_a, stats_b)]
    denom = math.sqrt(reliability[0] * reliability[1])
    if denom <= 0:
        return math.nan
    return min(max(float(stats.pearsonr(a, b)[0]) / denom, -1.0), 1.0)


def length_stats(rows: list[dict[str, str]], name: str) -> dict[str, Any]:
    """The numbers of one set: per length the table's noise, the gains' spread, and the agreement with
    the longest length."""
    mine = [r for r in rows if r["dataset"] == name]
    lengths = sorted({int(r["epochs"]) for r in mine})
    labels = [BASELINE, *dict.fromkeys(r["hyp"] for r in mine if r["hyp"] != BASELINE)]  # as first trained
    seeds = sorted({int(r["seed"]) for r in mine})
    value = {(r["hyp"], int(r["epochs"]), int(r["seed"])): float(r["fitness"]) for r in mine}
    out: dict[str, Any] = {"lengths": lengths, "seeds": seeds, "candidates": labels[1:], "by_length": {}}
    gains: dict[int, np.ndarray] = {}
    for epochs in lengths:
        if any((h, epochs, s) not in value for h in labels for s in seeds):
            continue  # not finished
        table = np.array([[value[(h, epochs, s)] for s in seeds] for h in labels])
        noise, seed_sd = two_way(table)
        gain = (table[1:] - table[0]).mean(1)  # each candidate's mean paired gain
        gains[epochs] = gain
        # A mean paired gain over n seeds carries noise 2 sigma^2 / n (candidate and baseline each
        # sigma^2 / n); what is left of its variance is the true gains' spread.
        gain_noise_var = 2 * noise**2 / len(seeds)
        true_var = max(float(np.var(gain, ddof=1)) - gain_noise_var, 0.0)
        out["by_length"][epochs] = {
            "baseline_mean": float(table[0].mean()),
            "noise_sd": noise,
            "seed_sd": seed_sd,
            "gain_mean": float(gain.mean()),
            "gain_sd": float(np.std(gain, ddof=1)),
            "true_gain_sd": math.sqrt(true_var),
            "gain_noise_sd": math.sqrt(gain_noise_var),
            "gains": [float(g) for g in gain],
        }
    if gains:
        longest = max(gains)
        out["true_r"] = {
            f"{a}-{b}": true_correlation(gains[a], gains[b], out["by_length"][a], out["by_length"][b])
            for a in gains
            for b in gains
            if a < b
        }
        for epochs, gain in gains.items():
            entry = out["by_length"][epochs]
            mine_vs_longest = epochs != longest
            entry["pearson_vs_longest"] = float(stats.pearsonr(gain, gains[longest])[0]) if mine_vs_longest else 1.0
            entry["spearman_vs_longest"] = float(stats.spearmanr(gain, gains[longest])[0]) if mine_vs_longest else 1.0
            entry["true_r_vs_longest"] = out["true_r"][f"{epochs}-{longest}"] if mine_vs_longest else 1.0
            top = int(np.argmax(gain))
            entry["top_rank_at_longest"] = int((gains[longest] > gains[longest][top]).sum()) + 1
    return out


def candidates_text(args: argparse.Namespace) -> str:
    if args.moves:
        moves = read_moves(args.moves)
        listed = "; ".join(
            f"{name}: " + ", ".join(f"{k} {v:g}" for k, v in move.items()) for name, move in moves.items()
        )
        return f"Candidates: hand-made moves of scratch-low ({args.moves.name}): {listed}."
    return (
        f"Candidates: 1-3 successive mutations of scratch-low by the yolov5 sampler (numpy seed {args.hyp_seed}), "
        "today's default keys."
    )


def summarize(rows: list[dict[str, str]], out: Path, args: argparse.Namespace) -> None:
    names = [n for n in GENERATED if any(r["dataset"] == n for r in rows)]
    params = {name: length_stats(rows, name) for name in names}
    (out / "params.json").write_text(json.dumps(params, indent=1) + "\n")
    walls = sum(float(r["wall_s"]) for r in rows)
    lines = [
        "# Length signal: do short trainings rank hyps as the long one does?",
        "",
        f"bench/length_signal.py; {platform.machine()}, 2 cores, no GPU; {len(rows)} trainings "
        f"({walls / 60:.0f} training-minutes, two at a time). Each set fine-tunes from weights trained on "
        "the other generator's data, as `what_users_get.py --pretrained`. "
        f"{candidates_text(args)} Gains: each "
        "candidate's mean paired gain over scratch-low on the same seeds. Noise: residual sd of one training "
        "(two-way fit, hyps x seeds); seed sd: the effect every hyp shares on a seed. True-gain sd: the gains' "
        "sd less the noise's share (2 noise^2 / seeds). True r: Pearson's r with the longest length's gains "
        "corrected for the noise in both (capped at 1; with a true-gain sd near 0 it is not estimable).",
    ]
    for name, entry in params.items():
        lines += ["", f"## {name}", "", f"Seeds {entry['seeds']}; candidates {len(entry['candidates'])}.", ""]
        lines += [
            "| epochs | scratch-low | noise sd | seed sd | gain mean | gain sd | true-gain sd | Pearson r vs longest "
            "| Spearman | true r | rank at longest of this length's top |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for epochs, e in sorted(entry["by_length"].items()):
            lines.append(
                f"| {epochs} | {e['baseline_mean']:.4f} | {e['noise_sd']:.4f} | {e['seed_sd']:.4f} | "
                f"{e['gain_mean']:+.4f} | {e['gain_sd']:.4f} | {e['true_gain_sd']:.4f} | "
                f"{e.get('pearson_vs_longest', math.nan):+.2f} | {e.get('spearman_vs_longest', math.nan):+.2f} | "
                f"{e.get('true_r_vs_longest', math.nan):+.2f} | {e.get('top_rank_at_longest', '-')} of "
                f"{len(entry['candidates'])} |"
            )
        pairs = ", ".join(f"{pair} epochs {r:+.2f}" for pair, r in entry.get("true_r", {}).items())
        lines += ["", f"True r between lengths: {pairs or '-'}.", "", "Each candidate's gain by length:", ""]
        lengths = sorted(entry["by_length"])
        lines += ["| candidate | " + " | ".join(f"{n} ep" for n in lengths) + " |", "|---" * (len(lengths) + 1) + "|"]
        for i, label in enumerate(entry["candidates"]):
            cells = " | ".join(f"{entry['by_length'][n]['gains'][i]:+.4f}" for n in lengths)
            lines.append(f"| {label} | {cells} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(GENERATED), choices=list(GENERATED))
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--hyp-seed", type=int, default=0, help="numpy seed of the candidates' mutations")
    parser.add_argument("--moves", type=Path, help="named hand-made candidates (YAML) instead of sampled ones")
    parser.add_argument("--lengths", type=int, nargs="+", default=[3, 9, 15])
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    parser.add_argument("--model", default="yolov5n.yaml")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--weights-cache", type=Path, default=Path.home() / ".cache" / "hypevolve-bench")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "length_signal")
    parser.add_argument("--summarize", action="store_true", help="only redo summary.md and params.json")
    args = parser.parse_args()
    if args.moves:
        args.candidates = len(read_moves(args.moves))
    if len(args.seeds) < 2 or args.candidates < 3:
        parser.error("the noise needs 2 seeds or more, the correlations 3 candidates or more")
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / "trainings.csv"
    if not args.summarize:
        train_all(args, csv_path)
    summarize(read_rows(csv_path), args.out, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
