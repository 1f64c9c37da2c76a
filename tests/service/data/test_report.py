"""The data set report: real image and label files, each kind of problem planted, read through the
API and through ultralytics' own checks."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from service.data.datasets import check_dataset
from service.data.report import dataset_report
from service.data.sample import write_dataset, write_sample_dataset
from service.settings import Settings
from tests.helpers import nothing_written

# Each planted file: its label text (None: no label file) and the problem it must be reported as.
PLANTED: dict[str, tuple[str | None, str | None]] = {
    "no-label": (None, "images_without_label_file"),
    "outside": ("0 0.5 0.5 1.5 0.2\n", "coordinates_outside_0_1"),
    "class-7": ("7 0.5 0.5 0.2 0.2\n", "class_ids_out_of_range"),
    "three-columns": ("0 0.5 0.5\n", "malformed_label_files"),
    "duplicate": ("1 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n", "duplicate_boxes"),
    "zero-area": ("2 0.5 0.5 0.0 0.2\n2 0.3 0.3 0.2 0.2\n", "zero_area_boxes"),
    "background": ("", None),
}


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def planted(data_root: Path) -> Path:
    """The sample data set (small) with one file of each problem added to its train split."""
    write_sample_dataset(data_root / "shapes", n_train=24, n_val=8)
    images, labels = data_root / "shapes" / "images" / "train", data_root / "shapes" / "labels" / "train"
    picture = np.full((80, 120, 3), 128, dtype=np.uint8)
    for name, (label, _) in PLANTED.items():
        Image.fromarray(picture).save(images / f"{name}.png")
        if label is not None:
            (labels / f"{name}.txt").write_text(label)
    (images / "garbage.png").write_bytes(b"not an image at all")
    (labels / "garbage.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    Image.fromarray(picture).save(images / "cut.jpg", "JPEG")
    (images / "cut.jpg").write_bytes((images / "cut.jpg").read_bytes()[:-2])  # no end-of-image marker
    (labels / "cut.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return data_root


def _report(root: Path, imgsz: int = 640, cache: Path | None = None) -> Any:
    return dataset_report("shapes/data.yaml", check_dataset(root, "shapes/data.yaml"), root, imgsz, cache)


def test_every_planted_problem_is_counted_with_its_file_and_nothing_is_written(planted: Path) -> None:
    before = _tree_digest(planted)
    report = _report(planted)
    assert _tree_digest(planted) == before  # a report writes nothing in the data set (not even a JPEG fix)
    train = {s.split: s for s in report.splits}["train"]
    problems = train.problems
    for name, (_, problem) in PLANTED.items():
        if problem is not None:
            assert f"shapes/images/train/{name}.png" in problems[problem].examples, (name, problems[problem])
    assert problems["unreadable_images"].examples == ["shapes/images/train/garbage.png"]
    assert problems["truncated_jpegs"].examples == ["shapes/images/train/cut.jpg"]
    # Boxes: the two extra copies of the duplicate; the one zero-area box of its file.
    assert (problems["duplicate_boxes"].count, problems["zero_area_boxes"].count) == (2, 1)
    # ultralytics' check rejects these whole images, so training never sees them.
    rejected = ("outside", "class-7", "three-columns", "garbage", "cut")
    assert train.images_ignored == len(rejected)
    assert train.images == 24 + len(PLANTED) + 2
    assert train.label_files == train.images - 1  # all but no-label.png
    # Background: the image with an empty label file and the one with none.
    assert train.background_images == 2
    assert train.background_share == pytest.approx(2 / (train.images - len(rejected)))


def test_counts_per_class_match_the_label_files(data_root: Path) -> None:
    write_sample_dataset(data_root / "shapes", n_train=24, n_val=8)
    report = _report(data_root)
    for split in report.splits:
        rows = [
            line.split()
            for path in (data_root / "shapes" / "labels" / split.split).glob("*.txt")
            for line in path.read_text().splitlines()
        ]
        instances = {name: sum(int(r[0]) == c for r in rows) for c, name in enumerate(report.classes)}
        assert split.instances_per_class == instances
        assert sum(split.boxes_by_size.values()) == len(rows)
        assert split.images == len(list((data_root / "shapes" / "images" / split.split).iterdir()))
    # The guide's numbers, and the figures that miss them.
    assert any("1500 training images per class; fewer for circle" in w for w in report.warnings)
    assert any("10000 labelled instances per class" in w for w in report.warnings)


def test_box_sizes_are_measured_at_the_training_size(data_root: Path) -> None:
    # 200x100 images, each with one box 0.3 of the image wide and high: 60x30 px as stored.
    picture = np.zeros((100, 200, 3), dtype=np.uint8)
    samples = [(picture, ["0 0.5 0.5 0.3 0.3"])] * 4
    write_dataset(data_root / "shapes", ["thing"], samples, samples)
    # The longer side scaled to imgsz: at 640, 192x96 px (above COCO's 96² px: large); at 320,
    # 96x48 (medium); at 96, 28.8x14.4 (below 32² px: small).
    assert _report(data_root, 640).splits[0].boxes_by_size == {"small": 0, "medium": 0, "large": 4}
    assert _report(data_root, 320).splits[0].boxes_by_size == {"small": 0, "medium": 4, "large": 0}
    assert _report(data_root, 96).splits[0].boxes_by_size == {"small": 4, "medium": 0, "large": 0}


def test_images_labelled_with_segments_are_counted(data_root: Path) -> None:
    picture = np.zeros((64, 64, 3), dtype=np.uint8)
    boxes = [(picture, ["0 0.5 0.5 0.3 0.3"])] * 3
    polygons = [(picture, ["0 0.2 0.2 0.6 0.2 0.6 0.6 0.2 0.6"])] * 2  # a square as a polygon: a segment
    write_dataset(data_root / "shapes", ["thing"], [*boxes, *polygons], boxes)
    train, val = _report(data_root).splits
    # ultralytics reads a polygon as a segment (and its box); copy_paste needs them.
    assert (train.segment_images, val.segment_images) == (2, 0)
    assert sum(train.instances_per_class.values()) == 5


def test_the_cache_answers_an_unchanged_data_set_and_a_changed_one_is_scanned_again(
    data_root: Path, tmp_path: Path
) -> None:
    write_sample_dataset(data_root / "shapes", n_train=24, n_val=8)
    cache = tmp_path / "cache"
    first = _report(data_root, cache=cache)
    assert len(list(cache.glob("*.json"))) == 2  # train and val
    assert _report(data_root, cache=cache) == first
    # A label file changes: that split is scanned again, and says so.
    label = sorted((data_root / "shapes" / "labels" / "train").glob("*.txt"))[0]
    label.write_text(label.read_text() + "0 0.5 0.5 0.0 0.1\n")
    again = _report(data_root, cache=cache)
    assert again.splits[0].problems["zero_area_boxes"].count == 1
    assert again.splits[1] == first.splits[1]


def test_the_api_lists_data_sets_and_reports_one(api: httpx.Client, planted: Path) -> None:
    (planted / "broken.yaml").write_text("train: images\n")
    listed = api.get("/datasets").json()
    assert [d["path"] for d in listed] == ["broken.yaml", "shapes/data.yaml"]
    assert listed[0]["error"] == "data.yaml has no 'val' key"
    assert listed[1]["classes"] == ["circle", "square", "triangle"]
    report = api.get("/datasets/shapes/data.yaml/report", params={"imgsz": 96})
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["imgsz"] == 96
    assert [s["split"] for s in body["splits"]] == ["train", "val"]
    assert body["splits"][0]["problems"]["class_ids_out_of_range"]["count"] == 1


@pytest.mark.parametrize(
    ("path", "params", "field", "value"),
    [
        ("escape/data.yaml", {}, "dataset", "escape/data.yaml"),  # a symlink out of the data root
        ("missing/data.yaml", {}, "dataset", "missing/data.yaml"),
        ("shapes/data.yaml", {"imgsz": 100}, "imgsz", 100),
    ],
)
def test_a_bad_report_request_gets_422_naming_the_field(
    api: httpx.Client, planted: Path, tmp_path: Path, path: str, params: dict[str, int], field: str, value: Any
) -> None:
    outside = tmp_path / "outside"
    shutil.copytree(planted / "shapes", outside)
    (planted / "escape").symlink_to(outside)
    response = api.get(f"/datasets/{path}/report", params=params)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert (error["field"], error["value"]) == (field, value)


def test_a_data_set_without_a_usable_box_is_refused_before_any_training(
    api: httpx.Client, settings: Settings, data_root: Path
) -> None:
    write_sample_dataset(data_root / "shapes", n_train=8, n_val=4)
    # Every training label names a class the data set does not have: ultralytics would drop them all.
    for label in (data_root / "shapes" / "labels" / "train").glob("*.txt"):
        label.write_text("5 0.5 0.5 0.2 0.2\n")
    response = api.post("/studies", json={"dataset": "shapes/data.yaml"})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert (error["field"], error["value"]) == ("dataset", "shapes/data.yaml")
    assert "has no box training can use in its train split (8 images, 8 rejected" in error["message"]
    nothing_written(settings)


def test_the_labels_plot_is_ultralytics_drawn_offline(api: httpx.Client, planted: Path) -> None:
    response = api.get("/datasets/shapes/data.yaml/labels.png")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(response.content)).convert("L"))
    # ultralytics' 2x2 figure (8 in at 200 dpi), drawn: not a blank canvas.
    assert image.shape == (1600, 1600)
    assert image.std() > 10
