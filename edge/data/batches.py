"""Training batches (the input pipeline): decode, box-aware augmentation, padding, prefetching.

Pure numpy and OpenCV (OpenCV releases the GIL, so threads decode in parallel); `edge.training`
wraps `TrainBatches` for Keras. With augmentation off, an image is placed exactly as the runtime's
`edge.runtime.preprocess.letterbox` places it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from edge.data.common import read_image
from edge.data.dataset import Sample
from edge.errors import DataError
from edge.runtime.preprocess import PAD_VALUE, resize

log = logging.getLogger(__name__)

TARGET_WIDTH = 5  # class id (-1 = padding), x1, y1, x2, y2
_REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


@dataclass(frozen=True)
class Augment:
    """Augmentation strengths; every probability or gain 0 turns that step off.

    `scale` draws a zoom from [1 - scale, 1 + scale]; `translate` shifts by up to that fraction
    of the image; `hsv` are hue, saturation and value gains; `mosaic` is the probability of
    tiling four images. Boxes narrower than `min_size` pixels or with less than `min_visible`
    of their area left inside the image are dropped.
    """

    hflip: float = 0.5
    scale: float = 0.5
    translate: float = 0.1
    hsv: tuple[float, float, float] = (0.015, 0.7, 0.4)
    mosaic: float = 0.5
    min_size: float = 2.0
    min_visible: float = 0.1

    def __post_init__(self) -> None:
        for name in ("hflip", "mosaic", "min_visible"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if not 0.0 <= self.scale < 1.0:
            raise ValueError(f"scale must be in [0, 1), got {self.scale}")
        if not 0.0 <= self.translate <= 0.5:
            raise ValueError(f"translate must be in [0, 0.5], got {self.translate}")
        if len(self.hsv) != 3 or any(g < 0 for g in self.hsv):
            raise ValueError(f"hsv must be three gains >= 0, got {self.hsv}")

    @classmethod
    def off(cls) -> Augment:
        return cls(hflip=0.0, scale=0.0, translate=0.0, hsv=(0.0, 0.0, 0.0), mosaic=0.0)


NO_AUGMENT = Augment.off()


class TrainBatches:
    """Indexable batches of one epoch: `batch(epoch, index)` -> (images, targets).

    images: float32 [B, S, S, 3] RGB 0..255; targets: float32 [B, max_boxes, 5] (class, x1, y1,
    x2, y2 in input pixels, class -1 where padded). Every batch is full (the order wraps around)
    so shapes never change. A batch depends only on (seed, epoch, index), so any thread may build
    any batch. `cache` keeps decoded, resized images in memory (worth it for small datasets).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        imgsz: int,
        batch_size: int,
        *,
        augment: Augment = NO_AUGMENT,
        max_boxes: int = 100,
        seed: int = 0,
        shuffle: bool = True,
        cache: bool = False,
    ) -> None:
        if not samples:
            raise DataError("no training images")
        if imgsz < 32:
            raise ValueError(f"imgsz must be >= 32, got {imgsz}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_boxes < 1:
            raise ValueError(f"max_boxes must be >= 1, got {max_boxes}")
        self.samples = tuple(samples)
        self.imgsz = int(imgsz)
        self.batch_size = int(batch_size)
        self.augment = augment
        self.max_boxes = int(max_boxes)
        self.seed = int(seed)
        self.shuffle = shuffle
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None
        self._orders: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return -(-len(self.samples) // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of `epoch` (a permutation when shuffling)."""
        with self._lock:
            if epoch not in self._orders:
                n = len(self.samples)
                rng = np.random.default_rng([self.seed, epoch, 1])
                self._orders = {epoch: rng.permutation(n) if self.shuffle else np.arange(n)}
            return self._orders[epoch]

    def batch(
        self, epoch: int, index: int, *, mosaic: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Batch `index` of `epoch`; `mosaic=False` turns mosaic off (the last epochs)."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} outside [0, {len(self)})")
        order = self.order(epoch)
        rng = np.random.default_rng([self.seed, epoch, index, 2])
        s = self.imgsz
        images = np.empty((self.batch_size, s, s, 3), np.float32)
        targets = np.zeros((self.batch_size, self.max_boxes, TARGET_WIDTH), np.float32)
        targets[..., 0] = -1.0
        for row in range(self.batch_size):
            i = int(order[(index * self.batch_size + row) % len(order)])
            use_mosaic = mosaic and rng.random() < self.augment.mosaic
            image, boxes, classes = self._example(i, rng, use_mosaic)
            images[row] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            targets[row] = pad_targets(boxes, classes, self.max_boxes)
        return images, targets

    def _example(self, i: int, rng: np.random.Generator, mosaic: bool) -> tuple[np.ndarray, ...]:
        s, aug = self.imgsz, self.augment
        if mosaic:
            others = rng.integers(0, len(self.samples), 3)
            canvas, boxes, classes = self._mosaic([i, *map(int, others)], rng)
            centre = (float(s), float(s))
        else:
            canvas, boxes, classes = self._resized(i)
            h, w = canvas.shape[:2]
            # The point that lands mid-output: with no augmentation this reproduces the integer
            # offsets of edge.runtime.preprocess.letterbox, so training and runtime inputs match exactly.
            centre = (s / 2 - round((s - w) / 2 - 0.1), s / 2 - round((s - h) / 2 - 0.1))
        zoom = 1.0 + rng.uniform(-aug.scale, aug.scale)
        shift = rng.uniform(-aug.translate, aug.translate, 2) * s
        matrix = np.array(
            [
                [zoom, 0.0, s / 2 + shift[0] - zoom * centre[0]],
                [0.0, zoom, s / 2 + shift[1] - zoom * centre[1]],
            ],
            np.float32,
        )
        image = cv2.warpAffine(
            canvas, matrix, (s, s), flags=cv2.INTER_LINEAR, borderValue=(PAD_VALUE,) * 3
        )
        boxes, classes = _move_boxes(boxes, classes, matrix, s, aug)
        if aug.hflip and rng.random() < aug.hflip:
            image = np.ascontiguousarray(image[:, ::-1])
            boxes = np.stack([s - boxes[:, 2], boxes[:, 1], s - boxes[:, 0], boxes[:, 3]], axis=1)
        if any(aug.hsv):
            image = hsv_jitter(image, rng, aug.hsv)
        return image, boxes, classes

    def _resized(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image i (BGR) with its long side scaled to imgsz, and its boxes in those pixels."""
        if self._cache is not None and i in self._cache:
            image, boxes = self._cache[i]
        else:
            image, boxes = load_resized(self.samples[i], self.imgsz)
            if self._cache is not None:
                self._cache[i] = (image, boxes)
        return image, boxes, self.samples[i].class_ids

    def _mosaic(self, indices: list[int], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """Four images around a random centre of a 2S x 2S canvas (YOLOv4/v5 mosaic)."""
        s = self.imgsz
        canvas = np.full((2 * s, 2 * s, 3), PAD_VALUE, np.uint8)
        xc, yc = (int(v) for v in rng.uniform(0.5 * s, 1.5 * s, 2))
        all_boxes, all_classes = [], []
        for k, i in enumerate(indices):
            image, boxes, classes = self._resized(i)
            h, w = image.shape[:2]
            # Quadrant k: the tile's corner touching the centre.
            x0, y0 = (xc - w if k in (0, 2) else xc), (yc - h if k in (0, 1) else yc)
            cx1, cy1 = max(x0, 0), max(y0, 0)
            cx2, cy2 = min(x0 + w, 2 * s), min(y0 + h, 2 * s)
            canvas[cy1:cy2, cx1:cx2] = image[cy1 - y0 : cy2 - y0, cx1 - x0 : cx2 - x0]
            # Boxes keep only what was pasted: a tile may hang over the canvas edge.
            placed = boxes + np.array([x0, y0, x0, y0], np.float32)
            kept = _clip_boxes(placed, (cx1, cy1, cx2, cy2), self.augment)
            all_boxes.append(placed[kept].clip([cx1, cy1, cx1, cy1], [cx2, cy2, cx2, cy2]))
            all_classes.append(classes[kept])
        return canvas, np.concatenate(all_boxes), np.concatenate(all_classes)


def load_resized(sample: Sample, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode a sample (BGR uint8) with its long side resized to `size`; boxes scaled to match.

    Large JPEGs are decoded at reduced resolution directly (much faster than full decode).
    Raises DataError when the image cannot be read.
    """
    long_side = max(sample.width, sample.height)
    factor = next((f for f in (8, 4, 2) if long_side / f >= size), 1)
    image = read_image(sample.image_path, _REDUCED[factor])
    h, w = image.shape[:2]
    ratio = size / max(h, w)
    if ratio != 1.0:
        new = (max(round(w * ratio), 1), max(round(h * ratio), 1))
        image = resize(image, new)
    sx = image.shape[1] / max(sample.width, 1)
    sy = image.shape[0] / max(sample.height, 1)
    boxes = sample.boxes * np.array([sx, sy, sx, sy], np.float32)
    return image, boxes


def _move_boxes(
    boxes: np.ndarray, classes: np.ndarray, matrix: np.ndarray, size: int, aug: Augment
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes through a scale+shift affine, clipped to the image; mostly-cut or tiny ones dropped."""
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    zoom, tx, ty = matrix[0, 0], matrix[0, 2], matrix[1, 2]
    moved = boxes * zoom + np.array([tx, ty, tx, ty], np.float32)
    keep = _clip_boxes(moved, (0, 0, size, size), aug)
    return np.clip(moved[keep], 0, size).astype(np.float32), classes[keep]


def _clip_boxes(boxes: np.ndarray, region: tuple[float, ...], aug: Augment) -> np.ndarray:
    """Mask of boxes that keep at least `min_size` pixels a side and `min_visible` of their area
    inside `region` (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = region
    clipped = boxes.clip([x1, y1, x1, y1], [x2, y2, x2, y2])
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    full = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6)
    return (w >= aug.min_size) & (h >= aug.min_size) & (w * h >= aug.min_visible * full)


def hsv_jitter(image: np.ndarray, rng: np.random.Generator, gains: Sequence[float]) -> np.ndarray:
    """A new BGR image with hue, saturation and value scaled by random factors (LUTs, fast)."""
    r = rng.uniform(-1, 1, 3) * np.asarray(gains) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_hue = ((x * r[0]) % 180).astype(np.uint8)
    lut_sat = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(x * r[2], 0, 255).astype(np.uint8)
    merged = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    return cv2.cvtColor(merged, cv2.COLOR_HSV2BGR)


def pad_targets(boxes: np.ndarray, classes: np.ndarray, max_boxes: int) -> np.ndarray:
    """[max_boxes, 5] (class, x1, y1, x2, y2), class -1 in unused rows; keeps the largest boxes."""
    out = np.zeros((max_boxes, TARGET_WIDTH), np.float32)
    out[:, 0] = -1.0
    if len(boxes) > max_boxes:
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        keep = np.sort(np.argsort(-area, kind="stable")[:max_boxes])
        boxes, classes = boxes[keep], classes[keep]
    n = len(boxes)
    out[:n, 0] = classes
    out[:n, 1:] = boxes
    return out


def iterate(
    batches: TrainBatches, epoch: int, *, workers: int = 4, prefetch: int = 8, mosaic: bool = True
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The batches of one epoch in order, built by `workers` threads up to `prefetch` ahead."""
    if workers < 1 or prefetch < 1:
        raise ValueError(f"workers and prefetch must be >= 1, got {workers} and {prefetch}")
    with ThreadPoolExecutor(workers, thread_name_prefix="edge-batches") as pool:
        pending: deque[Future[tuple[np.ndarray, np.ndarray]]] = deque()
        next_index = 0
        try:
            while next_index < len(batches) or pending:
                while next_index < len(batches) and len(pending) < prefetch:
                    pending.append(pool.submit(batches.batch, epoch, next_index, mosaic=mosaic))
                    next_index += 1
                yield pending.popleft().result()  # re-raises a worker's exception here
        finally:
            for future in pending:
                future.cancel()


def benchmark(
    batches: TrainBatches, *, steps: int = 20, workers: int = 4, warmup: int = 2
) -> dict[str, float]:
    """Batches per second the pipeline alone delivers (no model): is input the bottleneck?"""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    epoch, done, start = 0, 0, 0
    while done < steps + warmup:
        for _ in iterate(batches, epoch, workers=workers):
            done += 1
            if done == warmup:
                start = time.perf_counter_ns()
            if done >= steps + warmup:
                break
        epoch += 1
    seconds = (time.perf_counter_ns() - start) / 1e9
    return {
        "steps_per_s": steps / seconds,
        "images_per_s": steps * batches.batch_size / seconds,
        "seconds": seconds,
    }
