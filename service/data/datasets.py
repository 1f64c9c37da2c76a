"""Checking a request's data.yaml before anything trains on it.

A data.yaml is untrusted input: ultralytics would run its ``download:`` key (a URL, a bash line or
Python code) when a split is missing, and its paths may point anywhere. What leaves this module is
a new, minimal data.yaml: absolute paths that were checked to lie inside the data root, the class
names, and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from workers.label_cache import SPLITS
from service.errors import InvalidRequest

MAX_DATA_YAML_BYTES = 1 << 20


def _inside(root: Path, path: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _load_yaml(field: str, value: str, path: Path) -> dict[str, Any]:
    if path.stat().st_size > MAX_DATA_YAML_BYTES:
        raise InvalidRequest(field, value, f"is larger than {MAX_DATA_YAML_BYTES} bytes")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidRequest(field, value, f"is not valid YAML: {exc}") from None
    if not isinstance(spec, dict):
        raise InvalidRequest(field, value, "must be a YAML mapping with train, val and names")
    return spec


def _check_names(field: str, value: str, spec: dict[str, Any]) -> dict[int, str]:
    names = spec.get("names")
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise InvalidRequest(field, value, "data.yaml needs 'names': a list or mapping of class names")
    if sorted(names) != list(range(len(names))) or not all(isinstance(n, str) and n for n in names.values()):
        raise InvalidRequest(field, value, "data.yaml 'names' must map class ids 0..nc-1 to non-empty strings")
    nc = spec.get("nc")
    if nc is not None and nc != len(names):
        raise InvalidRequest(field, value, f"data.yaml says nc: {nc!r} but lists {len(names)} names")
    return {int(k): str(v) for k, v in names.items()}


def _check_image_list(field: str, value: str, root: Path, listing: Path, key: str) -> None:
    # ultralytics reads './x' lines relative to the list file and other relative lines relative to
    # the worker's working directory, which differs by node: accept only the unambiguous forms.
    for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        if entry.startswith("./"):
            target = (listing.parent / entry[2:]).resolve()
        elif Path(entry).is_absolute():
            target = Path(entry).resolve()
        else:
            raise InvalidRequest(
                field,
                value,
                f"{key} list {listing.name} line {number}: use './' or an absolute path, got {entry!r}",
            )
        if not _inside(root, target):
            raise InvalidRequest(field, value, f"{key} list {listing.name} line {number} leaves the data root")


def _check_split(field: str, value: str, root: Path, base: Path, key: str, entry: Any) -> str:
    if not isinstance(entry, str) or not entry:
        raise InvalidRequest(field, value, f"data.yaml '{key}' must be a path, got {entry!r}")
    target = (base / entry).resolve()
    if not _inside(root, target):
        raise InvalidRequest(field, value, f"data.yaml '{key}' path {entry!r} leaves the data root")
    if not target.exists():
        raise InvalidRequest(field, value, f"data.yaml '{key}' path {entry!r} does not exist")
    if target.is_file():
        _check_image_list(field, value, root, target, key)
    return str(target)


def check_dataset(data_root: Path, relative: str, field: str = "dataset") -> dict[str, Any]:
    """Validate ``relative`` (a data.yaml under ``data_root``) and return the data.yaml to train on.

    Raises InvalidRequest naming ``field`` and the value for anything outside the root, a
    ``download`` key, missing splits or names, or malformed YAML.
    """
    try:
        return _check_dataset(data_root, relative, field)
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long for the file system, ...
        raise InvalidRequest(field, relative, f"is not a usable path: {exc}") from None


def _check_dataset(data_root: Path, relative: str, field: str) -> dict[str, Any]:
    root = data_root.resolve()
    if Path(relative).is_absolute():
        raise InvalidRequest(field, relative, "must be a path relative to the data root, not an absolute path")
    path = (root / relative).resolve()  # follows symlinks, so a link pointing out is caught here
    if not _inside(root, path):
        raise InvalidRequest(field, relative, "is outside the data root")
    if Path(relative).suffix not in (".yaml", ".yml") or path.suffix not in (".yaml", ".yml"):
        raise InvalidRequest(field, relative, "must name a .yaml or .yml file")
    if not path.is_file():
        raise InvalidRequest(field, relative, "does not exist under the data root")
    spec = _load_yaml(field, relative, path)
    if "download" in spec:
        raise InvalidRequest(
            field, relative, "data.yaml has a 'download' key, which ultralytics would run; download the data "
            "yourself and remove the key",
        )  # fmt: skip
    for key in ("train", "val"):
        if key not in spec:
            raise InvalidRequest(field, relative, f"data.yaml has no '{key}' key")
    names = _check_names(field, relative, spec)

    base_entry = spec.get("path")
    if base_entry is not None and not isinstance(base_entry, str):
        raise InvalidRequest(field, relative, f"data.yaml 'path' must be a path, got {base_entry!r}")
    base = (path.parent / base_entry).resolve() if base_entry else path.parent
    if not _inside(root, base):
        raise InvalidRequest(field, relative, f"data.yaml 'path' {base_entry!r} leaves the data root")

    checked: dict[str, Any] = {"path": str(base)}
    for key in SPLITS:
        if key in spec and spec[key] is not None:
            entries = spec[key] if isinstance(spec[key], list) else [spec[key]]
            paths = [_check_split(field, relative, root, base, key, e) for e in entries]
            checked[key] = paths if isinstance(spec[key], list) else paths[0]
    checked["names"] = names
    checked["nc"] = len(names)
    return checked
