"""How much signal one training gives: the paired noise of the final fitness read three ways.

The confirmation verdict compares hyps on paired seeds; its power is the gain over the paired
standard deviation (sd of the per-seed differences). This measures that sd on the benchmark's
generated data for the ways a training's fitness can be read: the last epoch's (today's, as
YOLOv5's --evolve does), the mean of the last 3 and of the last 5 epochs. Two hyp sets, scratch-low
and scratch-low with lr0 x 2 (a contrast whose true gain is unknown: what matters is the sd), each
trained on the same seeds; every training's per-epoch fitness is kept, so one set of trainings
answers every reading. Writes trainings.csv (per-epoch fitness) and summary.md to --out.

    .venv/bin/python bench/signal_per_training.py [--seeds 100 101 ... 109] [--epochs 12]
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hyps import load_seed_hyp  # noqa: E402
from service.data.datasets import check_dataset  # noqa: E402
from service.data.sample import write_sample_dataset  # noqa: E402
from service.studies.confirmation import paired_interval  # noqa: E402
from workers.training import TrialSpec, train_trial  # noqa: E402

OUT = ROOT / "bench" / "results" / "signal_per_training"
READINGS = {"last epoch": 1, "mean of last 3": 3, "mean of last 5": 5}
HYPS = {"scratch-low": {}, "lr0 x 2": {"lr0": 0.02}}


def _train(spec: TrialSpec) -> list[float]:
    return train_trial(spec).epochs


def reading(epochs: list[float], last: int) -> float:
    return statistics.fmean(epochs[-last:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(100, 110)))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hypevolve-signal-") as tmp:
        work = Path(tmp)
        # The benchmark's shapes set: the sample at half its training images, imgsz 64.
        write_sample_dataset(work / "data" / "shapes", n_train=256, n_val=64)
        data = check_dataset(work / "data", "shapes/data.yaml")
        specs = {
            (name, seed): TrialSpec(
                trial_number=seed,
                data=data,
                model="yolov5n.yaml",
                epochs=args.epochs,
                imgsz=64,
                batch=16,
                seed=seed,
                hyp={**load_seed_hyp("scratch-low"), **change},
                output_dir=str(work / name / str(seed)),
            )
            for name, change in HYPS.items()
            for seed in args.seeds
        }
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            curves = dict(zip(specs, pool.map(_train, specs.values()), strict=True))
    with (args.out / "trainings.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["dataset", "hyps", "seed", "epochs", "fitness_by_epoch"])
        for (name, seed), curve in curves.items():
            writer.writerow(["shapes", name, seed, args.epochs, json.dumps([round(v, 5) for v in curve])])
    base, other = HYPS
    rows = []
    for label, last in READINGS.items():
        a = [reading(curves[(base, s)], last) for s in args.seeds]
        b = [reading(curves[(other, s)], last) for s in args.seeds]
        diffs = [y - x for x, y in zip(a, b, strict=True)]
        interval = paired_interval(diffs)
        rows.append(
            f"| {label} | {statistics.fmean(a):.4f} | {statistics.stdev(a):.4f} | {interval.mean:+.4f} "
            f"[{interval.low:+.4f}, {interval.high:+.4f}] | {statistics.stdev(diffs):.4f} | "
            f"{abs(interval.mean) / statistics.stdev(diffs):.2f} |"
        )
    lines = [
        "# Signal per training: the paired noise of three readings of a training's fitness",
        "",
        f"bench/signal_per_training.py: shapes (256 training images, imgsz 64), yolov5n.yaml, batch 16, "
        f"{args.epochs} epochs; `{base}` and `{other}` each trained on seeds {args.seeds} (paired). "
        f"{time.monotonic() - started:.0f} s on 2 cores. Intervals: 95% Student t on the {len(args.seeds)} "
        "paired differences.",
        "",
        f"| reading | {base} mean | {base} sd across seeds | paired difference ({other} - {base}) | paired sd | "
        "|difference| / paired sd |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    (args.out / "summary.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
