"""Drawing: boxes, labels, scores and the FPS/latency overlay on a copy of the frame."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge.types import Detections

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def color_for(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class."""
    hue = (int(class_id) * 47) % 180
    b, g, r = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw(
    image: np.ndarray, detections: Detections, names: Sequence[str], overlay: Sequence[str] = ()
) -> np.ndarray:
    """Return a new image with the detections drawn and `overlay` lines in the top-left corner."""
    out = image.copy()
    scale = max(min(out.shape[:2]) / 900, 0.4)
    thick = max(int(round(scale * 2)), 1)
    for (x1, y1, x2, y2), score, cid, tid in zip(
        detections.xyxy.astype(int),
        detections.score,
        detections.class_id,
        detections.track_id,
        strict=True,
    ):
        color = color_for(cid)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick, cv2.LINE_AA)
        name = names[cid] if 0 <= cid < len(names) else str(cid)
        label = f"{name} {score:.2f}" + (f" #{tid}" if tid >= 0 else "")
        (tw, th), base = cv2.getTextSize(label, _FONT, scale * 0.6, 1)
        top = max(y1 - th - base - 2, 0)
        cv2.rectangle(out, (x1, top), (x1 + tw + 4, top + th + base + 2), color, -1)
        cv2.putText(
            out, label, (x1 + 2, top + th + 1), _FONT, scale * 0.6, (0, 0, 0), 1, cv2.LINE_AA
        )
    y = int(22 * scale / 0.6)
    for line in overlay:
        (tw, th), _ = cv2.getTextSize(line, _FONT, scale * 0.7, thick)
        cv2.rectangle(out, (4, y - th - 4), (12 + tw, y + 6), (0, 0, 0), -1)
        cv2.putText(out, line, (8, y), _FONT, scale * 0.7, (255, 255, 255), thick, cv2.LINE_AA)
        y += th + 12
    return out
