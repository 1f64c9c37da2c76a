from __future__ import annotations

from pathlib import Path

import yaml

from service.data.datasets import check_dataset
from service.data.sample import CLASS_NAMES, write_sample_dataset


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_sample_data_is_deterministic_and_passes_the_dataset_check(tmp_path: Path) -> None:
    first = write_sample_dataset(tmp_path / "a" / "shapes", n_train=8, n_val=4)
    write_sample_dataset(tmp_path / "b" / "shapes", n_train=8, n_val=4)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    assert yaml.safe_load(first.read_text())["names"] == dict(enumerate(CLASS_NAMES))
    checked = check_dataset(tmp_path / "a", "shapes/data.yaml")
    assert len(list(Path(checked["train"]).glob("*.png"))) == 8


def test_every_label_is_a_valid_yolo_box(tmp_path: Path) -> None:
    write_sample_dataset(tmp_path / "shapes", n_train=16, n_val=4)
    rows = [
        line.split() for f in (tmp_path / "shapes" / "labels").rglob("*.txt") for line in f.read_text().splitlines()
    ]
    assert rows
    for cls, *box in rows:
        assert int(cls) in range(len(CLASS_NAMES))
        assert all(0.0 < float(v) <= 1.0 for v in box)
