"""COCO detection metrics: mAP50-95, mAP50, per-class AP and PR curves, via pycocotools.

Pure and in memory: training calls `coco_metrics` every epoch and `edge eval` calls it once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import EdgeError
from edge.types import Detections

# pycocotools' defaults: IoU 0.50:0.05:0.95 and 101 recall points.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
_ALL_AREAS = [0.0, 1e5**2]  # the 'all' area range; small/medium/large are not computed


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Metrics of a set of predictions against ground truth.

    Per-class arrays have one entry per name; a class with no ground truth box has AP `nan` and is
    left out of the means, as pycocotools does. `precision` is (IoU thresholds, recall thresholds,
    classes), COCO's interpolated precision at area 'all' and `max_dets`, `nan` for absent classes.
    """

    names: tuple[str, ...]
    map50_95: float
    map50: float
    ap50_95: np.ndarray  # (C,) float64
    ap50: np.ndarray  # (C,) float64
    num_truths: np.ndarray  # (C,) int64, ground-truth boxes per class
    num_predictions: int
    num_images: int
    iou_thresholds: np.ndarray  # (T,)
    recall_thresholds: np.ndarray  # (R,)
    precision: np.ndarray  # (T, R, C)

    def pr_curve(self, class_id: int, iou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """(recall, precision) of one class at the IoU threshold nearest `iou`."""
        if not 0 <= class_id < len(self.names):
            raise ValueError(f"class_id must be in [0, {len(self.names)}), got {class_id}")
        t = int(np.argmin(np.abs(self.iou_thresholds - iou)))
        return self.recall_thresholds.copy(), self.precision[t, :, class_id].copy()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (nan becomes None, since JSON has no nan)."""
        return {
            "map50_95": _finite_or_none(self.map50_95),
            "map50": _finite_or_none(self.map50),
            "num_images": self.num_images,
            "num_predictions": self.num_predictions,
            "num_truths": int(self.num_truths.sum()),
            "per_class": {
                name: {
                    "ap50_95": _finite_or_none(self.ap50_95[i]),
                    "ap50": _finite_or_none(self.ap50[i]),
                    "num_truths": int(self.num_truths[i]),
                }
                for i, name in enumerate(self.names)
            },
        }


def coco_metrics(
    predictions: Sequence[Detections],
    truths: Sequence[Any],
    names: Sequence[str],
    *,
    max_dets: int = 100,
) -> EvalResult:
    """Evaluate `predictions[i]` against `truths[i]` (a `Sample` or a `Detections`) per image.

    Boxes are absolute pixel xyxy of the same image on both sides. `max_dets` keeps the highest
    scoring predictions per image and class (COCO's 100). Raises ValueError when the sequences
    differ in length, a class id is outside `names`, or a prediction is not finite.
    """
    names = tuple(str(n) for n in names)
    if not names:
        raise ValueError("names must name at least one class")
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions but {len(truths)} ground truths")
    if max_dets < 1:
        raise ValueError(f"max_dets must be >= 1, got {max_dets}")
    truth = [_truth_arrays(t) for t in truths]
    _check_finite_and_ids(predictions, truth, len(names))
    gt_ids = [ids for _, ids in truth]
    num_truths = np.bincount(np.concatenate([np.zeros(0, np.int64), *gt_ids]), minlength=len(names))
    num_predictions = sum(len(d) for d in predictions)
    if num_truths.sum() == 0:  # nothing to find: AP is undefined for every class
        precision = np.full((len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(names)), np.nan)
    else:
        precision = _cocoeval_precision(predictions, truth, len(names), max_dets)
    return _result(names, precision, num_truths.astype(np.int64), num_predictions, len(truths))


def as_detections(truth: Any) -> Detections:
    """Ground truth (a `Sample` or `Detections`) as Detections with score 1, for drawing."""
    boxes, ids = _truth_arrays(truth)
    return Detections(boxes, np.ones(len(ids), np.float32), ids)


def _truth_arrays(truth: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(truth, Detections):
        return truth.xyxy.astype(np.float64), truth.class_id
    if hasattr(truth, "boxes") and hasattr(truth, "class_ids"):
        boxes = np.asarray(truth.boxes, np.float64).reshape(-1, 4)
        return boxes, np.asarray(truth.class_ids, np.int64).reshape(-1)
    raise ValueError(f"a ground truth must be a Sample or Detections, got {type(truth).__name__}")


def _check_finite_and_ids(
    predictions: Sequence[Detections],
    truth: Sequence[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
) -> None:
    for i, (boxes, ids) in enumerate(truth):
        _check_ids(ids, num_classes, f"truths[{i}]")
        if not np.isfinite(boxes).all():
            raise ValueError(f"truths[{i}] has non-finite boxes")
    for i, det in enumerate(predictions):
        _check_ids(det.class_id, num_classes, f"predictions[{i}]")
        if not (np.isfinite(det.xyxy).all() and np.isfinite(det.score).all()):
            raise ValueError(f"predictions[{i}] has non-finite boxes or scores")


def _check_ids(ids: np.ndarray, num_classes: int, where: str) -> None:
    if len(ids) and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(
            f"{where} has class ids {sorted(set(ids.tolist()))}; valid range is [0, {num_classes})"
        )


def _xywh(xyxy: np.ndarray) -> np.ndarray:
    """pycocotools' [x, y, w, h], in float64 so w and h are exact differences of the corners."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    wh = np.maximum(xyxy[:, 2:] - xyxy[:, :2], 0.0)  # a reversed box has no area, not negative
    return np.concatenate([xyxy[:, :2], wh], axis=1)


def _annotations(
    per_image: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
) -> list[dict[str, Any]]:
    """COCO annotation dicts; ids start at 1 because pycocotools reads id 0 as 'unmatched'."""
    anns: list[dict[str, Any]] = []
    for image_id, (xyxy, class_ids, scores) in enumerate(per_image, start=1):
        for j, (box, cls) in enumerate(zip(_xywh(xyxy).tolist(), class_ids.tolist(), strict=True)):
            ann = {
                "id": len(anns) + 1,
                "image_id": image_id,
                "category_id": int(cls),
                "bbox": box,
                "area": box[2] * box[3],
                "iscrowd": 0,
            }
            if scores is not None:
                ann["score"] = float(scores[j])
            anns.append(ann)
    return anns


def _mute(*args: object, **kwargs: object) -> None:
    """pycocotools' `print`: its progress lines are noise inside edge."""


def _cocoeval_precision(
    predictions: Sequence[Detections],
    truth: Sequence[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    max_dets: int,
) -> np.ndarray:
    """COCOeval's precision array (T, R, C) at area 'all', built in memory with its prints muted."""
    try:
        from pycocotools import coco, cocoeval
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ModuleNotFoundError:
        raise EdgeError("evaluation needs pycocotools: pip install 'edge[train]'") from None
    # Its progress prints are muted in its own modules (a module-level `print` shadows the builtin
    # there), not by swapping sys.stdout, which would swallow a host program's other threads' lines.
    coco.print = cocoeval.print = _mute

    images = [{"id": i} for i in range(1, len(truth) + 1)]
    categories = [{"id": c, "name": str(c)} for c in range(num_classes)]
    gt_anns = _annotations([(boxes, ids, None) for boxes, ids in truth])
    dt_anns = _annotations([(d.xyxy, d.class_id, d.score) for d in predictions])
    coco_gt, coco_dt = COCO(), COCO()
    # Built directly: COCO.loadRes cannot take an empty list of results.
    coco_gt.dataset = {"images": images, "categories": categories, "annotations": gt_anns}
    coco_dt.dataset = {"images": images, "categories": categories, "annotations": dt_anns}
    coco_gt.createIndex()
    coco_dt.createIndex()
    ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
    ev.params.catIds = list(range(num_classes))
    ev.params.iouThrs = IOU_THRESHOLDS.copy()
    ev.params.recThrs = RECALL_THRESHOLDS.copy()
    ev.params.areaRng = [list(_ALL_AREAS)]
    ev.params.areaRngLbl = ["all"]
    ev.params.maxDets = [max_dets]
    ev.evaluate()
    ev.accumulate()
    precision = np.asarray(ev.eval["precision"][:, :, :, 0, -1], np.float64)
    return np.where(precision < 0, np.nan, precision)  # -1 marks a class with no ground truth


def _result(
    names: tuple[str, ...],
    precision: np.ndarray,
    num_truths: np.ndarray,
    num_predictions: int,
    num_images: int,
) -> EvalResult:
    present = ~np.isnan(precision[0, 0])  # pycocotools' own test: the class had truth to find
    ap_t = np.full((precision.shape[0], len(names)), np.nan)  # AP per IoU threshold and class
    ap_t[:, present] = precision[:, :, present].mean(axis=1)
    ap50_95 = ap_t.mean(axis=0)  # nan stays nan for absent classes
    ap50 = ap_t[0]
    return EvalResult(
        names=names,
        map50_95=float(np.mean(ap50_95[present])) if present.any() else math.nan,
        map50=float(np.mean(ap50[present])) if present.any() else math.nan,
        ap50_95=ap50_95,
        ap50=ap50,
        num_truths=num_truths,
        num_predictions=int(num_predictions),
        num_images=int(num_images),
        iou_thresholds=IOU_THRESHOLDS.copy(),
        recall_thresholds=RECALL_THRESHOLDS.copy(),
        precision=precision,
    )


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
