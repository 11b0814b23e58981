"""Writes the synthetic dataset in YOLO layout, drawn by the renderer of the `synthetic` source.

Image `i` is `render_still(seed=f(seed, i))`, so a dataset is reproducible from its seed and any
image can be regenerated alone. The dataset is built in a hidden sibling folder and renamed to its
name only when complete (data.yaml last), so a folder under that name is always a whole dataset.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.errors import DataError
from edge.outputs.files import fsync_folder, make_folders, remove_folders

logger = logging.getLogger(__name__)

JPEG_QUALITY = 90


class _Bar(Protocol):
    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


def image_seed(seed: int, index: int) -> int:
    """The renderer seed of image `index`: independent streams for every (seed, index) pair."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def write_synthetic(
    out: str | Path,
    images: int,
    seed: int = 0,
    imgsz: int = 320,
    val_fraction: float = 0.2,
    progress: bool = False,
) -> Path:
    """Render `images` square images of `imgsz` pixels into `out`; return its data.yaml path.

    The last `round(images * val_fraction)` images form val. `out` must be empty or absent.
    Raises ValueError for bad arguments and DataError when `out` is not empty.
    """
    _check_arguments(images, seed, imgsz, val_fraction)
    final = Path(out)
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise DataError(f"{final}: output folder is not empty; choose a new one")
    if final.parent.exists() and not final.parent.is_dir():
        raise DataError(f"{final}: {final.parent} is not a folder")
    # Built in a hidden sibling and renamed when complete: an interrupted run (Ctrl-C, SIGTERM,
    # disk full) leaves nothing under the final name, nor the parent folders it created.
    created = make_folders(final.parent)
    try:
        out = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    except BaseException:
        remove_folders(created)
        raise
    try:
        _render_all(out, images, seed, imgsz, val_fraction, progress)
        if final.exists():
            final.rmdir()  # empty, checked above
        os.rename(out, final)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        remove_folders(created)
        raise
    fsync_folder(final.parent)
    return final / "data.yaml"


def _render_all(
    out: Path, images: int, seed: int, imgsz: int, val_fraction: float, progress: bool
) -> None:
    from edge.sources.synthetic import CLASS_NAMES, render_still  # needs OpenCV: import when used

    n_val = round(images * val_fraction)
    if val_fraction > 0 and images >= 2:
        n_val = min(max(n_val, 1), images - 1)
    for kind in ("images", "labels"):
        for split in ("train", "val"):
            (out / kind / split).mkdir(parents=True, exist_ok=True)
    bar = _progress_bar(images, enabled=progress)
    try:
        for i in range(images):
            split = "val" if i >= images - n_val else "train"
            frame = render_still(image_seed(seed, i), imgsz, imgsz)
            _write_atomic(out / "images" / split / f"{i:06d}.jpg", _jpeg(frame.image))
            lines = yolo_lines(frame.boxes, frame.class_ids, imgsz, imgsz)
            _write_atomic(out / "labels" / split / f"{i:06d}.txt", lines.encode())
            bar.update(1)
    finally:
        bar.close()
    yaml_path = out / "data.yaml"
    _write_atomic(yaml_path, _data_yaml(CLASS_NAMES, images, seed, imgsz).encode())
    with open(yaml_path, "rb+") as f:
        os.fsync(f.fileno())
    logger.info("rendered %d images (%d val)", images, n_val)


def _check_arguments(images: int, seed: int, imgsz: int, val_fraction: float) -> None:
    if images < 1:
        raise ValueError(f"images must be at least 1, got {images}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if not 32 <= imgsz <= 4096:
        raise ValueError(f"imgsz must be in 32..4096, got {imgsz}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")


def yolo_lines(boxes: np.ndarray, class_ids: np.ndarray, width: int, height: int) -> str:
    """YOLO label text (`class cx cy w h`, normalised) for pixel xyxy boxes; empty boxes dropped."""
    scale = np.array([width, height, width, height], np.float64)
    xyxy = np.clip(np.asarray(boxes, np.float64).reshape(-1, 4) / scale, 0.0, 1.0)
    lines = []
    for (x1, y1, x2, y2), c in zip(xyxy, np.asarray(class_ids).reshape(-1), strict=True):
        if x2 > x1 and y2 > y1:
            cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
            lines.append(f"{int(c)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines)


def _jpeg(image: np.ndarray) -> bytes:
    import cv2

    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise DataError("OpenCV could not encode a JPEG")
    return encoded.tobytes()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary name in the same folder, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _data_yaml(names: tuple[str, ...], images: int, seed: int, imgsz: int) -> str:
    # JSON strings are YAML strings, so names need no YAML library to quote.
    return (
        f"# Synthetic dataset from `edge data synth`: {images} images, {imgsz}x{imgsz}, seed {seed}\n"
        "train: images/train\n"
        "val: images/val\n"
        f"nc: {len(names)}\n"
        f"names: [{', '.join(json.dumps(n) for n in names)}]\n"
    )


class _LogBar:
    """Progress as log lines every tenth of the way, where tqdm is not installed."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.step = total, 0, max(total // 10, 1)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.done % self.step == 0 or self.done == self.total:
            logger.info("synth: %d/%d images", self.done, self.total)

    def close(self) -> None:
        pass


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, enabled: bool) -> _Bar:
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm  # optional: part of the `train` extra
    except ImportError:
        return _LogBar(total)
    return tqdm(total=total, desc="synth", unit="img")
