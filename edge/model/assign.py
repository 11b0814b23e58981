"""Task-aligned target assignment (TOOD / YOLOv8 style) for anchor-free points, in `keras.ops`.

Each ground-truth box takes the `topk` points inside it that best combine class score and IoU;
a point claimed by several boxes goes to the one it overlaps most. Soft class targets are the
alignment metric normalised per box to its best IoU, so well-localised points learn high scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keras import ops

from edge.model.boxes import iou


@dataclass(frozen=True)
class Assignment:
    """Targets per point: boxes [B, N, 4] xyxy, class scores [B, N, C] (soft), foreground [B, N]."""

    boxes: Any
    scores: Any
    foreground: Any


def task_aligned_assign(
    scores: Any,
    boxes: Any,
    points: Any,
    gt_boxes: Any,
    gt_classes: Any,
    *,
    topk: int = 10,
    alpha: float = 0.5,
    beta: float = 6.0,
    eps: float = 1e-9,
) -> Assignment:
    """Assign ground truth to points; no gradient flows through the result.

    Args:
        scores: predicted class probabilities [B, N, C] (after sigmoid).
        boxes: predicted boxes [B, N, 4] xyxy, same pixels as `gt_boxes`.
        points: point centres [N, 2] (x, y).
        gt_boxes: ground truth [B, M, 4] xyxy, padded.
        gt_classes: class ids [B, M] (int or float); a negative id marks padding.
    """
    scores = ops.stop_gradient(ops.cast(scores, "float32"))
    boxes = ops.stop_gradient(ops.cast(boxes, "float32"))
    gt_boxes = ops.cast(gt_boxes, "float32")
    num_classes = scores.shape[-1]
    num_gt = gt_boxes.shape[1]
    gt_valid = ops.cast(gt_classes >= 0, "float32")  # [B, M]
    labels = ops.cast(ops.maximum(gt_classes, 0), "int32")

    inside = _points_inside(points, gt_boxes, eps) * gt_valid[..., None]  # [B, M, N]
    overlaps = ops.maximum(iou(gt_boxes[:, :, None, :], boxes[:, None, :, :]), 0.0) * inside
    label_onehot = ops.one_hot(labels, num_classes)  # [B, M, C]
    class_scores = ops.einsum("bnc,bmc->bmn", scores, label_onehot)
    metric = (class_scores**alpha) * (overlaps**beta) * inside

    # Top-k by threshold rather than by index lists: ties may admit a few more points, but it
    # avoids a [B, M, k, N] one-hot, which is large at 640 px.
    k = min(topk, metric.shape[-1])
    kth = ops.top_k(metric, k)[0][..., k - 1 : k]
    positive = ops.cast(metric >= kth, "float32") * inside

    # A point claimed by several boxes goes to the box it overlaps most.
    claims = ops.sum(positive, axis=1)  # [B, N]
    best = ops.transpose(ops.one_hot(ops.argmax(overlaps, axis=1), num_gt), (0, 2, 1))
    positive = ops.where((claims > 1)[:, None, :], best, positive)
    foreground = ops.cast(ops.sum(positive, axis=1) > 0, "float32")  # [B, N]
    owner = ops.argmax(positive, axis=1)  # [B, N]

    target_boxes = ops.take_along_axis(gt_boxes, owner[..., None], axis=1)
    target_labels = ops.take_along_axis(labels, owner, axis=1)
    target_scores = ops.one_hot(target_labels, num_classes) * foreground[..., None]

    # Normalise: each box's best-aligned point gets a target equal to that box's best IoU.
    metric = metric * positive
    best_metric = ops.max(metric, axis=-1, keepdims=True)
    best_overlap = ops.max(overlaps * positive, axis=-1, keepdims=True)
    quality = ops.max(metric * best_overlap / (best_metric + eps), axis=1)  # [B, N]
    return Assignment(
        boxes=ops.stop_gradient(target_boxes),
        scores=ops.stop_gradient(target_scores * quality[..., None]),
        foreground=ops.stop_gradient(foreground),
    )


def _points_inside(points: Any, gt_boxes: Any, eps: float) -> Any:
    """[B, M, N] 1.0 where point n lies strictly inside box m."""
    px = points[None, None, :, 0]
    py = points[None, None, :, 1]
    x1, y1, x2, y2 = (gt_boxes[..., i : i + 1] for i in range(4))
    margin = ops.minimum(ops.minimum(px - x1, py - y1), ops.minimum(x2 - px, y2 - py))
    return ops.cast(margin > eps, "float32")
