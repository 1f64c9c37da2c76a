"""Benchmark: what a trial pays for ultralytics' label scan, with and without a saved cache.

Writes a sample data set of N training images (default 10,000 at 320 px) to a temporary folder,
then builds ultralytics' training data set three times: once scanning (no cache yet), once loading
the cache it saved, and once scanning again with the labels folder read-only, as a trial on a
``:ro`` data root did before workers kept the cache in a mirror (workers/label_cache.py). Prints
the seconds of each and writes them to bench/results/label_scan.md. No network.

    .venv/bin/python bench/label_scan.py [--images 10000] [--size 320]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("YOLO_OFFLINE", "1")

from service.data.sample import write_sample_dataset  # noqa: E402
from workers.label_cache import with_label_cache  # noqa: E402
from workers.offline import seal_ultralytics  # noqa: E402


def build_seconds(images: str, names: dict[int, str]) -> float:
    from ultralytics.cfg import get_cfg
    from ultralytics.data.dataset import YOLODataset

    started = time.monotonic()
    YOLODataset(img_path=images, imgsz=64, augment=False, hyp=get_cfg(), data={"names": names, "channels": 3})
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=320)
    args = parser.parse_args()
    seal_ultralytics()
    import ultralytics

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "shapes"
        write_sample_dataset(root, n_train=args.images, n_val=1, image_size=args.size)
        names = {0: "circle", 1: "square", 2: "triangle"}
        train = str(root / "images" / "train")
        scan = build_seconds(train, names)
        cached = build_seconds(train, names)
        # A read-only labels folder: ultralytics scans and cannot save, on every trial. Pretend it
        # is read-only (root ignores permission bits) and let the worker's mirror take the cache.
        mirrored = with_label_cache({"train": train}, Path(folder) / "label-cache", writable=lambda _: False)
        mirror_first = build_seconds(mirrored["train"], names)
        mirror_again = build_seconds(mirrored["train"], names)

    rows = [
        ("scan, no cache yet (every trial on a read-only data root, before)", scan),
        ("load the saved cache (every later trial on a writable data root)", cached),
        ("read-only data root with the worker's mirror: first trial on a node", mirror_first),
        ("read-only data root with the worker's mirror: every later trial", mirror_again),
    ]
    lines = [
        f"# Label scan per trial: {args.images} images at {args.size} px",
        "",
        f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"ultralytics {ultralytics.__version__}, {time.strftime('%Y-%m-%d')}",
        "",
        "| what a trial does before its first batch | seconds |",
        "|---|---|",
        *(f"| {what} | {seconds:.2f} |" for what, seconds in rows),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    (ROOT / "bench" / "results" / "label_scan.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
