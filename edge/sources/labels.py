"""The one YOLO label-line parser and the one list of image suffixes (numpy only, runtime-safe).

`edge run` (ground truth of a labelled image folder) and `edge eval`/training (edge/data/yolo.py)
both read labels through `parse_label_line`, so one folder gives one ground truth everywhere.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from edge.errors import ANNOTATION_BYTES, EdgeError, read_text_bounded
from edge.types import Detections

log = logging.getLogger(__name__)

# Without a names list a class id names its class: a larger one is a typo or hostile (and an id
# beyond int64 would not even fit the arrays the ground truth is kept in).
MAX_CLASS_ID = 9999
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name so every listing is reproducible."""
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image(p))


def label_path(image: Path) -> Path:
    """`.../images/<rest>.jpg` -> `.../labels/<rest>.txt` (the last `images` folder is replaced)."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def parse_label_line(line: str, width: int, height: int) -> tuple[int, np.ndarray]:
    """One label line -> (class id, pixel xyxy box as float64 (4,)).

    `class cx cy w h` normalised to the image, or a polygon `class x1 y1 x2 y2 ...` (at least
    three points), read as its bounding box. The class id is a whole number as read (it may be
    negative or huge: callers check its range); the box may be non-finite (callers check it).

    Raises:
        ValueError: the line is neither form, or its class id is not a whole number.
    """
    tokens = line.split()
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        raise ValueError(f"malformed label line {line.strip()[:80]!r}") from None
    if len(values) == 5:
        _, cx, cy, w, h = values
        box = (
            (cx - w / 2) * width,
            (cy - h / 2) * height,
            (cx + w / 2) * width,
            (cy + h / 2) * height,
        )
    elif len(values) >= 7 and len(values) % 2 == 1:  # polygon: its bounding box
        xs, ys = values[1::2], values[2::2]
        box = (min(xs) * width, min(ys) * height, max(xs) * width, max(ys) * height)
    else:
        raise ValueError(
            f"malformed label line {line.strip()[:80]!r} (expected 'class cx cy w h' or a polygon)"
        )
    if not values[0].is_integer():  # nan, inf ("1" and 400 zeros reads as inf) and fractions
        raise ValueError(f"class id {tokens[0][:20]!r} is not an integer")
    return int(values[0]), np.asarray(box, np.float64)


def read_truth(label: Path, width: int, height: int) -> Detections | None:
    """Ground truth from a YOLO label file; bad lines are skipped with a warning; None if unreadable."""
    try:
        text = read_text_bounded(label, ANNOTATION_BYTES, str(label))
    except OSError:  # gone since it was listed
        log.warning("%s: unreadable label file ignored", label)
        return None
    except EdgeError as exc:
        log.warning("%s; label file ignored", exc)
        return None
    boxes, ids = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            class_id, box = parse_label_line(line, width, height)
        except ValueError as exc:
            log.warning("%s:%d: %s; line ignored", label, number, exc)
            continue
        if not 0 <= class_id <= MAX_CLASS_ID:
            log.warning(
                "%s:%d: class id %d is out of range 0..%d; line ignored",
                *(label, number, class_id, MAX_CLASS_ID),
            )
            continue
        if not all(math.isfinite(v) for v in box):
            log.warning("%s:%d: box has a non-finite coordinate; line ignored", label, number)
            continue
        boxes.append(box)
        ids.append(class_id)
    xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Detections(xyxy, np.ones(len(ids), np.float32), np.asarray(ids, np.int64))
