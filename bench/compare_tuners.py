"""Benchmark: hypevolve against ultralytics' own tuner, same data, model, epochs per trial and budget.

Methods (each with several seeds, one trial at a time, on this machine):
  ultralytics   YOLO(model).tune(..., optimizer="SGD"): ultralytics' mutation-based evolution
  tpe           hypevolve with Optuna's TPE, no pruning
  tpe-hyperband hypevolve, TPE with the hyperband pruner
  yolov5        hypevolve, YOLOv5's --evolve as the sampler (hypevolve's default since this benchmark)
  yolov5-close-mosaic
                the same with fixed close_mosaic=10, ultralytics' default: mosaic off for the last 10
                epochs (so, for trials of 10 epochs or fewer, off throughout), as the tuner trains

Every method's trials are scored with YOLOv5's fitness (0.1 x mAP50 + 0.9 x mAP50-95), recomputed
from the validation metrics. Writes to bench/results/: trials.csv (every trial), best_vs_epochs.png
(best fitness against epochs trained: median and range over seeds), summary.md.

    .venv/bin/python bench/compare_tuners.py                     # the sample data set
    .venv/bin/python bench/compare_tuners.py --data path/to/data.yaml --epochs 10 --trials 30
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import ray  # noqa: E402
import ultralytics  # noqa: E402

from hyps import METRIC_NAMES, ULTRALYTICS_METRIC_COLUMNS, fitness  # noqa: E402
from service.cluster.runtime import RayLink  # noqa: E402
from service.data.sample import write_sample_dataset  # noqa: E402
from service.schemas import StudyRequest  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.studies.controller import StudyController  # noqa: E402
from workers.offline import seal_ultralytics  # noqa: E402

SERVICE_METHODS: dict[str, dict[str, Any]] = {
    "tpe": {"sampler": "tpe"},
    "tpe-hyperband": {"sampler": "tpe", "pruner": "hyperband"},
    "yolov5": {"sampler": "yolov5"},
    "yolov5-close-mosaic": {"sampler": "yolov5", "fixed": {"close_mosaic": 10}},
}
METHODS = ("ultralytics", *SERVICE_METHODS)
ULTRALYTICS_METRICS = dict(zip(METRIC_NAMES, ULTRALYTICS_METRIC_COLUMNS, strict=True))


@dataclass
class TrialRow:
    method: str
    seed: int
    trial: int
    epochs_trained: int
    wall_clock_s: float
    fitness: float | None  # None: pruned or failed


@dataclass
class RunTime:
    method: str
    seed: int
    wall_s: float
    trained_s: float  # the trainings' own time (service methods only)


# One Ray driver for every study of the run, started before the clock does (as a deployment's is).
_RAY: list[RayLink] = []


def _ray() -> RayLink:
    return _RAY[0]


def run_ultralytics(data_yaml: Path, args: argparse.Namespace, seed: int, work: Path) -> tuple[list[TrialRow], RunTime]:
    seal_ultralytics()
    from ultralytics import YOLO

    name = f"tune-{seed}"
    started = time.monotonic()
    YOLO(args.model).tune(
        data=str(data_yaml), epochs=args.epochs, iterations=args.trials, imgsz=args.imgsz, batch=args.batch,
        optimizer="SGD", seed=seed, workers=0, plots=False, save=False, val=True, verbose=False,
        project=str(work), name=name, exist_ok=True,
    )  # fmt: skip
    wall = time.monotonic() - started
    records = [json.loads(line) for line in (work / name / "tune_results.ndjson").read_text().splitlines() if line]
    rows = []
    for number, record in enumerate(records):
        datasets = [m for m in record.get("datasets", {}).values() if m]
        metrics = {ours: statistics.fmean(float(m.get(theirs, 0.0)) for m in datasets) for ours, theirs in
                   ULTRALYTICS_METRICS.items()} if datasets else {}  # fmt: skip
        rows.append(TrialRow("ultralytics", seed, number, args.epochs, wall / len(records), fitness(metrics)))
    return rows, RunTime("ultralytics", seed, wall, wall)


def run_service(
    method: str, data_root: Path, dataset: str, args: argparse.Namespace, seed: int, work: Path
) -> tuple[list[TrialRow], RunTime]:
    settings = Settings(HOME=work / f"{method}-{seed}", DATA_ROOT=data_root)  # type: ignore[call-arg]
    controller = StudyController(settings, _ray())
    request = StudyRequest(
        dataset=dataset, model=args.model, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
        n_trials=args.trials, parallel=1, seed=seed, **SERVICE_METHODS[method],
    )  # fmt: skip
    started = time.monotonic()
    study = controller.create_study(request)
    while (study := controller.views.get_study(study.id)).state in ("queued", "running"):
        time.sleep(0.5)
    wall = time.monotonic() - started
    trials = controller.views.trials(study.id)
    controller.shutdown()
    rows = [
        TrialRow(
            method, seed, t.number, len(t.epochs), t.duration_s or 0.0, t.fitness if t.state == "complete" else None
        )
        for t in trials
    ]
    return rows, RunTime(method, seed, wall, sum(r.wall_clock_s for r in rows))


def best_curve(rows: list[TrialRow]) -> list[tuple[int, float]]:
    """(cumulative epochs trained, best fitness so far) after each trial."""
    curve, epochs, best = [], 0, 0.0
    for row in sorted(rows, key=lambda r: r.trial):
        epochs += row.epochs_trained
        best = max(best, row.fitness or 0.0)
        curve.append((epochs, best))
    return curve


def epochs_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((epochs for epochs, best in curve if best >= target), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a data.yaml; default: the generated sample data set")
    parser.add_argument("--model", default="yolov5n.yaml")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--replot", action="store_true", help="redraw best_vs_epochs.png from --out/trials.csv")
    args = parser.parse_args()
    if args.replot:
        plot(read_trials(args.out / "trials.csv"), args)
        return 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="hypevolve-bench-") as tmp:
        work = Path(tmp)
        data_yaml = args.data.resolve() if args.data else write_sample_dataset(work / "data" / "shapes")
        data_root, dataset = data_yaml.parent.parent, f"{data_yaml.parent.name}/{data_yaml.name}"
        # Ray runs as a service in any deployment: start it before the clock does.
        _RAY.append(RayLink(Settings(HOME=work / "ray", DATA_ROOT=data_root)))  # type: ignore[call-arg]
        _ray().connect()
        rows: list[TrialRow] = []
        runs: list[RunTime] = []
        for seed in args.seeds:
            for method in args.methods:
                print(f"== {method}, seed {seed}", flush=True)
                if method == "ultralytics":
                    new_rows, run = run_ultralytics(data_yaml, args, seed, work)
                else:
                    new_rows, run = run_service(method, data_root, dataset, args, seed, work)
                rows += new_rows
                runs.append(run)
                best = max((r.fitness or 0.0) for r in new_rows)
                print(f"   {len(new_rows)} trials in {run.wall_s:.0f}s, best fitness {best:.4f}", flush=True)
        _ray().close()

    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "trials.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "seed", "trial", "epochs_trained", "wall_clock_s", "fitness"])
        for r in rows:
            writer.writerow([r.method, r.seed, r.trial, r.epochs_trained, f"{r.wall_clock_s:.2f}",
                             "" if r.fitness is None else f"{r.fitness:.5f}"])  # fmt: skip
    plot(rows, args)
    summarize(rows, runs, args)
    return 0


def read_trials(path: Path) -> list[TrialRow]:
    with path.open() as handle:
        return [
            TrialRow(
                r["method"],
                int(r["seed"]),
                int(r["trial"]),
                int(r["epochs_trained"]),
                float(r["wall_clock_s"]),
                float(r["fitness"]) if r["fitness"] else None,
            )
            for r in csv.DictReader(handle)
        ]


def plot(rows: list[TrialRow], args: argparse.Namespace) -> None:
    """best_vs_epochs.png: best fitness so far against epochs trained, median and range over seeds."""
    curves = {
        (m, s): best_curve([r for r in rows if r.method == m and r.seed == s]) for m in args.methods for s in args.seeds
    }
    budget = args.trials * args.epochs
    figure, ax = plt.subplots(figsize=(7, 4.5), tight_layout=True)
    grid = list(range(0, budget + 1))
    for method in args.methods:
        per_seed = []
        for seed in args.seeds:
            curve = curves[(method, seed)]
            per_seed.append([max([b for e, b in curve if e <= x] or [0.0]) for x in grid])
        median = [statistics.median(v) for v in zip(*per_seed, strict=True)]
        ax.plot(grid, median, label=method)
        ax.fill_between(
            grid,
            [min(v) for v in zip(*per_seed, strict=True)],
            [max(v) for v in zip(*per_seed, strict=True)],
            alpha=0.15,
        )
    ax.set_xlabel("epochs trained (cumulative)")
    ax.set_ylabel("best fitness so far (0.1 mAP50 + 0.9 mAP50-95)")
    setup = f"{args.model}, {args.trials} trials x {args.epochs} epochs, imgsz {args.imgsz}"
    ax.set_title(f"{setup}; median and range of {len(args.seeds)} seeds", fontsize=8)
    ax.legend()
    figure.savefig(args.out / "best_vs_epochs.png", dpi=110)


def summarize(rows: list[TrialRow], runs: list[RunTime], args: argparse.Namespace) -> None:
    curves = {
        (m, s): best_curve([r for r in rows if r.method == m and r.seed == s]) for m in args.methods for s in args.seeds
    }

    def final_best(method: str) -> list[float]:
        return [curves[(method, s)][-1][1] for s in args.seeds]

    target = statistics.median(final_best("ultralytics")) if "ultralytics" in args.methods else None
    data_text = (
        "the generated sample data set (512 train / 64 val, 96 px, 3 classes)" if args.data is None else args.data
    )
    lines = [
        "# hypevolve against ultralytics' tuner",
        "",
        f"Data: {data_text}; model {args.model}; {args.trials} trials x {args.epochs} epochs per method and seed; "
        f"imgsz {args.imgsz}, batch {args.batch}; seeds {args.seeds}; one trial at a time. "
        "Fitness: 0.1 x mAP50 + 0.9 x mAP50-95 for every method.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; Python {platform.python_version()}, "
        f"ultralytics {ultralytics.__version__}, optuna {optuna.__version__}, ray {ray.__version__}; "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        "| method | best fitness at equal budget, median [min, max] | epochs to reach the tuner's final best, median | "
        "epochs trained, median | wall-clock per trial, median s | overhead |",
        "|---|---|---|---|---|---|",
    ]
    for method in args.methods:
        finals = final_best(method)
        reach = [epochs_to_reach(curves[(method, s)], target) for s in args.seeds] if target is not None else []
        reached = [r for r in reach if r is not None]
        reach_text = (
            "-"
            if target is None
            else (
                f"{statistics.median(reached):.0f} ({len(reached)}/{len(reach)} seeds reach it)"
                if reached
                else "not reached"
            )
        )
        trained = statistics.median([curves[(method, s)][-1][0] for s in args.seeds])
        per_trial = statistics.median([r.wall_clock_s for r in rows if r.method == method])
        method_runs = [r for r in runs if r.method == method]
        overhead = (
            "-"
            if method == "ultralytics"
            else f"{statistics.median([r.wall_s / r.trained_s - 1 for r in method_runs]) * 100:.1f}%"
        )
        lines.append(
            f"| {method} | {statistics.median(finals):.4f} [{min(finals):.4f}, {max(finals):.4f}] | {reach_text} | "
            f"{trained:.0f} | {per_trial:.1f} | {overhead} |"
        )
    lines += [
        "",
        f"The ultralytics tuner's final best (median over seeds): {target:.4f}." if target is not None else "",
        "Overhead: a study's wall time over the sum of its trainings' own time, minus one (one worker): Ray start, "
        "dispatch, storage writes and the controller's polling.",
    ]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
