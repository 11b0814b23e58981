"""The one in-memory representation every dataset format is read into."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Sample:
    """One labelled image.

    `boxes` are absolute pixel corners `x1, y1, x2, y2` (float32, shape (n, 4)) in the image's own
    size; `class_ids` index `Dataset.names` (int64, shape (n,)).
    """

    image_path: Path
    width: int
    height: int
    boxes: np.ndarray
    class_ids: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        if len(boxes) != len(ids):
            raise ValueError(f"{self.image_path}: {len(boxes)} boxes but {len(ids)} class ids")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "class_ids", ids)


@dataclass(frozen=True)
class Dataset:
    """A labelled dataset: class names and the train/val splits.

    `format` is the format it was read from ("yolo", "coco", "voc"); `root` is its folder.
    """

    root: Path
    format: str
    names: tuple[str, ...]
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def num_classes(self) -> int:
        return len(self.names)
