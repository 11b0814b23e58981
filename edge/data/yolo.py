"""Reads YOLO datasets: a `data.yaml` (train / val / names) or a folder with `images/` and `labels/`.

Labels are one `class cx cy w h` line per box, normalised to the image size (a polygon line,
`class x1 y1 x2 y2 ...`, is read as its bounding box). An image without a label file has no boxes.
The label of `.../images/<rest>.jpg` is `.../labels/<rest>.txt`, as in Ultralytics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.data.common import (
    Problems,
    build_dataset,
    check_box,
    check_class_id,
    check_val_fraction,
    image_size,
    inside_root,
    is_image,
    split_samples,
)
from edge.data.dataset import Dataset, Sample
from edge.errors import ANNOTATION_BYTES, CONFIG_BYTES, LIST_BYTES, DataError, read_text_bounded
from edge.sources.labels import MAX_CLASS_ID, label_path, parse_label_line

logger = logging.getLogger(__name__)

YAML_NAMES = ("data.yaml", "dataset.yaml", "data.yml", "dataset.yml")
# Files that list class names, one a line, for a folder without data.yaml (LabelImg, Darknet).
NAMES_FILES = ("classes.txt", "names.txt", "obj.names")


def find_yaml(folder: Path) -> Path | None:
    return next((folder / n for n in YAML_NAMES if (folder / n).exists()), None)


def read_yolo(
    path: str | Path, *, skip_bad: bool = False, val_fraction: float = 0.2, seed: int = 0
) -> Dataset:
    """Read a YOLO dataset from its data.yaml, a folder holding one, or an images/labels folder.

    Raises DataError for bad data (see `edge.data.load_dataset`); ValueError for bad arguments.
    """
    check_val_fraction(val_fraction)
    path = Path(path)
    yaml_path = find_yaml(path) if path.is_dir() else path
    problems = Problems(skip_bad)
    if yaml_path is not None:
        root, names, train_images, val_images = _layout_from_yaml(yaml_path)
    else:
        root = path
        names, train_images, val_images = _layout_from_folder(path)
    num_classes = len(names) if names is not None else None
    train = _read_samples(train_images, num_classes, problems)
    val = _read_samples(val_images, num_classes, problems) if val_images is not None else None
    if names is None:  # class ids are the only names we have
        top = max(
            (int(s.class_ids.max()) for s in (*train, *(val or ())) if len(s.class_ids)), default=-1
        )
        names = tuple(str(i) for i in range(top + 1))
        logger.warning("%s: no data.yaml or classes.txt; naming classes by their ids", root)
    if val is None:
        train, val = split_samples(train, root, val_fraction, seed)
    return build_dataset(root, "yolo", names, train, val, problems)


# --- layout -------------------------------------------------------------------------------------


def _layout_from_yaml(
    yaml_path: Path,
) -> tuple[Path, tuple[str, ...], list[Path], list[Path] | None]:
    """(root, names, train images, val images or None) from a data.yaml."""
    config = _load_yaml(yaml_path)
    root = yaml_path.parent
    # `path` may move the base folder, but only within the folder that holds data.yaml.
    base = root
    if config.get("path") not in (None, ""):
        base = inside_root(root, root, str(config["path"]), f"{yaml_path}: path")
    if config.get("train") in (None, "", []):
        raise DataError(f"{yaml_path}: no 'train' entry")
    names = _names_from_yaml(config, yaml_path)
    train = _images_of(config["train"], root, base, f"{yaml_path}: train")
    val = None
    if config.get("val") not in (None, "", []):
        val = _images_of(config["val"], root, base, f"{yaml_path}: val")
    return root, names, train, val


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        raise DataError("reading data.yaml needs PyYAML: pip install 'edge[train]'") from None
    try:
        config = yaml.safe_load(read_text_bounded(path, ANNOTATION_BYTES, str(path), DataError))
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise DataError(f"{path}: cannot read YAML ({detail})") from None
    if not isinstance(config, dict):
        raise DataError(f"{path}: expected a mapping with train, val and names")
    return config


def _names_from_yaml(config: dict[str, Any], path: Path) -> tuple[str, ...]:
    names = config.get("names")
    if isinstance(names, dict):  # {0: person, 1: car}
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise DataError(f"{path}: names keys must be class ids 0, 1, ...") from None
        if ids != list(range(len(ids))):
            raise DataError(f"{path}: names keys must be 0..{len(ids) - 1} without gaps")
        by_id = {int(k): v for k, v in names.items()}
        return tuple(str(by_id[i]) for i in ids)
    if isinstance(names, list) and names:
        return tuple(str(n) for n in names)
    nc = config.get("nc")
    if names is None and isinstance(nc, int) and nc > 0:
        return tuple(str(i) for i in range(nc))
    raise DataError(f"{path}: 'names' must be a non-empty list or a {{id: name}} mapping")


def _images_of(entry: Any, root: Path, base: Path, where: str) -> list[Path]:
    """The images a train/val entry names: a folder, a .txt list of images, or a list of those."""
    entries = entry if isinstance(entry, list) else [entry]
    images: list[Path] = []
    for item in entries:
        target = _resolve_entry(str(item), root, base, where)
        if target.is_dir():
            images += sorted(p for p in target.rglob("*") if p.is_file() and is_image(p))
        elif target.exists() and target.suffix == ".txt":  # a FIFO too: the reader refuses it
            images += _images_listed_in(target, root)
        elif is_image(target):  # a missing one is reported with the other bad samples
            images.append(target)
        else:
            raise DataError(f"{where}: {target} does not exist")
    return images


def _resolve_entry(text: str, root: Path, base: Path, where: str) -> Path:
    try:
        return inside_root(root, base, text, where)
    except DataError:
        # Roboflow writes `train: ../train/images` for a data.yaml that sits next to `train/`.
        stripped = text.replace("\\", "/")
        while stripped.startswith("../"):
            stripped = stripped[3:]
        if stripped != text and (base / stripped).exists():
            return inside_root(root, base, stripped, where)
        raise


def _images_listed_in(list_file: Path, root: Path) -> list[Path]:
    images = []
    text = read_text_bounded(list_file, LIST_BYTES, str(list_file), DataError)
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            images.append(
                inside_root(root, list_file.parent, line.strip(), f"{list_file}:{number}")
            )
    return images


def _layout_from_folder(
    folder: Path,
) -> tuple[tuple[str, ...] | None, list[Path], list[Path] | None]:
    """(names or None, train images, val images or None) from images/ (+ optional train/, val/)."""
    images_dir = folder / "images"
    if not images_dir.is_dir() or not (folder / "labels").is_dir():
        raise DataError(f"{folder}: a YOLO folder needs images/ and labels/ (or a data.yaml)")
    names = _names_from_file(folder)

    def listing(d: Path) -> list[Path]:
        return sorted(p for p in d.rglob("*") if p.is_file() and is_image(p))

    if (images_dir / "train").is_dir():
        val_dir = images_dir / "val"
        return names, listing(images_dir / "train"), listing(val_dir) if val_dir.is_dir() else None
    return names, listing(images_dir), None


def _names_from_file(folder: Path) -> tuple[str, ...] | None:
    for d in (folder, folder / "labels"):
        for name in NAMES_FILES:
            if (d / name).exists():
                text = read_text_bounded(d / name, CONFIG_BYTES, str(d / name), DataError)
                return tuple(line.strip() for line in text.splitlines() if line.strip())
    return None


# --- labels -------------------------------------------------------------------------------------


def _read_samples(
    images: Sequence[Path], num_classes: int | None, problems: Problems
) -> list[Sample]:
    samples = []
    for image in images:
        try:
            width, height = image_size(image)
            boxes, ids = _read_labels(label_path(image), width, height, num_classes, problems)
        except DataError as exc:
            problems.add(exc)
            continue
        samples.append(Sample(image, width, height, boxes, ids))
    return samples


def _read_labels(
    path: Path, width: int, height: int, num_classes: int | None, problems: Problems
) -> tuple[np.ndarray, np.ndarray]:
    boxes: list[tuple[float, float, float, float]] = []
    ids: list[int] = []
    if path.exists():
        text = read_text_bounded(path, ANNOTATION_BYTES, f"label file {path}", DataError)
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                class_id, box = parse_line(line, width, height, num_classes, f"{path}:{number}")
            except DataError as exc:
                problems.add(exc)
                continue
            boxes.append(box)
            ids.append(class_id)
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(ids, np.int64)


def parse_line(
    line: str, width: int, height: int, num_classes: int | None, where: str
) -> tuple[int, tuple[float, float, float, float]]:
    """One label line -> (class id, pixel xyxy box), checked against the image and class count.

    The line's syntax is read by `edge.sources.labels.parse_label_line`, the parser `edge run` uses too.
    """
    try:
        class_id, xyxy = parse_label_line(line, width, height)
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None
    box = (float(xyxy[0]), float(xyxy[1]), float(xyxy[2]), float(xyxy[3]))
    if num_classes is not None:
        check_class_id(class_id, num_classes, where)
    elif not 0 <= class_id <= MAX_CLASS_ID:
        raise DataError(
            f"{where}: class id {class_id} is out of range 0..{MAX_CLASS_ID} "
            "(list the class names in data.yaml or classes.txt for more)"
        )
    return class_id, check_box(box, width, height, where)
