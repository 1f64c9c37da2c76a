"""Benchmark what a user gets: each method's exported hyps, trained longer, on fresh seeds.

For each data set, each method searches (or not), exports one hyp set, and that hyp set is then
trained ``--final-epochs`` epochs (default 5 x the trial epochs) on ``--final-seeds`` (none of them
a search seed). Reported: mean final fitness with a 95% t-interval, the paired difference to
scratch-low's final trainings (same final seeds), and the training epochs each method spent
searching (confirmation included).

Methods (every searching one at the same training epochs: the service's budget_epochs, the
epochs today's default plans for --trials screening trials; the tuner as many iterations):
  scratch-low          YOLOv5's hyp.scratch-low.yaml untouched: the reference (no search)
  scratch-low-cm10     the same with close_mosaic 10 (ultralytics' default) in the final trainings: what
                       that one length-counting key does alone (no search)
  hypevolve            the service with its confirmation stage (--confirm-top-k, --confirm-seeds,
                       --confirm-epochs), exporting the confirmed winner: the default before probes (one
                       rung, key_set yolov5-v7.0, probe_keys [])
  hypevolve-aug        the same with YOLOv5's current key set (key_set augmentation) and no rungs
  hypevolve-rungs      the same with 2 rungs (confirm_rungs 2)
  hypevolve-race       the same racing from --confirm-seeds up to --race-cap seeds
  hypevolve-new        augmentation keys, 2 rungs and racing together: a candidate new default
  hypevolve-ul         the default before probes naming the tuner's ultralytics-only keys too (evolve: the v7.0 keys
                       that act on box labels, plus dfl, bgr, cutmix and close_mosaic): the tuner's space
  hypevolve-probe      the same probing the loss gains first (probe_keys box, cls: each doubled, then
                       halved, then on along the winning way and combined, one screening trial each,
                       before evolution): the default before mosaic
  hypevolve-probe-mosaic  that default probing mosaic too (probe_keys box, cls, mosaic: mosaic halved,
                       then on down while it wins; bench/results/length_signal_aug, _mosaic)
  hypevolve-confirm-mosaic  the same with mosaic's best probe confirmed whatever its screening rank
                       (confirm_probe_keys mosaic; confirm_top_k at least 2, the top screening trial
                       keeping the other place): the default before the first probes' combination
  hypevolve-combine    the same request since the sampler combines the first probes' winners too (one
                       probe, ahead of the lines' next moves): today's default (with confirm_top_k 2 or
                       more). The earlier probe methods run with this sampler now too.
                       (bench/results/users_get_combine_in_place: the same while that combination could
                       also take mosaic's confirmation place, relabelled hypevolve-combine-in-place.)
  hypevolve-noconf     the service without confirmation (confirm_top_k 0), as many screening trials
                       as fit the same epochs, exporting the top screening trial
  tuner                ultralytics' YOLO.tune (optimizer SGD), as many iterations as fit the same
                       epochs; its best_hyperparameters.yaml (it searches close_mosaic itself)
  *-cm10               the same with the trials' close_mosaic fixed at 10 (ultralytics' default)

--ablate: after each tuner search, its export is also trained with one group of keys at a time put
back to scratch-low's values (close_mosaic; the optimizer keys; the loss gains; the augmentation
keys, bgr and cutmix included), as methods tuner-minus-<group>: what each group of the tuner's
changes is worth at the final length. Every method's whole export is kept in exports.jsonl.

Each searching method runs once per --search-seeds seed; scratch-low's final trainings are shared.
Reported per method: the gain over scratch-low pooled over search seeds (each search's mean paired
gain on the final seeds, then a t-interval over the searches), each study's verdict beside what its
final trainings showed (an `improved` whose export then does not beat scratch-low is contradicted),
and the epochs spent. Fitness everywhere: 0.1 x mAP50 + 0.9 x mAP50-95 of the last epoch. Writes to
--out: trainings.csv (every search trial and final training), summary.md, final_fitness.png.

--pretrained: every study, tuner and final training of a generated set fine-tunes from weights
trained 40 epochs on the *other* generator's data (seed 7, twice the training images; made once
and kept in --weights-cache), as most users fine-tune: from scratch, these sets score fitness 0 in
every trial of a few epochs and no search has a signal.

    .venv/bin/python bench/what_users_get.py                       # both generated data sets
    .venv/bin/python bench/what_users_get.py --data path/to/data.yaml --epochs 10 --trials 30
    .venv/bin/python bench/what_users_get.py --pretrained --search-seeds 0 1 2   # fine-tuned from other data
    .venv/bin/python bench/what_users_get.py --summarize           # redo summary and plot from the CSV
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
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
import yaml  # noqa: E402

from bench.small_objects import write_small_objects_dataset  # noqa: E402
from hyps import (  # noqa: E402
    AUGMENTATION_KEYS,
    NEEDS_SEGMENTS,
    default_evolve_keys,
    hyp_train_args,
    load_seed_hyp,
    load_ultralytics_space,
    ultralytics_only,
    ultralytics_only_defaults,
    untranslate_args,
)
from service.cluster.runtime import RayLink  # noqa: E402
from service.data.datasets import check_dataset  # noqa: E402
from service.data.sample import write_sample_dataset  # noqa: E402
from service.schemas import StudyRequest  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.studies.confirmation import paired_interval  # noqa: E402
from service.studies.controller import StudyController  # noqa: E402
from workers.offline import seal_ultralytics  # noqa: E402
from workers.training import TrialSpec, train_trial  # noqa: E402

METHODS = (
    "scratch-low",
    "scratch-low-cm10",
    "hypevolve",
    "hypevolve-cm10",
    "hypevolve-aug",
    "hypevolve-rungs",
    "hypevolve-race",
    "hypevolve-new",
    "hypevolve-ul",
    "hypevolve-probe",
    "hypevolve-probe-mosaic",
    "hypevolve-confirm-mosaic",
    "hypevolve-combine",
    "hypevolve-noconf",
    "hypevolve-noconf-cm10",
    "tuner",
)
CONFIRM_MOSAIC = ("confirm-mosaic", "combine")  # variants confirming mosaic's best probe
GENERATED = {
    # name: (writer, imgsz). The shapes set at half the sample's training images: a final training
    # then takes about a minute on 2 cores.
    "shapes": (partial(write_sample_dataset, n_train=256, n_val=64), 64),
    "small-objects": (write_small_objects_dataset, 96),
}
# --pretrained: each generated set fine-tunes from weights trained on the *other* generator (another
# seed, twice its training images), as a user fine-tunes from weights trained on other data.
# From scratch these sets learn nothing measurable in a 3-epoch trial (every trial scores 0).
PRETRAIN_FROM = {"shapes": "small-objects", "small-objects": "shapes"}
PRETRAIN_SEED, PRETRAIN_EPOCHS = 7, 40
PRETRAIN_SETS = {
    "shapes": partial(write_sample_dataset, n_train=512, n_val=64, seed=PRETRAIN_SEED),
    "small-objects": partial(write_small_objects_dataset, n_train=384, n_val=48, seed=PRETRAIN_SEED),
}
# --ablate: the groups of keys put back to scratch-low's values one at a time in the tuner's export.
ABLATION_GROUPS = {
    "close_mosaic": ("close_mosaic",),
    "optimizer": ("lr0", "lrf", "momentum", "weight_decay", "warmup_epochs", "warmup_momentum", "warmup_bias_lr"),
    "loss": ("box", "cls", "dfl"),
    "augmentation": (*AUGMENTATION_KEYS, "bgr", "cutmix"),
}
FIELDS = ["dataset", "method", "stage", "seed", "epochs", "fitness", "wall_s", "note", "search_seed"]


@dataclass
class Row:
    dataset: str
    method: str
    stage: str  # search | final
    seed: int
    epochs: int
    fitness: float | None
    wall_s: float
    note: str = ""
    search_seed: int = 0  # the search the row belongs to (scratch-low's finals: 0, shared by all)


# One Ray driver for every study of the run, started before the clock does (as a deployment's is).
_RAY: list[RayLink] = []


def _ray() -> RayLink:
    return _RAY[0]


def append_rows(path: Path, rows: list[Row]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        if new:
            writer.writeheader()
        for row in rows:
            values = asdict(row)
            values["fitness"] = "" if row.fitness is None else f"{row.fitness:.5f}"
            values["wall_s"] = f"{row.wall_s:.1f}"
            writer.writerow(values)


def read_rows(path: Path) -> list[Row]:
    with path.open() as handle:
        return [
            Row(
                r["dataset"],
                r["method"],
                r["stage"],
                int(r["seed"]),
                int(r["epochs"]),
                float(r["fitness"]) if r["fitness"] else None,
                float(r["wall_s"]),
                r["note"],
                int(r.get("search_seed") or 0),  # older files ran one search, at seed 0
            )
            for r in csv.DictReader(handle)
        ]


def model_of(name: str, args: argparse.Namespace) -> str:
    """What a study of set ``name`` names as its model: the pretrained weights' file name in the weights
    folder with --pretrained, else --model."""
    return f"pretrained-on-{PRETRAIN_FROM[name]}.pt" if args.pretrained else args.model


def model_file(name: str, args: argparse.Namespace, work: Path) -> Path | str:
    return work / "weights" / model_of(name, args) if args.pretrained else args.model


def pretrain(name: str, args: argparse.Namespace, work: Path) -> None:
    """The weights set ``name`` fine-tunes from (--pretrained): --model trained PRETRAIN_EPOCHS epochs on
    the other generator's PRETRAIN_SETS data, once; kept in --weights-cache between runs (the same
    arguments give the same data and, on CPU, the same weights)."""
    target = work / "weights" / model_of(name, args)
    target.parent.mkdir(parents=True, exist_ok=True)
    cached = args.weights_cache / f"{target.stem}-{PRETRAIN_EPOCHS}ep-seed{PRETRAIN_SEED}.pt"
    if not cached.exists():
        source = PRETRAIN_FROM[name]
        data_yaml = PRETRAIN_SETS[source](work / "data-pretrain" / source)
        started = time.monotonic()
        result = train_trial(
            TrialSpec(
                trial_number=0, data=check_dataset(data_yaml.parent.parent, f"{source}/{data_yaml.name}"),
                model=args.model, epochs=PRETRAIN_EPOCHS, imgsz=GENERATED[source][1], batch=args.batch, seed=0,
                hyp=load_seed_hyp("scratch-low"), output_dir=str(work / f"pretrain-{source}"),
            )
        )  # fmt: skip
        args.weights_cache.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / f"pretrain-{source}" / "weights" / "last.pt", cached)
        print(f"pretrained on {source}: fitness {result.fitness:.4f} in {time.monotonic() - started:.0f}s", flush=True)
    shutil.copy(cached, target)


# -- the searches -----------------------------------------------------------------------------


def search_budget(args: argparse.Namespace) -> int:
    """Epochs every searching method is given: --budget, or what today's default plans for --trials
    screening trials (screening plus (top_k + baseline) x seeds x confirm epochs)."""
    if args.budget:
        return int(args.budget)
    confirm_epochs = args.confirm_epochs or 3 * args.epochs
    return args.trials * args.epochs + (args.confirm_top_k + 1) * args.confirm_seeds * confirm_epochs


def run_service(
    method: str, name: str, data_root: Path, dataset: str, imgsz: int, args: argparse.Namespace, work: Path,
    search_seed: int,
) -> tuple[dict[str, Any], list[Row]]:  # fmt: skip
    """One study; returns the exported ultralytics train arguments and a row per training."""
    settings = Settings(  # type: ignore[call-arg]
        HOME=work / f"{name}-{method}-{search_seed}", DATA_ROOT=data_root, WEIGHTS_DIR=work / "weights"
    )
    controller = StudyController(settings, _ray())
    confirm = not method.startswith("hypevolve-noconf")
    variant = method.removeprefix("hypevolve").removeprefix("-")
    request = StudyRequest(
        dataset=dataset, model=model_of(name, args), epochs=args.epochs, imgsz=imgsz, batch=args.batch,
        budget_epochs=search_budget(args), parallel=2, seed=search_seed,
        confirm_top_k=(max(args.confirm_top_k, 2) if variant in CONFIRM_MOSAIC else args.confirm_top_k)
        if confirm else 0,
        confirm_seeds=args.confirm_seeds,
        confirm_epochs=args.confirm_epochs, fixed={"close_mosaic": 10} if method.endswith("-cm10") else {},
        key_set="augmentation" if variant in ("aug", "new") else "yolov5-v7.0",
        evolve=[k for k in default_evolve_keys() if k not in NEEDS_SEGMENTS] + list(load_ultralytics_space())
        if variant == "ul" else None,
        confirm_rungs=2 if variant in ("rungs", "new") else 1,
        confirm_seeds_max=args.race_cap if variant in ("race", "new") else None,
        probe_keys={"probe": ["box", "cls"], "probe-mosaic": ["box", "cls", "mosaic"],
                    **{key: ["box", "cls", "mosaic"] for key in CONFIRM_MOSAIC}}.get(variant, []),
        confirm_probe_keys=["mosaic"] if variant in CONFIRM_MOSAIC else [],
    )  # fmt: skip
    study = controller.create_study(request)
    while (study := controller.views.get_study(study.id)).state in ("queued", "running"):
        time.sleep(1)
    trials = controller.views.trials(study.id)
    exported = yaml.safe_load(controller.views.args_yaml(study.id)[0])
    header = [line for line in controller.views.hyp_yaml(study.id)[0].splitlines() if line.startswith("# verdict")]
    controller.shutdown()
    verdict = study.confirmation.verdict if study.confirmation else "none"
    rows = [
        Row(
            name,
            method,
            f"search-{t.stage}",
            t.seed or 0,
            len(t.epochs),
            t.fitness,
            t.duration_s or 0.0,
            f"trial {t.number}",
            search_seed,
        )
        for t in trials
        if t.state in ("complete", "pruned")
    ]
    note = f"{verdict}; {' '.join(header)[:300]}"
    rows.append(Row(name, method, "verdict", search_seed, 0, None, 0.0, note, search_seed))
    return exported, rows


def run_tuner(
    name: str, data_yaml: Path, imgsz: int, args: argparse.Namespace, work: Path, search_seed: int
) -> tuple[dict[str, Any], list[Row]]:
    seal_ultralytics()
    from ultralytics import YOLO

    iterations = max(2, round(search_budget(args) / args.epochs))
    folder = f"tune-{name}-{search_seed}"
    started = time.monotonic()
    YOLO(str(model_file(name, args, work))).tune(
        data=str(data_yaml), epochs=args.epochs, iterations=iterations, imgsz=imgsz, batch=args.batch,
        optimizer="SGD", seed=search_seed, workers=0, plots=False, save=False, val=True, verbose=False,
        project=str(work), name=folder, exist_ok=True,
    )  # fmt: skip
    wall = time.monotonic() - started
    best = yaml.safe_load((work / folder / "best_hyperparameters.yaml").read_text())
    records = [json.loads(line) for line in (work / folder / "tune_results.ndjson").read_text().splitlines() if line]
    rows = [
        Row(
            name,
            "tuner",
            "search-screening",
            search_seed,
            args.epochs,
            float(r.get("fitness", 0.0)),
            wall / len(records),
            f"iteration {i}",
            search_seed,
        )
        for i, r in enumerate(records)
    ]
    return {**best, "optimizer": "SGD"}, rows


def exported_args(method: str, name: str, data_root: Path, data_yaml: Path, imgsz: int, args: argparse.Namespace,
                  work: Path, search_seed: int) -> tuple[dict[str, Any], list[Row]]:  # fmt: skip
    dataset = f"{data_yaml.parent.name}/{data_yaml.name}"
    if method == "scratch-low":
        return hyp_train_args(load_seed_hyp("scratch-low"), {}), []
    if method == "scratch-low-cm10":
        return hyp_train_args(load_seed_hyp("scratch-low"), {"close_mosaic": 10}), []
    if method == "tuner":
        return run_tuner(name, data_yaml, imgsz, args, work, search_seed)
    return run_service(method, name, data_root, dataset, imgsz, args, work, search_seed)


def ablations(train_args: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """--ablate: the tuner's export with each group of ABLATION_GROUPS put back to scratch-low's values
    (ultralytics' defaults for the ultralytics-only keys), by method name tuner-minus-<group>."""
    reference = {**ultralytics_only_defaults(), **hyp_train_args(load_seed_hyp("scratch-low"), {})}
    return {
        f"tuner-minus-{group}": {**train_args, **{k: reference[k] for k in keys if k in reference}}
        for group, keys in ABLATION_GROUPS.items()
    }


# -- the final trainings ------------------------------------------------------------------------


def _final(spec: TrialSpec) -> tuple[float, float]:
    started = time.monotonic()
    result = train_trial(spec)
    return result.fitness, time.monotonic() - started


def final_trainings(
    method: str, name: str, train_args: dict[str, Any], data: dict[str, Any], imgsz: int, args: argparse.Namespace,
    work: Path, pool: ProcessPoolExecutor, search_seed: int = 0,
) -> list[Row]:  # fmt: skip
    # Back into YOLOv5 terms plus ultralytics-only arguments: what train_trial takes (and turns into
    # the same ultralytics arguments again).
    hyp = {**load_seed_hyp("scratch-low"), **untranslate_args(train_args)}
    extras = ultralytics_only(train_args)
    epochs = args.final_epochs or 5 * args.epochs
    specs = [
        TrialSpec(
            trial_number=seed,
            data=data,
            model=str(model_file(name, args, work)),
            epochs=epochs,
            imgsz=imgsz,
            batch=args.batch,
            seed=seed,
            hyp=hyp,
            ultralytics_args=extras,
            output_dir=str(work / f"final-{name}-{method}-{search_seed}" / str(seed)),
        )
        for seed in args.final_seeds
    ]
    results = list(pool.map(_final, specs))
    return [
        Row(name, method, "final", seed, epochs, fitness, wall, json.dumps(extras), search_seed)
        for seed, (fitness, wall) in zip(args.final_seeds, results, strict=True)
    ]


# -- the report ---------------------------------------------------------------------------------


def _interval_text(values: list[float]) -> str:
    if not values:
        return "-"
    interval = paired_interval(values)
    if interval.low is None or interval.high is None:
        return f"{interval.mean:.4f}"
    return f"{interval.mean:+.4f} [{interval.low:+.4f}, {interval.high:+.4f}]"


def setup_text(args: argparse.Namespace, imgsz: int, name: str = "") -> str:
    model = args.model
    if args.pretrained and name in PRETRAIN_FROM:
        source = PRETRAIN_FROM[name]
        model = (
            f"{args.model} fine-tuned from weights trained {PRETRAIN_EPOCHS} epochs on the {source} generator's data "
            f"(seed {PRETRAIN_SEED}, not this set's)"
        )
    top = f"{args.confirm_top_k}"
    for method in (f"hypevolve-{variant}" for variant in CONFIRM_MOSAIC):
        if method in args.methods:
            top += f" ({method}: {max(args.confirm_top_k, 2)}, one place for mosaic's best probe)"
    return (
        f"{model} at imgsz {imgsz}, batch {args.batch}; trials of {args.epochs} epochs; confirmation: top "
        f"{top} + baseline x {args.confirm_seeds} seeds x {args.confirm_epochs or 3 * args.epochs} "
        f"epochs; final trainings {args.final_epochs or 5 * args.epochs} epochs on seeds {args.final_seeds}; "
        f"search seeds {args.search_seeds} (one search per method and seed; racing up to {args.race_cap} seeds). "
        f"Equal compute: every searching method is given {search_budget(args)} training epochs (budget_epochs"
        + ("; --budget)." if args.budget else f": {args.trials} screening trials for today's default).")
    )


def keep_export(out: Path, name: str, method: str, search_seed: int, exported: dict[str, Any]) -> None:
    """Every method's whole export, a JSON line each, in exports.jsonl."""
    record = {"dataset": name, "method": method, "search_seed": search_seed, "args": exported}
    with (out / "exports.jsonl").open("a") as stream:
        stream.write(json.dumps(record, default=str) + "\n")


def summarize(rows: list[Row], args: argparse.Namespace, out: Path) -> None:
    lines = [
        "# What users get: each method's exported hyps, trained longer on fresh seeds",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; Python {platform.python_version()}, "
        f"ultralytics {ultralytics.__version__}, optuna {optuna.__version__}, ray {ray.__version__}; "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        "Final fitness: mean of a method's final trainings with a 95% t-interval over its searches (one search: "
        "over its final seeds). Gain vs "
        "scratch-low: each search's mean paired difference to scratch-low on the same final seeds, then a 95% "
        "t-interval over the searches (one search: over its final seeds). Verdicts: each study's, and in brackets "
        "how many said improved while their export then did not beat scratch-low.",
        "",
    ]
    for name in dict.fromkeys(r.dataset for r in rows):
        here = [r for r in rows if r.dataset == name]
        base = {r.seed: r.fitness for r in here if r.method == "scratch-low" and r.stage == "final"}
        setup = out / f"setup-{name}.txt"
        lines += [f"## {name}", "", setup.read_text().strip() if setup.exists() else "", ""]
        lines += [
            "| method | searches | search epochs (mean) | final fitness | gain vs scratch-low, pooled | verdicts "
            "(contradicted) |",
            "|---|---|---|---|---|---|",
        ]
        for method in dict.fromkeys(r.method for r in here):
            lines.append(_method_row(method, [r for r in here if r.method == method], base))
        lines.append("")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    plot(rows, out)


def _method_row(method: str, rows: list[Row], base: dict[int, float | None]) -> str:
    """One method's line: its final trainings over every search, the gain over scratch-low pooled over
    the searches (each search's mean paired gain, then a t-interval over searches; one search: over
    its final seeds), and each study's verdict beside its final trainings: an ``improved`` whose
    export did not beat scratch-low there is contradicted."""
    searches = sorted({r.search_seed for r in rows if r.stage == "final"})
    finals_all: list[float] = []
    search_means: list[float] = []
    gains: list[float] = []
    paired_one: list[float] = []
    verdicts: Counter[str] = Counter()
    contradicted = 0
    for search in searches:
        finals = {
            r.seed: r.fitness for r in rows if r.stage == "final" and r.search_seed == search and r.fitness is not None
        }
        finals_all += finals.values()
        if finals:
            search_means.append(statistics.fmean(finals.values()))
        paired = [v - b for s, v in finals.items() if (b := base.get(s)) is not None]
        paired_one = paired
        gain = statistics.fmean(paired) if paired else None
        if gain is not None:
            gains.append(gain)
        verdict = next((r.note.split(";")[0] for r in rows if r.stage == "verdict" and r.search_seed == search), None)
        if verdict:
            verdicts[verdict] += 1
            contradicted += verdict == "improved" and gain is not None and gain <= 0
    spent = sum(r.epochs for r in rows if r.stage.startswith("search")) / max(1, len(searches))
    final_text = "-"
    if finals_all:
        # Searches that export the same hyps train the same finals: the unit is a search, not a training.
        interval = paired_interval(search_means if len(search_means) >= 2 else finals_all)
        final_text = (
            f"{interval.mean:.4f} [{interval.low:.4f}, {interval.high:.4f}]" if interval.low is not None and
            interval.high is not None else f"{interval.mean:.4f}"
        )  # fmt: skip
    vs = "reference" if method == "scratch-low" else _interval_text(gains if len(gains) >= 2 else paired_one)
    said = ", ".join(f"{v} {n}" for v, n in sorted(verdicts.items())) or "-"
    return f"| {method} | {len(searches)} | {spent:.0f} | {final_text} | {vs} | {said} ({contradicted}) |"


def plot(rows: list[Row], out: Path) -> None:
    names = list(dict.fromkeys(r.dataset for r in rows))
    figure, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.2), tight_layout=True, squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        finals = [r for r in rows if r.dataset == name and r.stage == "final" and r.fitness is not None]
        methods = list(dict.fromkeys(r.method for r in finals))
        for x, method in enumerate(methods):
            values = [r.fitness for r in finals if r.method == method]
            ax.scatter([x] * len(values), values, color="tab:blue", alpha=0.6, s=18)
            interval = paired_interval(values)  # type: ignore[arg-type]
            if interval.low is not None and interval.high is not None:
                ax.errorbar([x + 0.15], [interval.mean], yerr=[[interval.mean - interval.low],
                            [interval.high - interval.mean]], fmt="o", color="black", capsize=4)  # fmt: skip
        ax.set_xticks(range(len(methods)), methods, rotation=25, ha="right", fontsize=8)
        ax.set_ylabel("final fitness (0.1 mAP50 + 0.9 mAP50-95)")
        ax.set_title(f"{name}: final trainings (dots) and mean with 95% t-interval", fontsize=9)
    figure.savefig(out / "final_fitness.png", dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a data.yaml of yours; default: both generated data sets")
    parser.add_argument("--imgsz", type=int, help="default: 64 for shapes, 96 for small-objects, else 640")
    parser.add_argument("--sets", nargs="+", default=list(GENERATED), choices=list(GENERATED))
    parser.add_argument("--model", default="yolov5n.yaml")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per search trial")
    parser.add_argument("--trials", type=int, default=8, help="screening trials of the confirmation method")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--confirm-top-k", type=int, default=2)
    parser.add_argument("--confirm-seeds", type=int, default=2)
    parser.add_argument("--confirm-epochs", type=int, default=None, help="default 3 x --epochs")
    parser.add_argument("--final-epochs", type=int, default=None, help="default 5 x --epochs")
    parser.add_argument("--final-seeds", type=int, nargs="+", default=[100, 101, 102])
    parser.add_argument("--search-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--budget", type=int, default=None,
        help="training epochs per search (budget_epochs); default what today's default plans for --trials trials. "
        "Rungs and racing plan more confirmation (racing at its cap): a budget too small for one is refused",
    )  # fmt: skip
    parser.add_argument("--race-cap", type=int, default=None, help="racing's seed cap; default --confirm-seeds + 2")
    parser.add_argument(
        "--pretrained", action="store_true",
        help="each generated set fine-tunes from weights trained on the other generator's data (made once)",
    )  # fmt: skip
    parser.add_argument("--weights-cache", type=Path, default=Path.home() / ".cache" / "hypevolve-bench")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "users_get")
    parser.add_argument("--ablate", action="store_true", help="train the tuner's export less each key group")
    parser.add_argument("--summarize", action="store_true", help="only redo summary.md and the plot from the CSV")
    args = parser.parse_args()
    args.race_cap = args.race_cap or args.confirm_seeds + 2
    if args.pretrained and args.data:
        parser.error("--pretrained is for the generated sets: it pretrains on the other generator's data")
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / "trainings.csv"
    if args.summarize:
        summarize(read_rows(csv_path), args, args.out)
        return 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="hypevolve-users-get-") as tmp:
        work = Path(tmp)
        sets: list[tuple[str, Path, int]] = []
        if args.data:
            sets.append((args.data.parent.name, args.data.resolve(), args.imgsz or 640))
        else:
            for name in args.sets:
                writer, imgsz = GENERATED[name]
                sets.append((name, writer(work / "data" / name), args.imgsz or imgsz))
        _RAY.append(RayLink(Settings(HOME=work / "ray", DATA_ROOT=work)))  # type: ignore[call-arg]
        _ray().connect()
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(2, mp_context=context) as pool:
            for name, data_yaml, imgsz in sets:
                data_root = data_yaml.parent.parent
                data = check_dataset(data_root, f"{data_yaml.parent.name}/{data_yaml.name}")
                (args.out / f"setup-{name}.txt").write_text(setup_text(args, imgsz, name) + "\n")
                if args.pretrained:
                    pretrain(name, args, work)
                for method in args.methods:
                    # scratch-low searches nothing: its final trainings serve every search seed.
                    for search_seed in [0] if method.startswith("scratch-low") else args.search_seeds:
                        started = time.monotonic()
                        print(f"== {name}: {method}, search seed {search_seed}", flush=True)
                        exported, rows = exported_args(
                            method, name, data_root, data_yaml, imgsz, args, work, search_seed
                        )
                        rows += final_trainings(method, name, exported, data, imgsz, args, work, pool, search_seed)
                        keep_export(args.out, name, method, search_seed, exported)
                        if method == "tuner" and args.ablate:
                            for ablated, ablated_args in ablations(exported).items():
                                rows += final_trainings(
                                    ablated, name, ablated_args, data, imgsz, args, work, pool, search_seed
                                )
                        append_rows(csv_path, rows)
                        finals = [r.fitness for r in rows if r.stage == "final" and r.fitness is not None]
                        mean = statistics.fmean(finals) if finals else math.nan
                        print(
                            f"   {time.monotonic() - started:.0f}s; final fitness mean {mean:.4f} {finals}", flush=True
                        )
        _ray().close()
    summarize(read_rows(csv_path), args, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
