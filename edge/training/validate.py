"""Validation during training: letterbox the val images, predict, NMS, COCO mAP via edge.evaluation.

Pre- and post-processing are the runtime's own (`edge.runtime.preprocess`, `edge.runtime.postprocess`), so the
numbers match what the exported model will score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edge.data.dataset import Sample
from edge.evaluation import coco_metrics, read_image
from edge.runtime.postprocess import PostprocessOptions, select
from edge.runtime.preprocess import Letterbox, letterbox
from edge.types import Detections

CACHE_LIMIT_BYTES = 512 * 2**20  # keep letterboxed val images in memory below this


class Validator:
    """mAP of a model on `samples`; images are read once and kept when they fit in memory."""

    def __init__(
        self,
        samples: Sequence[Sample],
        names: Sequence[str],
        imgsz: int,
        batch_size: int,
        *,
        conf: float = 0.001,
        iou: float = 0.6,
    ) -> None:
        self.samples = tuple(samples)
        self.names = tuple(names)
        self.imgsz = int(imgsz)
        self.batch_size = int(batch_size)
        self.options = PostprocessOptions(conf=conf, iou=iou, max_det=300)
        fits = len(self.samples) * self.imgsz**2 * 3 <= CACHE_LIMIT_BYTES
        self._cache: dict[int, tuple[np.ndarray, Letterbox]] | None = {} if fits else None

    def __len__(self) -> int:
        return len(self.samples)

    def __call__(self, model: Any) -> dict[str, float]:
        """{"map50", "map50_95"} of `model` (outputs boxes and logits or scores)."""
        if not self.samples:
            return {"map50": float("nan"), "map50_95": float("nan")}
        predictions: list[Detections] = []
        for start in range(0, len(self.samples), self.batch_size):
            indices = list(range(start, min(start + self.batch_size, len(self.samples))))
            canvases = [self._canvas(i) for i in indices]
            x = np.zeros((self.batch_size, self.imgsz, self.imgsz, 3), np.float32)  # fixed shape
            for row, (canvas, _) in enumerate(canvases):
                x[row] = canvas[..., ::-1]  # BGR -> RGB
            out = model.predict_on_batch(x)
            boxes = np.asarray(out["boxes"], np.float32)
            scores = _scores(out)
            for row, (_, lb) in enumerate(canvases):
                dets = select(boxes[row], scores[row], self.options)
                predictions.append(Detections(lb.inverse(dets.xyxy), dets.score, dets.class_id))
        result = coco_metrics(predictions, self.samples, self.names)
        return {"map50": float(result.map50), "map50_95": float(result.map50_95)}

    def _canvas(self, i: int) -> tuple[np.ndarray, Letterbox]:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        item = letterbox(read_image(self.samples[i].image_path), (self.imgsz, self.imgsz))
        if self._cache is not None:
            self._cache[i] = item
        return item


def _scores(out: dict[str, Any]) -> np.ndarray:
    if "scores" in out:
        return np.asarray(out["scores"], np.float32)
    logits = np.asarray(out["logits"], np.float32)
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))
