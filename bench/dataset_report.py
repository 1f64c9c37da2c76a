"""Benchmark: the data set report (GET /datasets/{path}/report) on 10,000 and 100,000 labels.

For each size, writes the sample data set with that many training images (one label file each,
1 to 3 boxes per image) to a temporary folder, then makes the report three times: a cold scan
(every image through ultralytics' verify_image_label), the same data set again (answered from the
report cache, as ultralytics answers a second training from its labels cache), and again after one
label file changed (that split is scanned anew). Then the labels plot from the cached boxes.
Prints the seconds and writes bench/results/dataset_report.md. No network.

    .venv/bin/python bench/dataset_report.py [--images 10000 100000] [--size 64]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("YOLO_OFFLINE", "1")
T = TypeVar("T")

from service.data.datasets import check_dataset  # noqa: E402
from service.data.report import dataset_report, labels_png  # noqa: E402
from service.data.sample import write_sample_dataset  # noqa: E402
from service.schemas import DatasetReportOut  # noqa: E402
from workers.offline import seal_ultralytics  # noqa: E402


def _timed(what: str, call: Callable[[], T]) -> tuple[float, T]:
    started = time.monotonic()
    result = call()
    seconds = time.monotonic() - started
    print(f"  {what}: {seconds:.2f}s", flush=True)
    return seconds, result


def measure(images: int, size: int) -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        root, cache = Path(folder) / "data", Path(folder) / "cache"
        written, _ = _timed(
            "write", lambda: write_sample_dataset(root / "shapes", n_train=images, n_val=1, image_size=size)
        )
        data = check_dataset(root, "shapes/data.yaml")

        def report() -> DatasetReportOut:
            return dataset_report("shapes/data.yaml", data, root, 640, cache)

        cold, first = _timed("cold", report)
        warm, _ = _timed("cached", report)
        label = next((root / "shapes" / "labels" / "train").iterdir())
        label.write_text(label.read_text() + "0 0.5 0.5 0.1 0.1\n")
        changed, _ = _timed("one label changed", report)
        plot, _ = _timed("labels.png", lambda: labels_png(root, "shapes/data.yaml", cache))
    train = first.splits[0]
    boxes = sum(train.instances_per_class.values())
    return [
        f"| {images:,} | {boxes:,} | {cold:.1f} | {warm:.2f} | {changed:.1f} | {plot:.1f} | {written:.0f} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    seal_ultralytics()
    import ultralytics

    rows = []
    for images in args.images:
        print(f"{images} images", flush=True)
        rows += measure(images, args.size)
    lines = [
        f"# Data set report: seconds on {args.size} px sample images",
        "",
        f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"ultralytics {ultralytics.__version__}, {time.strftime('%Y-%m-%d')}. One run each (no interval): "
        "`.venv/bin/python bench/dataset_report.py`.",
        "",
        "| label files | boxes | cold scan | cached | one label changed | labels.png | writing the set |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    text = "\n".join(lines)
    print(text)
    (ROOT / "bench" / "results" / "dataset_report.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
