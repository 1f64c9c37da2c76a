"""The label-scan cache for read-only data sets: the mirror's layout, and real trainings on a
read-only mount that scan the labels once."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ultralytics.data.utils import img2label_paths

from hyps import load_seed_hyp
from service.data.datasets import check_dataset
from workers.label_cache import can_write, with_label_cache
from workers.training import TrialSpec, train_trial


def _dataset(root: Path, images: str, labels: str) -> dict[str, Any]:
    for split in ("train", "val"):
        image_dir = root / images.format(split=split)
        label_dir = root / labels.format(split=split)
        image_dir.mkdir(parents=True)
        label_dir.mkdir(parents=True)
        (image_dir / "a.jpg").write_bytes(b"jpeg")
        (label_dir / "a.txt").write_text(f"0 0.5 0.5 0.1 0.1  # {split}\n")
    return {"path": str(root), "train": str(root / images.format(split="train")),
            "val": str(root / images.format(split="val")), "names": {0: "a"}}  # fmt: skip


def read_only(_: Path) -> bool:
    return False


@pytest.mark.parametrize(
    ("images", "labels"),
    [("images/{split}", "labels/{split}"), ("{split}/images", "{split}/labels")],
    ids=["yolov5-layout", "roboflow-layout"],
)
def test_a_read_only_split_reads_the_same_labels_through_a_mirror_with_a_writable_cache_folder(
    tmp_path: Path, images: str, labels: str
) -> None:
    data = _dataset(tmp_path / "data", images, labels)
    cache_root = tmp_path / "cache"
    mirrored = with_label_cache(data, cache_root, writable=read_only)
    for split in ("train", "val"):
        # The split became a list of its images, through the mirror.
        [line] = Path(mirrored[split]).read_text().splitlines()
        image = Path(line)
        assert image.name == "a.jpg"
        assert image.is_relative_to(cache_root)
        assert image.read_bytes() == b"jpeg"
        # ultralytics' own rule finds the real label file through the mirror.
        label = Path(img2label_paths([str(image)])[0])
        assert label.read_text() == (tmp_path / "data" / labels.format(split=split) / "a.txt").read_text()
        # ...and would write the cache into a real folder of the mirror, not through a link.
        cache_folder = label.parent.with_suffix(".cache").parent
        assert cache_folder.resolve().is_relative_to(cache_root.resolve())
    assert {k: v for k, v in mirrored.items() if k not in ("train", "val")} == {
        k: v for k, v in data.items() if k not in ("train", "val")
    }
    # A second trial on the node reuses the same mirror.
    assert with_label_cache(data, cache_root, writable=read_only) == mirrored


def test_writable_data_sets_image_lists_and_label_less_layouts_are_left_alone(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data", "images/{split}", "labels/{split}")
    assert with_label_cache(data, tmp_path / "cache") == data
    listing = tmp_path / "data" / "train.txt"
    listing.write_text("./images/train/a.jpg\n")
    flat = tmp_path / "flat"
    flat.mkdir()
    others = {**data, "train": str(listing), "val": str(flat)}
    assert with_label_cache(others, tmp_path / "cache", writable=read_only) == others
    assert not (tmp_path / "cache").exists()


def test_can_write_tells_a_folder_from_a_missing_one(tmp_path: Path) -> None:
    assert can_write(tmp_path)
    assert not can_write(tmp_path / "missing")


@pytest.fixture
def read_only_shapes(shapes_root: Path, tmp_path: Path) -> Iterator[Path]:
    """The sample data set on a read-only bind mount, as docker-compose mounts /data:ro."""
    source, mount = tmp_path / "source", tmp_path / "mounted"
    shutil.copytree(shapes_root / "shapes", source / "shapes", ignore=shutil.ignore_patterns("*.cache"))
    mount.mkdir()
    try:
        subprocess.run(["mount", "--bind", str(source), str(mount)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"a read-only bind mount needs mount privileges: {exc}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mount)], check=True, capture_output=True)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
def test_trials_on_a_read_only_data_set_scan_its_labels_once(read_only_shapes: Path, tmp_path: Path) -> None:
    assert not can_write(read_only_shapes / "shapes" / "labels")
    data = check_dataset(read_only_shapes, "shapes/data.yaml")
    cache_root = tmp_path / "label-cache"

    def train(number: int) -> float:
        spec = TrialSpec(number, data, "yolov5n.yaml", 1, 64, 16, 0, load_seed_hyp("scratch-low"),
                         str(tmp_path / "runs" / str(number)), label_cache_dir=str(cache_root))  # fmt: skip
        return train_trial(spec).fitness

    train(0)
    caches = sorted(cache_root.glob("*/labels/*.cache"), key=lambda c: c.name)  # mirror folder names vary
    assert [c.name for c in caches] == ["train.cache", "val.cache"]
    written = {c: c.stat().st_mtime_ns for c in caches}
    train(1)
    # The second trial loaded the caches: ultralytics rewrites a cache only after a fresh scan.
    assert {c: c.stat().st_mtime_ns for c in caches} == written
    assert not list((read_only_shapes / "shapes").rglob("*.cache"))
