"""One trial's training: YOLOv5 hyps in, an ultralytics training, fitness per epoch and at the end out."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hyps import METRIC_NAMES, ULTRALYTICS_METRIC_COLUMNS, YOLOV5_FITNESS_WEIGHTS, fitness, hyp_train_args
from workers.label_cache import SPLITS, with_label_cache
from workers.offline import seal_ultralytics
from workers.trial_tags import result_attrs

EpochCallback = Callable[[int, float, dict[str, float]], None]


@dataclass(frozen=True)
class TrialSpec:
    """Everything a worker needs to train one trial; plain data, so it travels to any Ray node."""

    trial_number: int
    data: dict[str, Any]  # a checked data.yaml: absolute paths, no `download` key
    model: str
    epochs: int
    imgsz: int
    batch: int | float  # a batch size, or AutoBatch: -1, or a fraction of the GPU's memory
    seed: int
    hyp: dict[str, float]  # all YOLOv5 keys for this trial
    output_dir: str
    fitness_weights: Sequence[float] = YOLOV5_FITNESS_WEIGHTS
    dataloader_workers: int = 0
    # ultralytics-only arguments the study names (dfl, close_mosaic, ...), passed as they are.
    ultralytics_args: dict[str, float | int] = field(default_factory=dict)
    # Where to keep label-scan caches for data sets this node cannot write to ("" keeps none).
    label_cache_dir: str = ""
    # Draw ultralytics' plots (results, PR curve, confusion matrix, batches, labels) into output_dir.
    plots: bool = False


@dataclass(frozen=True)
class Placement:
    """Where a trial ran: the Ray node, its host name, the worker process."""

    node_id: str
    host: str
    pid: int


@dataclass
class TrialResult:
    """What a training reports: final fitness and metrics, fitness per epoch, and the arguments the
    ultralytics trainer really used (read back from the trainer, not from our dict). A pruned
    training reports the epochs it trained, its last epoch's fitness and no train_args. The Ray task
    adds where it ran."""

    fitness: float
    metrics: dict[str, float]
    epochs: list[float]
    duration_s: float
    device: str
    train_args: dict[str, Any] = field(default_factory=dict)
    # Seconds before training proper: imports (cached after a worker's first trial), model build,
    # trainer setup (data loaders, label scan, optimizer), and start to the end of the first epoch.
    startup: dict[str, float] = field(default_factory=dict)
    pruned: bool = False
    placement: Placement | None = None
    # The batch size the trainer really used (AutoBatch's choice, or its fallback on a CPU), and how
    # it was chosen when AutoBatch chose it.
    batch: int | None = None
    batch_note: str | None = None

    def user_attrs(self) -> dict[str, Any]:
        """What the controller records on the Optuna trial for this result."""
        where = self.placement
        return result_attrs(
            metrics=self.metrics,
            duration_s=self.duration_s,
            device=self.device,
            node=where.host if where else None,
            node_id=where.node_id if where else None,
            batch=self.batch,
            batch_note=self.batch_note,
            train_args=None if self.pruned else self.train_args,
            startup=None if self.pruned else self.startup,
        )


def train_args_for(spec: TrialSpec, device: str) -> dict[str, Any]:
    """The keyword arguments passed to ``YOLO(model).train`` for ``spec``."""
    out = Path(spec.output_dir)
    return {
        **hyp_train_args(spec.hyp, spec.ultralytics_args),
        "data": str(out / "data.yaml"),
        "epochs": spec.epochs,
        "imgsz": spec.imgsz,
        "batch": spec.batch,
        "seed": spec.seed,
        "device": device,
        "workers": spec.dataloader_workers,
        "project": str(out.parent),
        "name": out.name,
        "exist_ok": True,
        "plots": spec.plots,
        "save": False,
        "verbose": False,
        # Weights bring their own training's single_cls (ultralytics keeps it from a checkpoint); a
        # trial trains every class of the data set whatever the weights were trained on.
        "single_cls": False,
    }


def check_data_here(data: Mapping[str, Any]) -> None:
    """Fail fast, and say why, when this node lacks the data set (a cluster needs it at the same
    path on every node)."""
    paths = [data["path"]]
    for key in SPLITS:
        entry = data.get(key)
        paths.extend(entry if isinstance(entry, list) else [entry] if entry else [])
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(
            f"data set path {missing[0]} is missing on node {socket.gethostname()}: "
            "on a cluster every node needs the data set at the same path"
        )


def check_weights_here(model: str) -> None:
    """Fail fast, and say why, when the weights a trial fine-tunes from are not on this node."""
    if model.endswith(".pt") and not Path(model).is_file():
        raise FileNotFoundError(
            f"weights {model} are missing on node {socket.gethostname()}: on a cluster every node needs "
            "the weights folder (HYPEVOLVE_WEIGHTS_DIR) at the same path"
        )


# AutoBatch fills a share of the GPU's memory, up to the whole training set: on a large GPU a small
# data set becomes one batch, one optimizer step an epoch, and the epochs YOLOv5's hyps count
# (warmup_epochs, close_mosaic) stop meaning anything (seen on an H200: 512 of 512 images, every
# fitness 0 after 5 epochs, against 0.16 at batch 16). A study's AutoBatch keeps at least this many
# batches an epoch.
MIN_BATCHES_PER_EPOCH = 16


def capped_auto_batch(chosen: int, train_images: int) -> int:
    """AutoBatch's ``chosen`` batch, at most 1/MIN_BATCHES_PER_EPOCH of the training images (at least 1)."""
    if train_images <= 0:
        return chosen
    return max(1, min(chosen, train_images // MIN_BATCHES_PER_EPOCH))


def batch_note(asked: float, device: str, used: int | None, auto_chose: int | None = None) -> str | None:
    """How AutoBatch chose a trial's batch (None for a batch size the study gave); ``auto_chose``:
    AutoBatch's own choice, when the cap made the batch smaller."""
    if not (asked == -1 or 0 < asked < 1) or used is None:
        return None
    if device == "cpu":
        return f"AutoBatch needs a GPU: on the CPU ultralytics trained with its default batch {used}"
    share = 0.6 if asked == -1 else asked
    if auto_chose is not None and auto_chose > used:
        return (
            f"AutoBatch chose {auto_chose} for {share:.0%} of the GPU memory free at the start; capped at {used} "
            f"so that an epoch has at least {MIN_BATCHES_PER_EPOCH} batches"
        )
    return f"AutoBatch chose {used}, the largest batch for {share:.0%} of the GPU memory free at the start"


def _capped_trainer() -> type:
    """ultralytics' detection trainer whose AutoBatch keeps MIN_BATCHES_PER_EPOCH batches an epoch; it
    records AutoBatch's own choice as ``auto_chose`` (None where AutoBatch did not run)."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    class CappedAutoBatchTrainer(DetectionTrainer):
        auto_chose: int | None = None
        train_images = 0

        def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None) -> Any:
            dataset = super().build_dataset(img_path, mode, batch)
            if mode == "train":
                self.train_images = len(dataset)
            return dataset

        def auto_batch(self, *args: Any, **kwargs: Any) -> int:
            # DetectionTrainer.auto_batch builds the training set once (build_dataset above) to count it.
            chosen = int(super().auto_batch(*args, **kwargs))
            if self.device.type == "cpu":  # no AutoBatch there: ultralytics' default batch, as it is
                return chosen
            self.auto_chose = chosen
            return capped_auto_batch(chosen, self.train_images)

    return CappedAutoBatchTrainer


def _metrics_of(trainer: Any) -> dict[str, float]:
    raw: Mapping[str, Any] = trainer.metrics or {}
    values = {}
    for ours, theirs in zip(METRIC_NAMES, ULTRALYTICS_METRIC_COLUMNS, strict=True):
        value = float(raw.get(theirs, 0.0))
        values[ours] = 0.0 if math.isnan(value) else value
    return values


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


class StopTraining(Exception):
    """Raised by an ``on_epoch`` callback to end a training after that epoch (a pruner said so)."""


def train_trial(spec: TrialSpec, device: str = "cpu", on_epoch: EpochCallback | None = None) -> TrialResult:
    """Train ``spec`` with ultralytics on ``device``; call ``on_epoch(epoch, fitness, metrics)`` after
    each epoch's validation. The result's fitness is the last epoch's, as in YOLOv5's --evolve. When
    ``on_epoch`` raises StopTraining, the result is what was trained so far, marked pruned."""
    check_data_here(spec.data)
    check_weights_here(spec.model)
    started = time.monotonic()
    seal_ultralytics()
    from ultralytics import YOLO

    startup = {"imports_s": time.monotonic() - started}
    out = Path(spec.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = with_label_cache(spec.data, Path(spec.label_cache_dir)) if spec.label_cache_dir else spec.data
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    per_epoch: list[float] = []
    last_metrics: dict[str, float] = {}
    used_args: dict[str, Any] = {}
    batch: dict[str, int | None] = {}

    def record_args(trainer: Any) -> None:
        startup["setup_s"] = time.monotonic() - started - startup["imports_s"] - startup["model_s"]
        used_args.update({k: _plain(v) for k, v in vars(trainer.args).items()})
        batch["used"] = int(trainer.batch_size)
        batch["auto_chose"] = getattr(trainer, "auto_chose", None)

    def record_epoch(trainer: Any) -> None:
        # ultralytics calls this once more after training to log best.pt's validation at step
        # `epochs`; that is not a training epoch, so it must not count as one.
        if trainer.epoch >= trainer.epochs or len(per_epoch) > trainer.epoch:
            return
        metrics = _metrics_of(trainer)
        value = fitness(metrics, spec.fitness_weights)
        per_epoch.append(value)
        if len(per_epoch) == 1:
            startup["to_first_epoch_s"] = time.monotonic() - started
        if trainer.epoch + 1 >= trainer.epochs:
            # The result is the last epoch's, as in YOLOv5's --evolve. ultralytics would validate
            # best.pt once more after training: a whole validation pass for a number we do not use.
            # It only runs when trainer.best exists, so point it elsewhere.
            trainer.best = out / "weights" / "not-validated-again.pt"
        last_metrics.clear()
        last_metrics.update(metrics)
        if on_epoch is not None:
            on_epoch(trainer.epoch, value, metrics)

    def plots_on_last_validation(trainer: Any) -> None:
        # A validation during training turns its own plots off for good unless it is the last epoch's
        # (`args.plots &= ...`), and ultralytics only switches them back on for the final validation
        # of best.pt, which a trial skips (see record_epoch): so switch them on for the last epoch.
        if trainer.epoch + 1 >= trainer.epochs and trainer.validator is not None:
            trainer.validator.args.plots = True

    model = YOLO(spec.model)  # weights: ultralytics transfers every layer that fits the data set's classes
    if model.task != "detect":
        raise ValueError(f"{Path(spec.model).name} is a {model.task} model; a study tunes object detection")
    startup["model_s"] = time.monotonic() - started - startup["imports_s"]
    model.add_callback("on_train_start", record_args)
    model.add_callback("on_fit_epoch_end", record_epoch)
    if spec.plots:
        model.add_callback("on_train_epoch_end", plots_on_last_validation)
    pruned = False
    try:
        model.train(trainer=_capped_trainer(), **train_args_for(spec, device))
    except StopTraining:
        pruned = True
    if not per_epoch:
        raise RuntimeError(f"training of trial {spec.trial_number} ended without a validated epoch")
    return TrialResult(
        fitness=per_epoch[-1],
        metrics=dict(last_metrics),
        epochs=per_epoch,
        duration_s=time.monotonic() - started,
        device=device,
        train_args=used_args,
        startup=startup,
        batch=batch.get("used"),
        batch_note=batch_note(spec.batch, device, batch.get("used"), batch.get("auto_chose")),
        pruned=pruned,
    )
