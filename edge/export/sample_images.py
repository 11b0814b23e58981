"""The images export runs through both models: a dataset, a folder of images, or synthetic frames.

Each image goes through `edge.runtime.preprocess.prepare`, the letterbox `edge run` applies, so parity,
int8 calibration and latency see what the deployed model sees.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.data.common import read_image
from edge.data.dataset import Dataset, Sample
from edge.errors import DataError
from edge.runtime.contract import ModelContract

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageSource:
    """Where images come from: a dataset (`dataset`), plain image files (`files`), or neither
    (synthetic frames)."""

    path: Path | None = None
    dataset: Dataset | None = None
    files: tuple[Path, ...] = ()

    @property
    def kind(self) -> str:
        return "dataset" if self.dataset is not None else "images" if self.files else "synthetic"


@dataclass(frozen=True, eq=False)
class ExportImages:
    """Prepared inputs ([1, H, W, 3] float32 each, as Keras takes them), the same letterboxed
    images as uint8 BGR ([1, H, W, 3]: what a uint8-input export takes), what they are, and the
    samples for mAP."""

    tensors: tuple[np.ndarray, ...]
    description: str
    eval_samples: tuple[Sample, ...] = ()  # the dataset's val split
    names: tuple[str, ...] = ()  # the dataset's classes
    canvases: tuple[np.ndarray, ...] = ()

    def inputs_for(self, contract: ModelContract) -> tuple[np.ndarray, ...]:
        """What a model with `contract` is fed: the uint8 canvases or the float tensors."""
        return self.canvases if contract.input_dtype == "uint8" else self.tensors


def open_source(path: Path | None) -> ImageSource:
    """Read `--calib-data`: a YOLO/COCO/VOC dataset, else a folder of images. DataError when it
    is missing, malformed, or holds no image (an empty folder)."""
    if path is None:
        return ImageSource()
    from edge.data import detect_format, load_dataset
    from edge.data.common import list_images

    path = Path(path)
    if not path.exists():
        raise DataError(f"--calib-data {path}: no such file or folder")
    try:
        fmt = detect_format(path)
    except DataError as exc:
        if not path.is_dir():
            raise DataError(f"--calib-data {exc}") from None
        files = tuple(list_images(path))  # not a dataset: a plain folder of images
        if not files:
            raise DataError(
                f"--calib-data {path}: no images in this folder (and not a dataset)"
            ) from None
        return ImageSource(path=path, files=files)
    try:
        return ImageSource(path=path, dataset=load_dataset(path, format=fmt))
    except DataError as exc:
        raise DataError(f"--calib-data {exc}") from None


def export_images(
    source: ImageSource,
    count: int,
    contract: ModelContract,
    eval_images: int | None = None,
    seed: int = 0,
) -> ExportImages:
    """`count` prepared images from `source`, spread over it; synthetic 4:3 frames without one."""
    size = contract.imgsz
    if source.dataset is not None:
        ds = source.dataset
        samples = (*ds.train, *ds.val)
        chosen = [samples[i] for i in _spread(len(samples), count)]
        images = [_read(s.image_path) for s in chosen]
        val = ds.val or ds.train
        tensors, canvases = _prepared(images, contract)
        return ExportImages(
            tensors=tensors,
            description=f"{len(images)} images of {source.path}",
            eval_samples=val[:eval_images] if eval_images else val,
            names=ds.names,
            canvases=canvases,
        )
    if source.files:
        chosen_files = [source.files[i] for i in _spread(len(source.files), count)]
        tensors, canvases = _prepared([_read(p) for p in chosen_files], contract)
        return ExportImages(tensors, f"{len(tensors)} images of {source.path}", canvases=canvases)
    from edge.sources.synthetic import render_still

    h, w = size
    # Frames larger than the input and of another aspect, so the letterbox scales and pads.
    frames = [render_still(seed + i, max(16, w * 2), max(16, h * 3 // 2)) for i in range(count)]
    tensors, canvases = _prepared([f.image for f in frames], contract)
    return ExportImages(
        tensors,
        f"{count} synthetic frames ({w * 2}x{h * 3 // 2}, seed {seed})",
        canvases=canvases,
    )


def _prepared(
    images: list[np.ndarray], contract: ModelContract
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Letterbox each image once: the float tensor Keras takes and the uint8 BGR canvas."""
    from edge.runtime.preprocess import letterbox, to_input

    tensors, canvases = [], []
    for image in images:
        canvas, _ = letterbox(image, contract.imgsz)
        tensors.append(to_input(canvas, contract))
        canvases.append(np.ascontiguousarray(canvas[None]))
    return tuple(tensors), tuple(canvases)


def _spread(total: int, count: int) -> list[int]:
    """`count` indices spread evenly over `total` items (all of them when count >= total)."""
    if count >= total:
        return list(range(total))
    return sorted({int(round(v)) for v in np.linspace(0, total - 1, count)})


def _read(path: Path) -> np.ndarray:
    try:
        return read_image(path)
    except DataError as exc:
        raise DataError(f"--calib-data: {exc}") from None
