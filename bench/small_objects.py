"""A second generated data set, of another character than the sample shapes: many small objects, 8
classes with imbalanced frequencies, and about 5% background images (no objects, empty label file).

Classes differ by geometry only (colours are random), objects are 8-20% of the image side (the
sample shapes: 25-50%), 4 to 12 per image, and class i is drawn with weight 1/(i+1): the rarest
class is 8 times rarer than the most common. Deterministic for given arguments.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from service.data.sample import write_dataset

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring", "diamond", "hbar", "vbar")
_WEIGHTS = np.array([1 / (i + 1) for i in range(len(CLASS_NAMES))])
BACKGROUND_SHARE = 0.05


def _draw(image: np.ndarray, rng: np.random.Generator, cls: int) -> tuple[float, float, float, float]:
    size = image.shape[0]
    side = int(rng.integers(max(6, size * 8 // 100), max(8, size * 20 // 100)))
    x0, y0 = int(rng.integers(0, size - side)), int(rng.integers(0, size - side))
    x1, y1, cx, cy = x0 + side - 1, y0 + side - 1, x0 + side // 2, y0 + side // 2
    colour = tuple(int(c) for c in rng.integers(60, 256, size=3))
    thick = max(1, side // 4)
    w, h = side, side
    if cls == 0:
        cv2.circle(image, (cx, cy), side // 2, colour, -1)
    elif cls == 1:
        cv2.rectangle(image, (x0, y0), (x1, y1), colour, -1)
    elif cls == 2:
        cv2.fillPoly(image, [np.array([[cx, y0], [x0, y1], [x1, y1]], np.int32)], colour)
    elif cls == 3:
        cv2.line(image, (x0, y0), (x1, y1), colour, thick)
        cv2.line(image, (x0, y1), (x1, y0), colour, thick)
    elif cls == 4:
        cv2.circle(image, (cx, cy), side // 2, colour, thick)
    elif cls == 5:
        cv2.fillPoly(image, [np.array([[cx, y0], [x1, cy], [cx, y1], [x0, cy]], np.int32)], colour)
    elif cls == 6:
        h = max(2, side // 3)
        cv2.rectangle(image, (x0, cy - h // 2), (x1, cy - h // 2 + h - 1), colour, -1)
    else:
        w = max(2, side // 3)
        cv2.rectangle(image, (cx - w // 2, y0), (cx - w // 2 + w - 1, y1), colour, -1)
    return (cx / size, cy / size, w / size, h / size)


def _samples(count: int, size: int, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, list[str]]]:
    for _ in range(count):
        image = rng.integers(0, 70, size=(size, size, 3), dtype=np.uint8)
        rows = []
        if rng.random() >= BACKGROUND_SHARE:
            for _ in range(int(rng.integers(4, 13))):
                cls = int(rng.choice(len(CLASS_NAMES), p=_WEIGHTS / _WEIGHTS.sum()))
                x, y, w, h = _draw(image, rng, cls)
                rows.append(f"{cls} {x:.6f} {y:.6f} {w:.6f} {h:.6f}")
        yield image, rows


def write_small_objects_dataset(
    root: Path, n_train: int = 192, n_val: int = 48, image_size: int = 96, seed: int = 0
) -> Path:
    """Write the data set under ``root`` and return its data.yaml."""
    rng = np.random.default_rng(seed)
    train, val = _samples(n_train, image_size, rng), _samples(n_val, image_size, rng)
    return write_dataset(root, CLASS_NAMES, train, val)
