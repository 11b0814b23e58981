"""From raw network outputs to Detections: decode the layout, threshold, class-aware NMS, map back.

This is the only code that knows output layouts (`contract.output_format`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.contract import XYXY_SCORES, YOLOV8, ModelContract
from edge.errors import ModelError
from edge.preprocess import Letterbox
from edge.types import Detections


@dataclass(frozen=True)
class PostprocessOptions:
    """Thresholds: keep boxes scoring at least `conf`, suppress same-class overlaps above `iou`."""

    conf: float = 0.25
    iou: float = 0.45
    classes: tuple[int, ...] | None = None
    max_det: int = 300

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf <= 1.0:
            raise ValueError(f"--conf must be in [0, 1], got {self.conf}")
        if not 0.0 < self.iou <= 1.0:
            raise ValueError(f"--iou must be in (0, 1], got {self.iou}")
        if self.max_det < 1:
            raise ValueError(f"--max-det must be at least 1, got {self.max_det}")


def decode(
    outputs: Sequence[np.ndarray], contract: ModelContract, item: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Batch item `item` of the outputs -> (boxes xyxy (N, 4) in input pixels, scores (N, C))."""
    nc = contract.num_classes
    if contract.output_format == XYXY_SCORES:
        if len(outputs) < 2:
            raise ModelError(
                f"expected outputs boxes [B,N,4] and scores [B,N,{nc}], got {len(outputs)} output(s)"
            )
        boxes, scores = outputs[0], outputs[1]
        if boxes.ndim != 3 and scores.ndim == 3 and boxes.shape[-1] != 4:
            boxes, scores = scores, boxes
        if boxes.ndim != 3 or boxes.shape[-1] != 4 or scores.ndim != 3 or scores.shape[-1] != nc:
            raise ModelError(
                f"expected boxes [B,N,4] and scores [B,N,{nc}], got {list(boxes.shape)} and {list(scores.shape)}"
            )
        return boxes[item], scores[item]
    if contract.output_format == YOLOV8:
        out = outputs[0]
        if out.ndim != 3 or out.shape[1] != 4 + nc:
            raise ModelError(f"expected a YOLOv8 output [B, {4 + nc}, N], got {list(out.shape)}")
        pred = out[item].T  # (N, 4 + nc)
        cxcy, wh = pred[:, :2], pred[:, 2:4]
        return np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1), pred[:, 4:]
    raise ModelError(f"unknown output format {contract.output_format!r}")


def select(boxes: np.ndarray, scores: np.ndarray, options: PostprocessOptions) -> Detections:
    """Best class per box, score threshold, class filter, class-aware NMS (OpenCV), top max_det."""
    if len(boxes) == 0:
        return Detections.empty()
    class_id = scores.argmax(axis=1)
    score = scores[np.arange(len(scores)), class_id]
    keep = score >= options.conf
    if options.classes is not None:
        keep &= np.isin(class_id, options.classes)
    if not keep.any():
        return Detections.empty()
    boxes, score, class_id = boxes[keep], score[keep], class_id[keep]
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    idx = cv2.dnn.NMSBoxesBatched(
        xywh.astype(np.float64).tolist(),
        score.astype(np.float64).tolist(),
        class_id.astype(np.int32).tolist(),
        float(options.conf),
        float(options.iou),
    )
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    # OpenCV returns them by descending score; keep the best max_det.
    idx = idx[np.argsort(-score[idx], kind="stable")][: options.max_det]
    return Detections(boxes[idx], score[idx], class_id[idx])


def postprocess(
    outputs: Sequence[np.ndarray],
    contract: ModelContract,
    letterbox: Letterbox,
    options: PostprocessOptions,
    item: int = 0,
) -> Detections:
    """The whole post-processing stage: decode, select, and map boxes back to the source frame."""
    boxes, scores = decode(outputs, contract, item)
    dets = select(np.asarray(boxes, np.float32), np.asarray(scores, np.float32), options)
    if len(dets) == 0:
        return dets
    return Detections(letterbox.inverse(dets.xyxy), dets.score, dets.class_id)
