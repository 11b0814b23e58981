"""`load_dataset`: tells a dataset's format from its files and reads it into a `Dataset`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edge.data.coco import find_coco_files, read_coco
from edge.data.common import check_val_fraction
from edge.data.dataset import Dataset
from edge.data.voc import find_annotation_dir, read_voc
from edge.data.yolo import find_yaml, read_yolo
from edge.errors import DataError

FORMATS = ("yolo", "coco", "voc")
_READERS: dict[str, Callable[..., Dataset]] = {
    "yolo": read_yolo,
    "coco": read_coco,
    "voc": read_voc,
}


def detect_format(path: str | Path) -> str:
    """ "yolo", "coco" or "voc" for a dataset file or folder; DataError when it is none of them.

    A file: `.yaml`/`.yml` is YOLO, `.json` is COCO. A folder, first match wins: a data.yaml
    (YOLO), `annotations/*.xml` (VOC), `images/` with `labels/` (YOLO), COCO JSON files.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if not path.is_dir():  # a FIFO or a device too: its reader refuses it in one line
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            return "yolo"
        if suffix == ".json":
            return "coco"
        raise DataError(f"{path}: unknown dataset file (expected data.yaml or COCO .json)")
    if find_yaml(path) is not None:
        return "yolo"
    if find_annotation_dir(path) is not None:
        return "voc"
    if (path / "images").is_dir() and (path / "labels").is_dir():
        return "yolo"
    if find_coco_files(path):
        return "coco"
    raise DataError(
        f"{path}: unknown dataset format (expected data.yaml, images/ + labels/, "
        "annotations/*.xml or COCO .json)"
    )


def load_dataset(
    path: str | Path,
    skip_bad: bool = False,
    val_fraction: float = 0.2,
    seed: int = 0,
    *,
    format: str | None = None,
) -> Dataset:
    """Read a YOLO, COCO or Pascal VOC dataset (format detected unless given).

    Boxes come out as float32 pixel `x1, y1, x2, y2` in each image's own size. A dataset without a
    train/val split is split deterministically: `round(n * val_fraction)` images, chosen by a hash
    of `seed` and each image's path.

    Raises:
        DataError: the path is missing, of no known format, or empty; or (unless `skip_bad`) an
            image is missing or unreadable, a label is malformed, a class id is out of range, a
            box lies outside its image (a pixel of overshoot is clipped), or an annotation names
            an image outside the dataset folder. With `skip_bad`, such samples or labels are
            left out, logged, and listed in `Dataset.problems`.
        ValueError: `val_fraction` is not in [0, 1) or `format` is not one of FORMATS.
    """
    check_val_fraction(val_fraction)
    if format is not None and format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    fmt = format or detect_format(path)
    return _READERS[fmt](Path(path), skip_bad=skip_bad, val_fraction=val_fraction, seed=seed)
