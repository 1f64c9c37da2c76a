"""A label-scan cache for data sets the worker cannot write to.

ultralytics scans every image and label file before training (sizes, corrupt files, boxes) and saves
the result next to the labels, as ``<labels folder>.cache``; the next training loads it instead.
Where that folder is read-only (a data root mounted ``:ro``, as docker-compose does), the save fails
with a warning and every trial pays the whole scan again: minutes per trial on a large data set.

ultralytics finds a split's labels by replacing the last ``/images/`` of each image path with
``/labels/``, and resolves a split folder's symlinks but not those inside an image list. So for a
split folder ``<base>/images/<rest>`` whose cache cannot be written, the worker builds a mirror
under its own cache folder: ``<mirror>/images/<rest>`` and ``<mirror>/labels/<rest>`` are symlinks to
the real folders, and the split becomes an image list (``<mirror>/images.txt``, written anew for
each trial so added images count) of paths through the mirror. Training reads the same files; the
cache lands in the mirror's own ``labels`` folder. Splits given as image lists or without an
``images`` folder are left as they are.
"""

from __future__ import annotations

import glob
import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args

# The splits a data.yaml may name, in the order training reads them.
Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = get_args(Split)


def can_write(folder: Path) -> bool:
    """Whether a file can be created in ``folder``: a real try, which a read-only mount refuses even
    to root (``os.access`` answers by permission bits alone on some file systems)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _cache_folder(split: Path) -> Path | None:
    """The folder ultralytics would write ``split``'s cache into, or None when its labels are not
    found through an ``images`` folder."""
    parts = split.parts
    if "images" not in parts:
        return None
    at = len(parts) - 1 - parts[::-1].index("images")
    labels = Path(*parts[:at], "labels", *parts[at + 1 :])
    return labels.parent


def _link(link: Path, target: Path) -> None:
    """Point ``link`` at ``target``, atomically, so concurrent trials on one node cannot trip over
    each other's half-made mirror."""
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target, target_is_directory=True)
    os.replace(temporary, link)


def _mirror(split: Path, cache_root: Path) -> Path:
    parts = split.parts
    at = len(parts) - 1 - parts[::-1].index("images")
    base, rest = Path(*parts[:at]), parts[at + 1 :]
    mirror = cache_root / hashlib.sha256(str(split).encode()).hexdigest()[:16]
    images = Path(mirror, "images", *rest)
    _link(images, split)
    _link(Path(mirror, "labels", *rest), Path(base, "labels", *rest))
    # The same search ultralytics runs on a folder (it keeps the image suffixes among these).
    files = sorted(glob.glob(str(Path(glob.escape(str(images))) / "**" / "*.*"), recursive=True))
    listing = mirror / "images.txt"
    temporary = listing.with_name(f".images.{os.getpid()}.tmp")
    temporary.write_text("".join(f"{f}\n" for f in files), encoding="utf-8")
    os.replace(temporary, listing)
    return listing


def with_label_cache(
    data: Mapping[str, Any], cache_root: Path, writable: Callable[[Path], bool] = can_write
) -> dict[str, Any]:
    """``data`` (a checked data.yaml) with each folder split whose label cache cannot be written
    pointed at a mirror under ``cache_root``; unchanged where the data set is writable or where
    ``cache_root`` itself cannot be made."""
    result = dict(data)
    for key in SPLITS:
        entry = data.get(key)
        if not isinstance(entry, str) or not Path(entry).is_dir():
            continue
        folder = _cache_folder(Path(entry))
        if folder is None or not folder.is_dir() or writable(folder):
            continue
        try:
            cache_root.mkdir(parents=True, exist_ok=True)
            result[key] = str(_mirror(Path(entry), cache_root))
        except OSError:
            continue  # no worse than without: ultralytics scans and warns that it cannot save
    return result
