"""Live precision/recall against ground truth (synthetic source, labelled images): greedy IoU matching."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.types import Detections


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match(pred: Detections, truth: Detections, iou: float = 0.5) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives): highest score first, same class, IoU >= iou."""
    if len(pred) == 0:
        return 0, 0, len(truth)
    if len(truth) == 0:
        return 0, len(pred), 0
    ious = box_iou(pred.xyxy, truth.xyxy)
    ious[pred.class_id[:, None] != truth.class_id[None, :]] = 0.0
    taken = np.zeros(len(truth), bool)
    tp = 0
    for i in np.argsort(-pred.score, kind="stable"):
        row = np.where(taken, 0.0, ious[i])
        j = int(row.argmax())
        if row[j] >= iou:
            taken[j] = True
            tp += 1
    return tp, len(pred) - tp, len(truth) - tp


@dataclass
class LiveScore:
    """Running precision and recall over the frames seen so far."""

    iou: float = 0.5
    tp: int = 0
    fp: int = 0
    fn: int = 0
    frames: int = 0

    def add(self, pred: Detections, truth: Detections) -> None:
        tp, fp, fn = match(pred, truth, self.iou)
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.frames += 1

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
