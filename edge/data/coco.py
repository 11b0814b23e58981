"""Reads COCO detection JSON: one annotation file, or a folder of them (train / val) with images.

Category ids (often 1-based, with gaps) map to class indices in id order. `iscrowd` annotations
are left out, as COCO training does. The split of a file comes from its name or its folder
(`instances_train2017.json`, `valid/_annotations.coco.json`); a single unsplit file is split
deterministically. Images are looked up next to the JSON, in `images/`, or in the folder named
like the file (`train2017/` for `instances_train2017.json`), whichever holds them.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.data.common import (
    Problems,
    build_dataset,
    check_box,
    check_declared_size,
    check_val_fraction,
    image_size,
    inside_root,
    require_image,
    split_samples,
)
from edge.data.dataset import Dataset, Sample
from edge.errors import LARGE_BYTES, DataError, read_text_bounded

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _File:
    """One parsed annotation file and the split it belongs to (None: unsplit)."""

    path: Path
    split: str | None
    images: list[dict[str, Any]]
    annotations: list[dict[str, Any]]
    categories: list[dict[str, Any]]


def find_coco_files(folder: Path) -> list[Path]:
    """JSON files in the folder, its annotations/ folder, or one level down; instances_* first."""
    found = sorted(
        {*folder.glob("*.json"), *folder.glob("annotations/*.json"), *folder.glob("*/*.json")}
    )
    instances = [p for p in found if p.name.startswith("instances")]
    return instances or found


def read_coco(
    path: str | Path, *, skip_bad: bool = False, val_fraction: float = 0.2, seed: int = 0
) -> Dataset:
    """Read a COCO JSON file or a folder holding them. DataError for bad data."""
    check_val_fraction(val_fraction)
    path = Path(path)
    if not path.is_dir():
        root = path.parent.parent if path.parent.name == "annotations" else path.parent
        files = [_load(path, None)]
    else:
        root = path
        files = [_load(p, split) for p, split in _assign_splits(path, find_coco_files(path))]
    ids = _category_ids(files)
    names = tuple(name for _, name in ids)
    index = {cid: i for i, (cid, _) in enumerate(ids)}
    problems = Problems(skip_bad)
    splits: dict[str | None, list[Sample]] = defaultdict(list)
    for f in files:
        splits[f.split] += _samples(f, root, index, problems)
    if "train" not in splits and None not in splits:
        raise DataError(f"{root}: no train annotations found")
    if "val" in splits:
        train, val = splits["train"], splits["val"]
    else:
        train, val = split_samples(splits[None] + splits["train"], root, val_fraction, seed)
    return build_dataset(root, "coco", names, train, val, problems)


def _split_of(path: Path) -> str | None:
    text = f"{path.parent.name}/{path.stem}".lower()
    if "train" in text:
        return "train"
    if "val" in text:
        return "val"
    return "test" if "test" in text else None


def _assign_splits(folder: Path, paths: list[Path]) -> list[tuple[Path, str | None]]:
    if not paths:
        raise DataError(f"{folder}: no COCO annotation JSON found")
    if len(paths) == 1:
        return [(paths[0], None)]
    chosen: dict[str | None, Path] = {}
    for p in paths:
        split = _split_of(p)
        if split is None:
            raise DataError(f"{p}: cannot tell its split (name it after train, val or test)")
        if split in chosen:
            raise DataError(
                f"{p}: several annotation files for split {split}: also {chosen[split]}"
            )
        chosen[split] = p
    chosen.pop("test", None)
    return [(p, s) for s, p in chosen.items()]


def _load(path: Path, split: str | None) -> _File:
    try:
        data = json.loads(read_text_bounded(path, LARGE_BYTES, str(path), DataError))
    except (FileNotFoundError, json.JSONDecodeError, RecursionError) as exc:
        raise DataError(f"{path}: cannot read JSON ({exc})") from None
    keys = ("images", "annotations", "categories")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in keys):
        raise DataError(
            f"{path}: not a COCO detection file (needs images, annotations, categories)"
        )
    return _File(path, split, data["images"], data["annotations"], data["categories"])


def _category_ids(files: list[_File]) -> list[tuple[int, str]]:
    """(category id, name) over all files, in id order; the same id must have the same name."""
    names: dict[int, str] = {}
    for f in files:
        for category in f.categories:
            try:
                cid, name = int(category["id"]), str(category["name"])
            except (KeyError, TypeError, ValueError, OverflowError):
                raise DataError(f"{f.path}: malformed category {str(category)[:80]}") from None
            if names.setdefault(cid, name) != name:
                raise DataError(
                    f"{f.path}: category {cid} is {name!r} here, {names[cid]!r} elsewhere"
                )
    return sorted(names.items())


def _image_dir(f: _File, root: Path) -> Path:
    """The candidate folder that holds most of the file's first images."""
    stem = f.path.stem.removeprefix("instances_")
    candidates = [
        f.path.parent,
        root / stem,
        root / "images" / (f.split or ""),
        root / "images",
        root,
    ]
    sample = [str(im.get("file_name", "")) for im in f.images[:20] if isinstance(im, dict)]

    def hits(folder: Path) -> int:
        return sum(bool(name) and _is_file(folder / name) for name in sample)

    return max(candidates, key=hits)  # the first of equals wins


def _samples(f: _File, root: Path, index: dict[int, int], problems: Problems) -> list[Sample]:
    folder = _image_dir(f, root)
    declared = {e.get("id") for e in f.images if isinstance(e, dict) and _is_id(e.get("id"))}
    images: dict[Any, tuple[Path, int, int]] = {}
    for entry in f.images:
        try:
            key, value = _image(entry, f.path, root, folder)
            if key in images:
                raise DataError(f"{f.path}: image id {key} appears twice")
        except DataError as exc:
            problems.add(exc)
            continue
        images[key] = value
    boxes: dict[Any, list[tuple[float, float, float, float]]] = defaultdict(list)
    classes: dict[Any, list[int]] = defaultdict(list)
    for number, ann in enumerate(f.annotations):
        try:
            parsed = _annotation(ann, number, f.path, images, declared, index)
        except DataError as exc:
            problems.add(exc)
            continue
        if parsed is not None:
            boxes[parsed[0]].append(parsed[2])
            classes[parsed[0]].append(parsed[1])
    samples = [Sample(p, w, h, boxes[k], classes[k]) for k, (p, w, h) in images.items()]
    return sorted(samples, key=lambda s: s.image_path)


def _image(
    entry: Any, json_path: Path, root: Path, folder: Path
) -> tuple[Any, tuple[Path, int, int]]:
    if not isinstance(entry, dict) or not _is_id(entry.get("id")) or not entry.get("file_name"):
        raise DataError(f"{json_path}: image entry without id or file_name: {str(entry)[:80]}")
    where = f"{json_path}: image {entry['id']}"
    path = inside_root(root, folder, str(entry["file_name"]), where)
    width, height = entry.get("width"), entry.get("height")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        check_declared_size(width, height, where)
        require_image(path, where)
    else:
        width, height = image_size(path)
    return entry["id"], (path, width, height)


def _annotation(
    ann: Any,
    number: int,
    json_path: Path,
    images: dict[Any, tuple[Path, int, int]],
    declared: set[Any],
    index: dict[int, int],
) -> tuple[Any, int, tuple[float, float, float, float]] | None:
    """(image id, class index, pixel xyxy box), or None for a crowd region or a skipped image."""
    if not isinstance(ann, dict):
        raise DataError(f"{json_path}: annotation {number} is not an object")
    where = f"{json_path}: annotation {ann.get('id', number)}"
    if ann.get("iscrowd"):
        return None
    image_id, category = ann.get("image_id"), ann.get("category_id")
    if not _is_id(image_id) or image_id not in declared:
        raise DataError(f"{where}: image id {image_id!r} is not among the images")
    if image_id not in images:
        return None  # its image was bad and is already reported
    if not isinstance(category, int) or category not in index:
        raise DataError(f"{where}: category id {category!r} is not among the categories")
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise DataError(f"{where}: bbox must be [x, y, width, height], got {bbox!r}")
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond any float
        shown = ", ".join(
            f"a {len(str(abs(v)))}-digit integer" if isinstance(v, int) and len(str(v)) > 20
            else repr(v)[:20]
            for v in bbox
        )  # fmt: skip
        raise DataError(f"{where}: bbox must be numbers that fit a float, got [{shown}]") from None
    _, width, height = images[image_id]
    return image_id, index[category], check_box((x, y, x + w, y + h), width, height, where)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the OS; reported when the image is looked up
        return False


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)
