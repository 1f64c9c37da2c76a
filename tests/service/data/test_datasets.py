"""check_dataset against real files: what may reach ultralytics, and what must not."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from service.data.datasets import check_dataset
from service.errors import InvalidRequest


def _dataset(root: Path, name: str = "ds", **spec: object) -> str:
    folder = root / name
    (folder / "images" / "train").mkdir(parents=True, exist_ok=True)
    (folder / "images" / "val").mkdir(parents=True, exist_ok=True)
    content = {"train": "images/train", "val": "images/val", "names": ["a", "b"], **spec}
    (folder / "data.yaml").write_text(yaml.safe_dump(content), encoding="utf-8")
    return f"{name}/data.yaml"


def test_a_good_data_yaml_comes_back_with_absolute_checked_paths(data_root: Path) -> None:
    checked = check_dataset(data_root, _dataset(data_root, extra="kept out"))
    base = (data_root / "ds").resolve()
    assert checked == {
        "path": str(base),
        "train": str(base / "images" / "train"),
        "val": str(base / "images" / "val"),
        "names": {0: "a", 1: "b"},
        "nc": 2,
    }


def test_relative_path_key_is_relative_to_the_data_yaml(data_root: Path) -> None:
    (data_root / "ds" / "sub" / "images" / "train").mkdir(parents=True)
    (data_root / "ds" / "sub" / "images" / "val").mkdir(parents=True)
    checked = check_dataset(data_root, _dataset(data_root, path="sub"))
    assert checked["train"] == str((data_root / "ds" / "sub" / "images" / "train").resolve())


@pytest.mark.parametrize("value", ["../outside/data.yaml", "ds/../../outside/data.yaml"])
def test_dot_dot_out_of_the_root_is_refused(data_root: Path, value: str) -> None:
    _dataset(data_root.parent, "outside")
    with pytest.raises(InvalidRequest, match="is outside the data root"):
        check_dataset(data_root, value)


def test_absolute_dataset_path_is_refused(data_root: Path) -> None:
    path = str(data_root / _dataset(data_root))
    with pytest.raises(InvalidRequest, match="relative to the data root") as info:
        check_dataset(data_root, path)
    assert (info.value.field, info.value.value) == ("dataset", path)


def test_symlink_pointing_out_of_the_root_is_refused(data_root: Path) -> None:
    _dataset(data_root.parent, "outside")
    (data_root / "link").symlink_to(data_root.parent / "outside")
    with pytest.raises(InvalidRequest, match="is outside the data root"):
        check_dataset(data_root, "link/data.yaml")


def test_download_key_is_refused_because_ultralytics_would_run_it(data_root: Path) -> None:
    with pytest.raises(InvalidRequest, match="'download' key"):
        check_dataset(data_root, _dataset(data_root, download="bash get_data.sh"))


@pytest.mark.parametrize(("key", "value"), [("train", "../../../etc"), ("val", "/etc"), ("path", "/tmp")])
def test_split_paths_leaving_the_root_are_refused(data_root: Path, key: str, value: str) -> None:
    with pytest.raises(InvalidRequest, match="leaves the data root"):
        check_dataset(data_root, _dataset(data_root, **{key: value}))


def test_image_list_with_a_line_leaving_the_root_is_refused(data_root: Path) -> None:
    ref = _dataset(data_root, train="train.txt")
    (data_root / "ds" / "train.txt").write_text("./images/train/a.png\n/etc/passwd\n", encoding="utf-8")
    with pytest.raises(InvalidRequest, match="line 2 leaves the data root"):
        check_dataset(data_root, ref)


def test_missing_split_folder_is_refused(data_root: Path) -> None:
    with pytest.raises(InvalidRequest, match="'val' path 'images/nope' does not exist"):
        check_dataset(data_root, _dataset(data_root, val="images/nope"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"names": []}, "needs 'names'"),
        ({"names": {0: "a", 2: "c"}}, "ids 0..nc-1"),
        ({"nc": 3}, "nc: 3 but lists 2 names"),
    ],
)
def test_bad_class_names_are_refused(data_root: Path, spec: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        check_dataset(data_root, _dataset(data_root, **spec))


def test_missing_train_key_is_refused(data_root: Path) -> None:
    ref = _dataset(data_root)
    (data_root / ref).write_text("val: images/val\nnames: [a]\n", encoding="utf-8")
    with pytest.raises(InvalidRequest, match="no 'train' key"):
        check_dataset(data_root, ref)


def test_malformed_yaml_is_refused(data_root: Path) -> None:
    ref = _dataset(data_root)
    (data_root / ref).write_text("train: [unclosed\n", encoding="utf-8")
    with pytest.raises(InvalidRequest, match="is not valid YAML"):
        check_dataset(data_root, ref)


def test_missing_file_and_wrong_suffix_are_refused(data_root: Path) -> None:
    with pytest.raises(InvalidRequest, match="does not exist"):
        check_dataset(data_root, "nothing/data.yaml")
    with pytest.raises(InvalidRequest, match=r"\.yaml or \.yml"):
        check_dataset(data_root, "nothing/data.json")
