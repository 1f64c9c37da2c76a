"""A small synthetic detection data set in YOLO format: filled shapes on noise, deterministic.

Three classes that differ only by shape (colours are random), so a detector has to learn geometry;
objects are large relative to the image, so a YOLOv5n trained from scratch at a small image size
reaches a non-zero mAP within a few epochs and good and bad hyps separate clearly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import yaml

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle")


def _draw_object(image: np.ndarray, rng: np.random.Generator, cls: int) -> tuple[float, float, float, float]:
    """Draw one filled shape; return its box as YOLO (x_center, y_center, width, height), normalised."""
    size = image.shape[0]
    side = int(rng.integers(size // 4, size // 2))
    x0 = int(rng.integers(0, size - side))
    y0 = int(rng.integers(0, size - side))
    colour = tuple(int(c) for c in rng.integers(40, 256, size=3))
    if cls == 0:
        cv2.circle(image, (x0 + side // 2, y0 + side // 2), side // 2, colour, thickness=-1)
    elif cls == 1:
        cv2.rectangle(image, (x0, y0), (x0 + side - 1, y0 + side - 1), colour, thickness=-1)
    else:
        points = np.array([[x0 + side // 2, y0], [x0, y0 + side - 1], [x0 + side - 1, y0 + side - 1]], np.int32)
        cv2.fillPoly(image, [points], colour)
    return ((x0 + side / 2) / size, (y0 + side / 2) / size, side / size, side / size)


def write_split(root: Path, split: str, samples: Iterable[tuple[np.ndarray, list[str]]]) -> None:
    """Write (image, label lines) pairs as ``images/<split>/<split>_NNNN.png`` and the matching
    ``labels/<split>/*.txt`` (an empty file for an image without objects)."""
    images, labels = root / "images" / split, root / "labels" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for index, (image, rows) in enumerate(samples):
        cv2.imwrite(str(images / f"{split}_{index:04d}.png"), image)
        (labels / f"{split}_{index:04d}.txt").write_text("".join(f"{r}\n" for r in rows), encoding="utf-8")


def _samples(count: int, image_size: int, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, list[str]]]:
    for _ in range(count):
        image = rng.integers(0, 90, size=(image_size, image_size, 3), dtype=np.uint8)
        rows = []
        for _ in range(int(rng.integers(1, 3))):
            cls = int(rng.integers(0, len(CLASS_NAMES)))
            x, y, w, h = _draw_object(image, rng, cls)
            rows.append(f"{cls} {x:.6f} {y:.6f} {w:.6f} {h:.6f}")
        yield image, rows


def write_sample_dataset(root: Path, n_train: int = 512, n_val: int = 64, image_size: int = 96, seed: int = 0) -> Path:
    """Write the data set under ``root`` (images/, labels/, data.yaml) and return the data.yaml path.

    The same arguments always give byte-identical files.
    """
    rng = np.random.default_rng(seed)
    train, val = _samples(n_train, image_size, rng), _samples(n_val, image_size, rng)
    return write_dataset(root, CLASS_NAMES, train, val)


def write_dataset(
    root: Path,
    names: Sequence[str],
    train: Iterable[tuple[np.ndarray, list[str]]],
    val: Iterable[tuple[np.ndarray, list[str]]],
) -> Path:
    """Write a YOLO data set of generated samples under ``root``; return its data.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    write_split(root, "train", train)
    write_split(root, "val", val)
    data_yaml = root / "data.yaml"
    # Paths relative to this file's folder, so the data set can be moved as a whole.
    spec = {"train": "images/train", "val": "images/val", "names": dict(enumerate(names))}
    data_yaml.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return data_yaml
