"""Real ultralytics trainings on the sample data set (seconds each on 2 CPU cores)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hyps import load_seed_hyp, translate_hyp
from service.data.datasets import check_dataset
from workers.training import StopTraining, TrialResult, TrialSpec, train_trial

pytestmark = pytest.mark.slow

EPOCHS = 8
CHECKPOINT_EPOCHS = 5


def _train(
    shapes_root: Path, out: Path, model: str = "yolov5n.yaml", epochs: int = EPOCHS, **hyp: float
) -> TrialResult:
    spec = TrialSpec(
        trial_number=0,
        data=check_dataset(shapes_root, "shapes/data.yaml"),
        model=model,
        epochs=epochs,
        imgsz=64,
        batch=16,
        seed=0,
        hyp={**load_seed_hyp("scratch-low"), **hyp},
        output_dir=str(out),
    )
    return train_trial(spec)


@pytest.fixture(scope="module")
def default_run(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> TrialResult:
    return _train(shapes_root, tmp_path_factory.mktemp("runs") / "default")


def test_default_hyps_learn_the_sample_data(default_run: TrialResult) -> None:
    assert len(default_run.epochs) == EPOCHS
    # A few epochs from scratch at 64 px already find the shapes.
    assert default_run.fitness > 0.02
    assert default_run.fitness == pytest.approx(
        0.1 * default_run.metrics["mAP50"] + 0.9 * default_run.metrics["mAP50-95"]
    )


def test_startup_is_measured_before_the_first_epoch(default_run: TrialResult) -> None:
    startup = default_run.startup
    assert set(startup) == {"imports_s", "model_s", "setup_s", "to_first_epoch_s"}
    assert all(value >= 0 for value in startup.values())
    # The first epoch ends after imports, model build and trainer setup, and before the trial does.
    before_training = startup["imports_s"] + startup["model_s"] + startup["setup_s"]
    assert before_training < startup["to_first_epoch_s"] < default_run.duration_s


def test_trainer_used_the_translated_hyps(default_run: TrialResult) -> None:
    expected = translate_hyp(load_seed_hyp("scratch-low"))
    used = {key: default_run.train_args[key] for key in expected}
    assert used == pytest.approx(expected)
    assert default_run.train_args["optimizer"] == "SGD"
    # ultralytics' cls_pw is a re-weighting power: YOLOv5's 1.0 must not reach it.
    assert default_run.train_args["cls_pw"] == 0.0


def test_good_and_bad_learning_rates_separate(shapes_root: Path, tmp_path: Path, default_run: TrialResult) -> None:
    good = _train(shapes_root, tmp_path / "good", lr0=0.05)
    bad = _train(shapes_root, tmp_path / "bad", lr0=0.002)
    assert good.fitness > bad.fitness + 0.05


def test_a_node_without_the_data_set_fails_before_training_saying_so(shapes_root: Path, tmp_path: Path) -> None:
    data = check_dataset(shapes_root, "shapes/data.yaml")
    data["val"] = str(tmp_path / "not-on-this-node" / "images" / "val")
    spec = TrialSpec(0, data, "yolov5n.yaml", 1, 64, 16, 0, load_seed_hyp("scratch-low"), str(tmp_path / "out"))
    with pytest.raises(
        FileNotFoundError, match=r"not-on-this-node/images/val is missing on node .*the data set at the same path"
    ):
        train_trial(spec)
    # Nothing was trained or written.
    assert not (tmp_path / "out").exists()


def test_a_training_stopped_after_an_epoch_is_what_it_trained_marked_pruned(
    small_shapes_root: Path, tmp_path: Path
) -> None:
    data = check_dataset(small_shapes_root, "shapes/data.yaml")
    spec = TrialSpec(0, data, "yolov5n.yaml", 4, 64, 16, 0, load_seed_hyp("scratch-low"), str(tmp_path / "out"))
    seen: list[float] = []

    def stop_after_two(epoch: int, value: float, metrics: dict[str, float]) -> None:
        seen.append(value)
        if epoch == 1:
            raise StopTraining("pruned after epoch 2")

    result = train_trial(spec, on_epoch=stop_after_two)
    assert result.pruned
    assert result.epochs == seen
    assert len(result.epochs) == 2
    assert result.fitness == seen[-1]
    # What it trained with is known, as for a completed training (a pruned trial shows its batch).
    assert result.batch == 16


@pytest.fixture(scope="module")
def checkpoint(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """Weights that have learned the sample data (as an operator's pretrained .pt would have learned
    theirs), made here by ultralytics itself, offline, and their own validation fitness."""
    from ultralytics import YOLO

    out = tmp_path_factory.mktemp("pretrain")
    (out / "data.yaml").write_text(yaml.safe_dump(check_dataset(shapes_root, "shapes/data.yaml")), encoding="utf-8")
    model = YOLO("yolov5n.yaml")
    model.train(
        data=str(out / "data.yaml"), epochs=CHECKPOINT_EPOCHS, imgsz=64, batch=16, seed=0, workers=0, optimizer="SGD",
        lr0=0.05, project=str(out), name="run", plots=False, verbose=False, device="cpu",
    )  # fmt: skip
    metrics = model.trainer.metrics
    learned = 0.1 * metrics["metrics/mAP50(B)"] + 0.9 * metrics["metrics/mAP50-95(B)"]
    return out / "run" / "weights" / "last.pt", learned


def test_a_trial_fine_tunes_from_pretrained_weights(
    shapes_root: Path, tmp_path: Path, checkpoint: tuple[Path, float]
) -> None:
    weights, learned = checkpoint
    assert learned > 0.02, learned  # the weights know the shapes
    # One epoch at a learning rate too small to learn anything: a trial that starts from the weights
    # scores about what they score; one that starts from scratch scores about nothing.
    frozen = {"lr0": 1e-5, "warmup_epochs": 0.0}
    tuned = _train(shapes_root, tmp_path / "tuned", model=str(weights), epochs=1, **frozen)
    scratch = _train(shapes_root, tmp_path / "scratch", epochs=1, **frozen)
    assert tuned.train_args["model"] == str(weights)
    assert tuned.fitness > 0.5 * learned, (tuned.fitness, learned)
    assert tuned.fitness > scratch.fitness + 0.5 * learned, (tuned.fitness, scratch.fitness)
