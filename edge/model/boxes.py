"""Box overlap maths on xyxy tensors (IoU, GIoU, CIoU) in `keras.ops`, for losses and assignment.

Every function broadcasts over leading axes: `a` [..., 4] against `b` [..., 4].
"""

from __future__ import annotations

import math
from typing import Any

from keras import ops

EPS = 1e-7


def _parts(a: Any, b: Any) -> tuple[Any, ...]:
    ax1, ay1, ax2, ay2 = (a[..., i] for i in range(4))
    bx1, by1, bx2, by2 = (b[..., i] for i in range(4))
    aw, ah = ax2 - ax1, ay2 - ay1
    bw, bh = bx2 - bx1, by2 - by1
    iw = ops.maximum(ops.minimum(ax2, bx2) - ops.maximum(ax1, bx1), 0.0)
    ih = ops.maximum(ops.minimum(ay2, by2) - ops.maximum(ay1, by1), 0.0)
    inter = iw * ih
    union = aw * ah + bw * bh - inter + EPS
    # The smallest box enclosing both.
    cw = ops.maximum(ax2, bx2) - ops.minimum(ax1, bx1)
    ch = ops.maximum(ay2, by2) - ops.minimum(ay1, by1)
    return (
        inter / union,
        union,
        cw,
        ch,
        (aw, ah, bw, bh),
        (ax1 + ax2, ay1 + ay2, bx1 + bx2, by1 + by2),
    )


def iou(a: Any, b: Any) -> Any:
    """Intersection over union, 0 when boxes do not overlap."""
    return _parts(a, b)[0]


def giou(a: Any, b: Any) -> Any:
    """Generalised IoU: IoU minus the share of the enclosing box covered by neither (-1..1)."""
    overlap, union, cw, ch, _, _ = _parts(a, b)
    enclosing = cw * ch + EPS
    return overlap - (enclosing - union) / enclosing


def ciou(a: Any, b: Any) -> Any:
    """Complete IoU: IoU minus centre distance and aspect-ratio penalties (Zheng et al. 2020)."""
    overlap, _, cw, ch, (aw, ah, bw, bh), (acx2, acy2, bcx2, bcy2) = _parts(a, b)
    diagonal2 = cw**2 + ch**2 + EPS
    centre2 = ((bcx2 - acx2) ** 2 + (bcy2 - acy2) ** 2) / 4.0
    v = (4.0 / math.pi**2) * (ops.arctan(bw / (bh + EPS)) - ops.arctan(aw / (ah + EPS))) ** 2
    # alpha is a weight, not something to learn through (as in the paper).
    alpha = ops.stop_gradient(v / (v - overlap + (1.0 + EPS)))
    return overlap - (centre2 / diagonal2 + alpha * v)
