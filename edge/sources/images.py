"""Images, folders and globs as a source, with YOLO ground truth where a label file exists."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from edge.errors import SourceError
from edge.sources.base import SequentialSource, Source
from edge.sources.labels import label_path, read_truth
from edge.types import Detections

log = logging.getLogger(__name__)


def truth_of(image: Path, width: int, height: int) -> Detections | None:
    """The ground truth of an image in an `images/` folder, from `.../labels/<same path>.txt`."""
    if "images" not in image.parts[:-1]:
        return None
    label = label_path(image)
    return read_truth(label, width, height) if label.exists() else None


def image_source(paths: list[Path], name: str) -> Source:
    """Read `paths` in order, skipping unreadable images with a warning each.

    Raises SourceError (when read) if not one of them can be read: nothing could be processed.
    Until the first good image the warnings wait, so that case is one line, not one per image.
    """
    it = iter(paths)
    unread: list[Path] = []  # unreadable images before the first good one

    def read() -> tuple[np.ndarray, Detections | None] | None:
        for p in it:
            img = read_image(p)
            if img is not None and img.size:
                for bad in unread:
                    log.warning("%s: unreadable image skipped", bad)
                unread.clear()
                src.stats.read_any = True  # type: ignore[attr-defined]
                return img, truth_of(p, img.shape[1], img.shape[0])
            src.stats.bad += 1
            if getattr(src.stats, "read_any", False):
                log.warning("%s: unreadable image skipped", p)
            else:
                unread.append(p)
        if unread:
            more = f" and {len(unread) - 1} more" if len(unread) > 1 else ""
            raise SourceError(f"--source {name}: no image could be read ({unread[0]}{more})")
        return None

    src = SequentialSource(name, read, None)
    src.image_paths = paths  # type: ignore[attr-defined]
    return src


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """cv2.imread, but None for a JPEG cut short (`cut_short`) and for anything but a regular
    file (a FIFO blocks the read, /dev/zero never ends). Every image edge decodes comes here."""
    path = Path(path)
    if not path.is_file() or cut_short(path):
        return None
    return cv2.imread(str(path), flags)


CUT_SHORT = "a JPEG cut short (no end-of-image marker): copy or save it again"


def cut_short(path: Path) -> bool:
    """Whether `path` is a JPEG without its end-of-image marker (a copy or download that
    stopped). libjpeg would decode it padded with grey, printing "Premature end of JPEG file" on
    the process's stderr, past any logging; an unreadable file counts as cut short."""
    if path.suffix.lower() not in (".jpg", ".jpeg"):
        return False
    try:
        with open(path, "rb") as fh:
            fh.seek(max(path.stat().st_size - 64, 0))
            return b"\xff\xd9" not in fh.read()  # no end-of-image marker near the end
    except OSError:
        return True
