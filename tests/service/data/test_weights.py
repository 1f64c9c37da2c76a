"""What a study trains: an architecture or weights from the operator's folder, never from a request."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import torch

from service.data.weights import ARCHITECTURES, model_source
from service.errors import InvalidRequest
from service.settings import Settings
from tests.conftest import copy_dataset
from tests.helpers import nothing_written


def _checkpoint(path: Path) -> None:
    """A file in torch.save's format (what model_source checks; these tests train nothing)."""
    torch.save({"model": None, "train_args": {}}, path)


@pytest.fixture
def weights_dir(settings: Settings, tmp_path: Path) -> Path:
    """The operator's folder: one checkpoint, a text file named .pt, a note, and a link that leads out."""
    folder = settings.WEIGHTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    _checkpoint(folder / "good.pt")
    (folder / "fake.pt").write_text("not a checkpoint")
    (folder / "README.txt").write_text("put .pt files here")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _checkpoint(outside / "secret.pt")
    (folder / "escape.pt").symlink_to(outside / "secret.pt")
    return folder


def test_get_models_lists_the_architectures_and_the_checkpoint_names_in_the_folder(
    api: httpx.Client, weights_dir: Path
) -> None:
    listed = api.get("/models").json()
    assert listed["architectures"] == list(ARCHITECTURES)
    assert {"yolov5n.yaml", "yolov5m6.yaml"} <= set(listed["architectures"])
    # The link out of the folder and the note are not offered; fake.pt is (its content is checked
    # when a study names it).
    assert [w["name"] for w in listed["weights"]] == ["fake.pt", "good.pt"]
    assert listed["weights"][1]["size_bytes"] == (weights_dir / "good.pt").stat().st_size


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("absent.pt", "is not in the weights folder; available weights: fake.pt, good.pt"),
        ("escape.pt", "is not in the weights folder"),
        ("fake.pt", "is not a PyTorch checkpoint"),
        ("yolov5s.pt", "is not in the weights folder"),  # a released name is not downloaded
    ],
)
def test_weights_outside_the_folder_or_not_a_checkpoint_get_422(
    api: httpx.Client, settings: Settings, weights_dir: Path, shapes_root: Path, model: str, message: str
) -> None:
    copy_dataset(shapes_root, settings.DATA_ROOT)
    response = api.post("/studies", json={"dataset": "shapes/data.yaml", "model": model})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert (error["field"], error["value"]) == ("model", model)
    assert message in error["message"]
    nothing_written(settings)


@pytest.mark.parametrize("model", ["../good.pt", "sub/good.pt", "/abs/good.pt", ".hidden.pt", "good.pth"])
def test_a_model_that_is_a_path_is_refused_before_the_folder_is_read(tmp_path: Path, model: str) -> None:
    _checkpoint(tmp_path / "good.pt")
    with pytest.raises(InvalidRequest) as refused:
        model_source(tmp_path / "weights", model)
    assert refused.value.field == "model"


def test_an_architecture_is_trained_from_scratch_and_weights_by_their_path(tmp_path: Path) -> None:
    _checkpoint(tmp_path / "good.pt")
    assert model_source(tmp_path, "yolov5s.yaml") == "yolov5s.yaml"
    assert model_source(tmp_path, "good.pt") == str(tmp_path.resolve() / "good.pt")


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_architecture_listed_builds_offline(name: str) -> None:
    from ultralytics import YOLO

    model = YOLO(name)
    assert model.task == "detect"
    assert model.model.yaml["backbone"]  # a YOLOv5 backbone, built from ultralytics' own yaml
