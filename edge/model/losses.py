"""The detection loss: task-aligned assignment, CIoU box loss and BCE class loss on soft targets.

Both terms are normalised by the sum of the soft class targets, as in YOLOv8, so the loss scale
does not depend on the number of objects in a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keras import ops

from edge.model.assign import task_aligned_assign
from edge.model.boxes import ciou

# Targets arrive padded as [B, M, 5]: class id (negative = padding), then x1, y1, x2, y2 pixels.
TARGET_WIDTH = 5


@dataclass(frozen=True)
class DetectionLoss:
    """Loss weights and assignment settings; `parts` gives the weighted terms, `__call__` their sum."""

    box_weight: float = 7.5
    class_weight: float = 1.0
    topk: int = 10
    alpha: float = 0.5
    beta: float = 6.0

    def __post_init__(self) -> None:
        if self.box_weight < 0 or self.class_weight < 0:
            raise ValueError("loss weights must be >= 0")
        if self.topk < 1:
            raise ValueError(f"topk must be >= 1, got {self.topk}")

    def parts(self, targets: Any, boxes: Any, logits: Any, points: Any) -> dict[str, Any]:
        """Weighted loss terms {"box", "cls"} (scalars).

        Args:
            targets: [B, M, 5] padded ground truth (class, x1, y1, x2, y2).
            boxes: predicted boxes [B, N, 4] xyxy pixels.
            logits: class logits [B, N, C].
            points: point centres [N, 2].
        """
        targets = ops.cast(targets, "float32")
        boxes = ops.cast(boxes, "float32")
        logits = ops.cast(logits, "float32")
        assigned = task_aligned_assign(
            ops.sigmoid(logits),
            boxes,
            points,
            targets[..., 1:5],
            targets[..., 0],
            topk=self.topk,
            alpha=self.alpha,
            beta=self.beta,
        )
        normaliser = ops.maximum(ops.sum(assigned.scores), 1.0)
        bce = _bce_with_logits(logits, assigned.scores)
        cls_loss = ops.sum(bce) / normaliser
        weight = ops.sum(assigned.scores, axis=-1) * assigned.foreground
        box_loss = ops.sum((1.0 - ciou(boxes, assigned.boxes)) * weight) / normaliser
        return {"box": self.box_weight * box_loss, "cls": self.class_weight * cls_loss}

    def __call__(self, targets: Any, boxes: Any, logits: Any, points: Any) -> Any:
        parts = self.parts(targets, boxes, logits, points)
        return parts["box"] + parts["cls"]


def _bce_with_logits(logits: Any, labels: Any) -> Any:
    """Element-wise binary cross-entropy on logits, stable for large |logits|."""
    return ops.maximum(logits, 0.0) - logits * labels + ops.log1p(ops.exp(-ops.abs(logits)))
