"""From raw network outputs to Detections: decode the layout, threshold, class-aware NMS, map back.

This is the only code that knows output layouts (`contract.output_format`): `resolve_format` tells
them apart from the output shapes at load, `decode` reads one frame's rows.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from edge.errors import ModelError
from edge.runtime.contract import (
    END_TO_END,
    RTDETR,
    RTDETR_TOPK,
    XYXY_SCORES,
    YOLOV8,
    ModelContract,
)
from edge.runtime.preprocess import Letterbox
from edge.types import Detections

# Layouts whose model already removed duplicates: no NMS on the host (as Ultralytics does).
_NMS_FREE = (END_TO_END, RTDETR, RTDETR_TOPK)


class DropCount:
    """Rows dropped because a box or score was not finite (NaN, inf); thread-safe, summed per run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rows = 0
        self.frames = 0

    def add(self, rows: int) -> None:
        with self._lock:
            self.rows += rows
            self.frames += 1


@dataclass(frozen=True)
class PostprocessOptions:
    """Thresholds: keep boxes scoring at least `conf`, suppress same-class overlaps above `iou`.

    `nonfinite` counts the output rows dropped for NaN or infinite values (shared by every copy of
    these options, so a run can print the total).
    """

    conf: float = 0.25
    iou: float = 0.45
    classes: tuple[int, ...] | None = None
    max_det: int = 300
    nonfinite: DropCount = field(default_factory=DropCount, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf <= 1.0:
            raise ValueError(f"--conf must be in [0, 1], got {self.conf}")
        if not 0.0 < self.iou <= 1.0:
            raise ValueError(f"--iou must be in (0, 1], got {self.iou}")
        if self.max_det < 1:
            raise ValueError(f"--max-det must be at least 1, got {self.max_det}")


def needs_nms(contract: ModelContract) -> bool:
    """Whether the host suppresses duplicates (not for layouts whose model already did)."""
    return contract.output_format not in _NMS_FREE


def _shape(shape: Sequence[object]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def resolve_format(contract: ModelContract, shapes: Sequence[Sequence[int]]) -> ModelContract:
    """The contract with the output layout the model really has, from its output `shapes`.

    `shapes` are the outputs of one real inference (batch first). An edge contract's declared
    layout is checked; an Ultralytics file's layout is told from its shapes (and its `end2end` and
    `description` metadata where a shape alone is ambiguous). Raises ModelError naming the shapes
    found when no layout fits.
    """
    nc = contract.num_classes
    found = ", ".join(_shape(s) for s in shapes) or "none"
    extra = contract.extra
    if "stride" in extra or "Ultralytics" in extra.get("author", ""):
        fmt = _ultralytics_format(contract, shapes)
    else:
        fmt = contract.output_format  # edge metadata states its layout: check it
    if fmt is None or not _fits(fmt, nc, shapes):
        raise ModelError(
            f"outputs {found} match no layout edge reads for {nc} classes (edge boxes [B, N, 4] + "
            f"scores [B, N, {nc}], YOLOv8/11 [B, {4 + nc}, N], end-to-end [B, K, 6], "
            f"RT-DETR [B, K, {4 + nc}])"
        )
    return contract if fmt == contract.output_format else replace(contract, output_format=fmt)


def _ultralytics_format(contract: ModelContract, shapes: Sequence[Sequence[int]]) -> str | None:
    if len(shapes) != 1 or len(shapes[0]) != 3:
        return None
    _, a, b = shapes[0]
    nc = contract.num_classes
    detr = any(k in contract.extra.get("description", "").lower() for k in ("rtdetr", "rt-detr"))
    if a == 4 + nc and b not in (6, 4 + nc):
        return YOLOV8  # [B, 4 + C, N anchors]
    if b == 6:  # rows of (box, score, class); with two classes RT-DETR's older [B, K, 4 + 2] looks
        # the same, and current Ultralytics (8.4+) exports the rows, so the rows are read
        return RTDETR_TOPK if detr else END_TO_END
    if b == 4 + nc:
        return RTDETR
    return YOLOV8 if a == 4 + nc else None


def _fits(fmt: str, nc: int, shapes: Sequence[Sequence[int]]) -> bool:
    if fmt == XYXY_SCORES:
        return (
            len(shapes) >= 2
            and len(shapes[0]) == 3
            and len(shapes[1]) == 3
            and sorted([shapes[0][2], shapes[1][2]]) == sorted([4, nc])
            and shapes[0][1] == shapes[1][1]
        )
    if len(shapes) < 1 or len(shapes[0]) != 3:
        return False
    _, a, b = shapes[0]
    return {YOLOV8: a == 4 + nc, END_TO_END: b == 6, RTDETR: b == 4 + nc, RTDETR_TOPK: b == 6}.get(
        fmt, False
    )


def decode(
    outputs: Sequence[np.ndarray], contract: ModelContract, item: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Batch item `item` of the outputs -> (boxes xyxy (N, 4) in input pixels, scores (N, C))."""
    nc = contract.num_classes
    fmt = contract.output_format
    if fmt == XYXY_SCORES:
        if len(outputs) < 2:
            raise ModelError(
                f"expected outputs boxes [B,N,4] and scores [B,N,{nc}], got {len(outputs)} output(s)"
            )
        boxes, scores = outputs[0], outputs[1]
        if boxes.ndim != 3 and scores.ndim == 3 and boxes.shape[-1] != 4:
            boxes, scores = scores, boxes
        if boxes.shape[-1] != 4 and scores.shape[-1] == 4:
            boxes, scores = scores, boxes
        if boxes.ndim != 3 or boxes.shape[-1] != 4 or scores.ndim != 3 or scores.shape[-1] != nc:
            raise ModelError(
                f"expected boxes [B,N,4] and scores [B,N,{nc}], got {list(boxes.shape)} and {list(scores.shape)}"
            )
        return boxes[item], scores[item]
    out = outputs[0]
    if fmt == YOLOV8:
        if out.ndim != 3 or out.shape[1] != 4 + nc:
            raise ModelError(f"expected a YOLOv8 output [B, {4 + nc}, N], got {list(out.shape)}")
        pred = out[item].T  # (N, 4 + nc)
        return _cxcywh_to_xyxy(pred[:, :4]), pred[:, 4:]
    if fmt in (END_TO_END, RTDETR_TOPK):
        if out.ndim != 3 or out.shape[2] != 6:
            raise ModelError(
                f"expected an output [B, K, 6] (box, score, class), got {list(out.shape)}"
            )
        pred = np.asarray(out[item], np.float32)
        boxes = pred[:, :4]
        if fmt == RTDETR_TOPK:
            boxes = _cxcywh_to_xyxy(boxes) * _input_scale(contract)
        return boxes, _row_scores(pred[:, 4], pred[:, 5], nc)
    if fmt == RTDETR:
        if out.ndim != 3 or out.shape[2] != 4 + nc:
            raise ModelError(f"expected an RT-DETR output [B, K, {4 + nc}], got {list(out.shape)}")
        pred = np.asarray(out[item], np.float32)
        return _cxcywh_to_xyxy(pred[:, :4]) * _input_scale(contract), pred[:, 4:]
    raise ModelError(f"unknown output format {fmt!r}")


def _input_scale(contract: ModelContract) -> np.ndarray:
    """RT-DETR boxes are fractions of the input; the gate sets `imgsz` to the size it is fed."""
    h, w = contract.imgsz
    return np.array([w, h, w, h], np.float32)


def _row_scores(score: np.ndarray, cls: np.ndarray, nc: int) -> np.ndarray:
    """(score, class) rows as an (N, C) score matrix; a row whose class is not one of the model's
    (padding, -1) scores 0, and a non-finite score stays non-finite so `select` counts it."""
    ok = np.isfinite(cls) & (cls >= 0) & (cls < nc)
    out = np.zeros((len(score), nc), np.float32)
    rows = np.flatnonzero(ok)
    out[rows, np.rint(cls[rows]).astype(np.int64).clip(0, nc - 1)] = score[rows]
    out[~np.isfinite(score)] = np.nan
    return out


def _cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    cxcy, wh = b[:, :2], b[:, 2:4]
    return np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1)


def select(
    boxes: np.ndarray, scores: np.ndarray, options: PostprocessOptions, nms: bool = True
) -> Detections:
    """Drop non-finite rows, best class per box, score threshold, class filter, class-aware NMS
    (OpenCV; skipped with `nms=False` for models that did their own), top max_det."""
    if len(boxes) == 0:
        return Detections.empty()
    finite = np.isfinite(boxes).all(axis=1) & np.isfinite(scores).all(axis=1)
    if not finite.all():
        options.nonfinite.add(int((~finite).sum()))
        boxes, scores = boxes[finite], scores[finite]
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
    if not nms:
        idx = np.argsort(-score, kind="stable")[: options.max_det]
        return Detections(boxes[idx], score[idx], class_id[idx])
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
    """The whole post-processing stage: decode, select, and map boxes back to the source frame;
    the Detections carry the model's class names."""
    boxes, scores = decode(outputs, contract, item)
    nms = needs_nms(contract)
    dets = select(np.asarray(boxes, np.float32), np.asarray(scores, np.float32), options, nms)
    if len(dets) == 0:
        return Detections.empty(contract.names)
    return Detections(letterbox.inverse(dets.xyxy), dets.score, dets.class_id, names=contract.names)
