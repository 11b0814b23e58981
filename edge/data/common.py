"""Checks shared by the format readers: problem reporting, safe paths, image sizes, boxes, splits.

Every reader raises `DataError` where it finds a bad sample or label and hands it to `Problems`,
which re-raises it (strict) or records it and lets the reader skip that sample or label.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.data.dataset import Dataset, Sample
from edge.errors import DataError, check_regular
from edge.sources import images as sources_images

# The one suffix list and image listing, re-exported for the format readers.
from edge.sources.labels import IMAGE_SUFFIXES as IMAGE_SUFFIXES
from edge.sources.labels import is_image as is_image
from edge.sources.labels import list_images as list_images

logger = logging.getLogger(__name__)


# A box may overshoot the image by this many pixels (rounding in the annotation tool) and is then
# clipped; one further outside is an error.
CLIP_TOLERANCE_PX = 1.0

_MAX_WARNINGS = 10  # per load; the rest are only counted, all are kept in Dataset.problems


class Problems:
    """Where readers send what is wrong with the data.

    Strict (`skip_bad=False`): `add` re-raises the error, so loading stops at the first problem.
    Otherwise `add` records the message, logs a warning and returns, and the caller skips the bad
    sample or label.
    """

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.messages: list[str] = []

    def add(self, error: DataError) -> None:
        if not self.skip_bad:
            raise error
        self.messages.append(str(error))
        if len(self.messages) <= _MAX_WARNINGS:
            logger.warning("skipped: %s", error)

    def summarise(self, root: Path) -> None:
        if self.messages:
            logger.warning("%d problem(s) skipped in %s", len(self.messages), root)


def _normal(path: Path) -> Path:
    return Path(os.path.normpath(os.path.abspath(path)))


def inside_root(root: Path, base: Path, name: str, where: str) -> Path:
    """`name` (from an annotation file) resolved against `base`, refusing to leave `root`.

    The check is on the path's text, not its symlinks: links the dataset's owner placed inside the
    folder are trusted, while `..` or an absolute path from an annotation cannot reach outside it.
    The result is `root / <relative part>`.
    """
    text = name.strip().replace("\\", "/")
    if not text:
        raise DataError(f"{where}: empty image path")
    candidate = Path(text) if Path(text).is_absolute() else base / text
    full, root_full = _normal(candidate), _normal(root)
    if len(str(full).encode()) > 4000 or any(len(p.encode()) > 255 for p in full.parts):
        # The OS would refuse it with an OSError at the first look (ENAMETOOLONG).
        raise DataError(f"{where}: image path {name[:80]!r}... is too long")
    if not full.is_relative_to(root_full):
        raise DataError(f"{where}: image path {name!r} points outside the dataset folder {root}")
    return root / full.relative_to(root_full)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image as `cv2.imread` decodes it (EXIF rotation applied).

    Reads only the header when Pillow is installed; otherwise decodes the image with OpenCV.
    """
    if not path.exists():
        raise DataError(f"{path}: image file is missing")
    check_regular(path, str(path), DataError)
    try:
        from PIL import Image
    except ImportError:
        return _decoded_size(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: unreadable image ({exc})") from None
    # EXIF orientations 5-8 are rotations by 90 degrees, which cv2.imread applies.
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _decoded_size(path: Path) -> tuple[int, int]:
    image = read_image(path)
    return image.shape[1], image.shape[0]


def read_image(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """A BGR image from disk (`cv2.imread` `flags`), as the runtime reads one
    (`edge.sources.images.read_image`); DataError naming the file if it cannot be read."""
    image = sources_images.read_image(Path(path), flags)
    if image is None:
        why = sources_images.CUT_SHORT if sources_images.cut_short(Path(path)) else "unreadable"
        raise DataError(f"cannot read image {path}: {why}")
    return image


# No image a reader here decodes is larger a side (JPEG's limit); a larger declared size is a typo,
# and the boxes would be normalised by it.
MAX_IMAGE_SIDE = 65535


def check_declared_size(width: int, height: int, where: str) -> None:
    """Raise for an annotation's image size (both sides positive) no image can have."""
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
        raise DataError(
            f"{where}: image size {width}x{height} is out of range "
            f"(at most {MAX_IMAGE_SIDE} pixels a side)"
        )


def require_image(path: Path, where: str) -> None:
    """Raise unless `path` exists as a file (used where the annotation already gives the size)."""
    if not path.is_file():
        raise DataError(f"{where}: image file {path} is missing")


def check_box(
    box: Sequence[float], width: int, height: int, where: str
) -> tuple[float, float, float, float]:
    """A pixel `x1, y1, x2, y2` box checked against its image, clipped if it overshoots slightly.

    Raises DataError for a non-finite or empty box, or one more than CLIP_TOLERANCE_PX outside.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    shown = f"({x1:g}, {y1:g}, {x2:g}, {y2:g})"
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise DataError(f"{where}: box {shown} has a non-finite coordinate")
    if x2 <= x1 or y2 <= y1:
        raise DataError(f"{where}: box {shown} has zero or negative size")
    tol = CLIP_TOLERANCE_PX
    if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
        raise DataError(f"{where}: box {shown} lies outside the {width}x{height} image")
    clipped = (max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height)))
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        raise DataError(f"{where}: box {shown} lies outside the {width}x{height} image")
    return clipped


def check_class_id(class_id: int, num_classes: int, where: str) -> int:
    if not 0 <= class_id < num_classes:
        raise DataError(f"{where}: class id {class_id} is out of range 0..{num_classes - 1}")
    return class_id


def check_val_fraction(val_fraction: float) -> None:
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")


def split_samples(
    samples: Sequence[Sample], root: Path, val_fraction: float, seed: int
) -> tuple[tuple[Sample, ...], tuple[Sample, ...]]:
    """A deterministic train/val split for a dataset that has none.

    Exactly `round(n * val_fraction)` samples (at least one, and never all, when the fraction is
    positive and there are two or more) go to val: those whose hash of (seed, path inside the root)
    ranks lowest. Hashing instead of shuffling keeps an image in its split when others are added.
    """
    check_val_fraction(val_fraction)
    n = len(samples)
    n_val = round(n * val_fraction)
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    elif n < 2:
        n_val = 0

    def rank(index: int) -> bytes:
        key = f"{seed}:{_relative(samples[index].image_path, root)}".encode()
        return hashlib.blake2b(key, digest_size=8).digest()

    val_indices = set(sorted(range(n), key=rank)[:n_val])
    train = tuple(s for i, s in enumerate(samples) if i not in val_indices)
    val = tuple(s for i, s in enumerate(samples) if i in val_indices)
    return train, val


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def build_dataset(
    root: Path,
    format: str,
    names: Sequence[str],
    train: Sequence[Sample],
    val: Sequence[Sample],
    problems: Problems,
) -> Dataset:
    """The finished Dataset; raises DataError when nothing usable is left to train on."""
    problems.summarise(root)
    detail = ""
    if problems.messages:
        detail = f" ({len(problems.messages)} skipped as bad, first: {problems.messages[0]})"
    if not train and not val:
        raise DataError(f"{root}: no usable images found{detail}")
    if not train:
        raise DataError(f"{root}: the train split is empty ({len(val)} images in val)")
    if not names:
        raise DataError(f"{root}: no class names found")
    if not any(len(s.boxes) for s in (*train, *val)):
        # Most often labels that are not where the reader looks, which would train on nothing.
        raise DataError(f"{root}: {len(train) + len(val)} images but not one box{detail}")
    return Dataset(
        root=root,
        format=format,
        names=tuple(names),
        train=tuple(train),
        val=tuple(val),
        problems=tuple(problems.messages),
    )
