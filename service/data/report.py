"""A data set's report against YOLOv5's training guide, before any GPU time is spent.

Every image of every split goes through ultralytics' own check, ``verify_image_label`` (what
training runs when it scans labels): an image it calls corrupt is one training ignores, and its
message says why. On top of it, what ultralytics does not check: zero-area boxes, and a truncated
JPEG is reported without being read by that check (which rewrites such a file in place; a report
writes nothing in the data set). Box sizes are COCO's small/medium/large, measured at the study's
``imgsz`` (the longer side of each image scaled to it, as training letterboxes it).

A split's report is cached under ``<HOME>/dataset-reports``, keyed by ultralytics' ``get_hash``
of every image and label file (paths, sizes, modification times), the classes and imgsz: the same
key ultralytics' label cache uses, so an unchanged data set is reported again without a scan.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import re
import tempfile
import threading
from collections import Counter
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from service.data.datasets import check_dataset
from service.errors import InvalidRequest, NotReady
from service.schemas import DatasetOut, DatasetReportOut, ProblemOut, SplitReportOut
from service.plotting import PYPLOT_LOCK
from workers.label_cache import SPLITS
from workers.offline import seal_ultralytics

# The guide's numbers (ultralytics' "Tips for best training results", which YOLOv5 users follow).
MIN_IMAGES_PER_CLASS = 1500
MIN_INSTANCES_PER_CLASS = 10000
MAX_BACKGROUND_SHARE = 0.10
EXAMPLES = 5
# COCO's box sizes, in pixels of area at the training size.
SMALL_AREA, MEDIUM_AREA = 32**2, 96**2
PROBLEMS = (
    "images_without_label_file",
    "unreadable_images",
    "coordinates_outside_0_1",
    "class_ids_out_of_range",
    "malformed_label_files",
    "truncated_jpegs",
    "duplicate_boxes",
    "zero_area_boxes",
)
# How ultralytics' verify_image_label words what makes it ignore an image -> our problem names.
_IGNORED_BECAUSE = (
    ("exceeds dataset class count", "class_ids_out_of_range"),
    ("non-normalized or out of bounds", "coordinates_outside_0_1"),
    ("negative label values", "coordinates_outside_0_1"),
    ("columns", "malformed_label_files"),
    ("non-integer class", "malformed_label_files"),
    ("mix segment and detection", "malformed_label_files"),
    ("could not convert", "malformed_label_files"),
)
_CACHE_VERSION = "2"  # 2: segment_images
# The Optuna study user attribute that keeps the report made when the study was created.
STUDY_ATTR = "dataset_report"


def image_files(entry: str) -> list[str]:
    """The images of one split entry, found as ultralytics finds them: every file with an image
    suffix under a folder, or the lines of an image list (``./`` relative to the list)."""
    from ultralytics.data.utils import IMG_FORMATS

    path = Path(entry)
    if path.is_dir():
        found = glob.glob(str(Path(glob.escape(str(path))) / "**" / "*.*"), recursive=True)
    elif path.is_file():
        lines = path.read_text(encoding="utf-8-sig").strip().splitlines()
        parent = str(path.parent) + os.sep
        found = [x.replace("./", parent, 1) if x.startswith("./") else x for x in lines]
    else:
        return []
    return sorted(f for f in found if f.rpartition(".")[-1].lower() in IMG_FORMATS)


def _truncated_jpeg(path: str) -> bool:
    if path.rpartition(".")[-1].lower() not in ("jpg", "jpeg"):
        return False
    try:
        with open(path, "rb") as f:
            f.seek(-2, 2)
            return f.read() != b"\xff\xd9"
    except OSError:
        return False


def _verify(
    args: tuple[str, str, int],
) -> tuple[str, np.ndarray | None, tuple[int, int] | None, int, int, str, bool]:
    """(image, labels, (h, w), missing, found, problem or message, whether its labels are segments)
    for one image."""
    from ultralytics.data.utils import verify_image_label

    image, label, nc = args
    has_label = os.path.isfile(label)
    if _truncated_jpeg(image):
        return image, None, None, int(not has_label), int(has_label), "truncated_jpegs", False
    _, labels, shape, segments, _, nm, nf, _, corrupt, message = verify_image_label(
        (image, label, "", False, nc, 0, 0, False)
    )
    if corrupt:  # a rejected image's label file is not looked at: say whether there is one
        return image, None, None, int(not has_label), int(has_label), message, False
    return image, labels, shape, nm, nf, message, bool(segments)


def _problem(message: str) -> str:
    for words, name in _IGNORED_BECAUSE:
        if words in message:
            return name
    return "unreadable_images"


class _Problems:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {name: [] for name in PROBLEMS}

    def add(self, name: str, path: str, count: int = 1) -> None:
        self.counts[name] += count
        if len(self.examples[name]) < EXAMPLES:
            shown = Path(path)
            self.examples[name].append(str(shown.relative_to(self.root)) if shown.is_relative_to(self.root) else path)

    def out(self) -> dict[str, ProblemOut]:
        return {name: ProblemOut(count=self.counts[name], examples=self.examples[name]) for name in PROBLEMS}


def _scan_split(
    split: str, images: list[str], names: dict[int, str], imgsz: int, root: Path
) -> tuple[SplitReportOut, np.ndarray]:
    """The split's report, and the boxes training would use ([class, x, y, w, h] rows, normalized)."""
    from ultralytics.data.utils import img2label_paths
    from ultralytics.utils import NUM_THREADS

    labels = img2label_paths(list[str | Path](images))
    nc = len(names)
    problems = _Problems(root)
    background = found = ignored = segmented = 0
    kept: list[np.ndarray] = []  # each image's boxes
    pixels: list[tuple[float, float]] = []  # each image's width and height at imgsz
    kept_images: list[str] = []
    # As many threads as ultralytics' own scan uses: more only fight over the GIL (measured: half
    # again as slow with six threads on two cores). The loop only collects; numpy counts at the end.
    with ThreadPool(NUM_THREADS) as pool:
        results = pool.imap(_verify, [(i, lb, nc) for i, lb in zip(images, labels, strict=True)], chunksize=64)
        for image, boxes, shape, missing, has_file, message, segments in results:
            found += has_file
            if missing:
                problems.add("images_without_label_file", image)
            if boxes is None or shape is None:
                ignored += 1
                problems.add(message if message in PROBLEMS else _problem(message), image)
                continue
            if "duplicate labels removed" in message:
                removed = re.search(r": (\d+) duplicate labels removed", message)
                problems.add("duplicate_boxes", image, int(removed.group(1)) if removed else 1)
            if not len(boxes):
                background += 1
                continue
            segmented += segments
            height, width = shape
            scale = imgsz / max(height, width)
            kept.append(boxes)
            pixels.append((width * scale, height * scale))
            kept_images.append(image)
    all_boxes = np.concatenate(kept) if kept else np.zeros((0, 5), dtype=np.float32)
    owner = np.repeat(np.arange(len(kept)), [len(b) for b in kept])  # the image of each box
    size = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)[owner]
    classes = all_boxes[:, 0].astype(np.int64)
    per_class_instances = np.bincount(classes, minlength=nc)
    per_class_images = np.bincount(np.unique(owner * nc + classes) % nc, minlength=nc)
    area = all_boxes[:, 3] * size[:, 0] * all_boxes[:, 4] * size[:, 1]
    sizes = np.bincount(np.digitize(area, [SMALL_AREA, MEDIUM_AREA]), minlength=3)
    zero_per_image = np.bincount(owner[area == 0], minlength=len(kept))
    for index in np.flatnonzero(zero_per_image):
        problems.add("zero_area_boxes", kept_images[index], int(zero_per_image[index]))
    usable = len(images) - ignored
    report = SplitReportOut(
        split=split,
        images=len(images),
        label_files=found,
        images_ignored=ignored,
        background_images=background,
        background_share=background / usable if usable else 0.0,
        segment_images=segmented,
        images_per_class={names[c]: int(per_class_images[c]) for c in range(nc)},
        instances_per_class={names[c]: int(per_class_instances[c]) for c in range(nc)},
        boxes_by_size={"small": int(sizes[0]), "medium": int(sizes[1]), "large": int(sizes[2])},
        problems=problems.out(),
    )
    return report, all_boxes


def _cache_key(images: list[str], names: dict[int, str], imgsz: int) -> str:
    from ultralytics.data.utils import get_hash, img2label_paths

    files = get_hash(img2label_paths(list[str | Path](images)) + images)
    return hashlib.sha256(json.dumps([_CACHE_VERSION, files, names, imgsz], sort_keys=True).encode()).hexdigest()


def _write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def split_report(
    split: str, images: list[str], names: dict[int, str], imgsz: int, root: Path, cache_dir: Path | None
) -> tuple[SplitReportOut, np.ndarray]:
    """One split's report and boxes (see _scan_split), from the cache when no file of it changed."""
    if cache_dir is None:
        return _scan_split(split, images, names, imgsz, root)
    key = _cache_key(images, names, imgsz)
    cached, boxes_file = cache_dir / f"{key}.json", cache_dir / f"{key}.npy"
    if cached.is_file() and boxes_file.is_file():
        try:
            boxes = np.load(boxes_file, allow_pickle=False)
            return SplitReportOut.model_validate_json(cached.read_text(encoding="utf-8")), boxes
        except ValueError:
            pass  # a cache from another version, or half written: scan again
    report, boxes = _scan_split(split, images, names, imgsz, root)
    cache_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, boxes, allow_pickle=False)
    _write(boxes_file, buffer.getvalue())
    _write(cached, report.model_dump_json().encode())
    return report, boxes


def _warnings(train: SplitReportOut) -> list[str]:
    """The guide's recommendations the training split misses, with the figures."""
    found = []
    few_images = {c: n for c, n in train.images_per_class.items() if n < MIN_IMAGES_PER_CLASS}
    if few_images:
        found.append(
            f"the guide recommends >= {MIN_IMAGES_PER_CLASS} training images per class; fewer for "
            + ", ".join(f"{c} ({n})" for c, n in few_images.items())
        )
    few_instances = {c: n for c, n in train.instances_per_class.items() if n < MIN_INSTANCES_PER_CLASS}
    if few_instances:
        found.append(
            f"the guide recommends >= {MIN_INSTANCES_PER_CLASS} labelled instances per class; fewer for "
            + ", ".join(f"{c} ({n})" for c, n in few_instances.items())
        )
    if train.background_share > MAX_BACKGROUND_SHARE:
        found.append(
            f"the guide recommends 0-{MAX_BACKGROUND_SHARE:.0%} background images (no labels); the training split "
            f"has {train.background_share:.1%} ({train.background_images} of {train.images - train.images_ignored})"
        )
    if train.images_ignored:
        found.append(f"training ignores {train.images_ignored} of {train.images} training images (see problems)")
    return found


def dataset_report(
    relative: str, data: dict[str, Any], data_root: Path, imgsz: int, cache_dir: Path | None
) -> DatasetReportOut:
    """The report of a checked data.yaml (service.datasets.check_dataset's output)."""
    seal_ultralytics()  # an unreadable image makes ultralytics try to pip-install a HEIF decoder
    names = _names(data)
    splits = [_split(data, split, imgsz, data_root, cache_dir)[0] for split in SPLITS if data.get(split)]
    train = splits[0]
    usable = sum(train.instances_per_class.values()) > 0
    return DatasetReportOut(
        dataset=relative,
        imgsz=imgsz,
        classes=[names[c] for c in sorted(names)],
        usable=usable,
        splits=splits,
        warnings=_warnings(train),
    )


def _names(data: dict[str, Any]) -> dict[int, str]:
    """A checked data.yaml's class names by id."""
    return {int(k): str(v) for k, v in data["names"].items()}


def _split(
    data: dict[str, Any], split: str, imgsz: int, data_root: Path, cache_dir: Path | None
) -> tuple[SplitReportOut, np.ndarray]:
    names = _names(data)
    entry = data[split]
    images = sorted({f for e in (entry if isinstance(entry, list) else [entry]) for f in image_files(e)})
    return split_report(split, images, names, imgsz, data_root.resolve(), cache_dir)


def report_of(data_root: Path, relative: str, imgsz: int, cache_dir: Path | None) -> DatasetReportOut:
    """The report of data.yaml ``relative`` under ``data_root`` at ``imgsz`` (InvalidRequest where a
    study would refuse the data set)."""
    return dataset_report(relative, check_dataset(data_root, relative), data_root, imgsz, cache_dir)


def labels_png(data_root: Path, relative: str, cache_dir: Path | None) -> bytes:
    """ultralytics' labels plot of data.yaml ``relative``'s training split (class histogram, the
    boxes drawn at the centre, box centres, box widths and heights), drawn offline, as PNG."""
    data = check_dataset(data_root, relative)
    seal_ultralytics()
    from ultralytics.utils.plotting import plot_labels

    _, boxes = _split(data, "train", 640, data_root, cache_dir)
    names = _names(data)
    if not len(boxes):
        raise NotReady("the training split has no box to plot")
    with PYPLOT_LOCK, tempfile.TemporaryDirectory() as folder:
        plot_labels(boxes[:, 1:], boxes[:, 0].astype(np.int64), names=names, save_dir=Path(folder))
        drawn = Path(folder) / "labels.jpg"
        if not drawn.is_file():
            raise RuntimeError("ultralytics' plot_labels drew nothing (its log says why)")
        png = io.BytesIO()
        with Image.open(drawn) as image:
            image.save(png, "PNG")
    return png.getvalue()


def find_datasets(data_root: Path, max_depth: int = 3) -> list[DatasetOut]:
    """The data.yaml files under ``data_root`` (a few levels deep, skipping image and label
    folders), each checked as a study would check it."""
    root = data_root.resolve()
    found = []
    for folder, subfolders, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        subfolders[:] = sorted(d for d in subfolders if d not in ("images", "labels") and not d.startswith("."))
        if depth >= max_depth:
            subfolders[:] = []
        for name in sorted(files):
            if not name.endswith((".yaml", ".yml")):
                continue
            relative = str((Path(folder) / name).relative_to(root))
            try:
                data = check_dataset(root, relative)
            except InvalidRequest as exc:
                found.append(DatasetOut(path=relative, classes=None, error=exc.reason))
                continue
            found.append(DatasetOut(path=relative, classes=[data["names"][c] for c in sorted(data["names"])]))
    return sorted(found, key=lambda d: d.path)
