from __future__ import annotations

import numpy as np
import pytest

from edge.runtime.accuracy import LiveScore, box_iou, match
from edge.types import Detections


def det(boxes, classes, scores=None):
    scores = np.ones(len(boxes)) if scores is None else scores
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), scores, classes)


def test_box_iou_hand_values():
    iou = box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(iou, [[50 / 150, 1.0, 0.0]])


@pytest.mark.parametrize(
    ("pred", "truth", "expected"),
    [
        (det([[0, 0, 10, 10]], [0]), det([[0, 0, 10, 10]], [0]), (1, 0, 0)),
        (det([[0, 0, 10, 10]], [1]), det([[0, 0, 10, 10]], [0]), (0, 1, 1)),  # wrong class
        (det([[5, 0, 15, 10]], [0]), det([[0, 0, 10, 10]], [0]), (0, 1, 1)),  # IoU 1/3 < 0.5
        # two predictions on one object: one TP, one FP
        (
            det([[0, 0, 10, 10], [0, 0, 10, 9]], [0, 0], [0.9, 0.8]),
            det([[0, 0, 10, 10]], [0]),
            (1, 1, 0),
        ),
        (Detections.empty(), det([[0, 0, 10, 10]], [0]), (0, 0, 1)),
        (det([[0, 0, 10, 10]], [0]), Detections.empty(), (0, 1, 0)),
    ],
)
def test_match_counts(pred, truth, expected):
    assert match(pred, truth) == expected


def test_live_score_accumulates():
    s = LiveScore()
    s.add(det([[0, 0, 10, 10]], [0]), det([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0]))
    s.add(det([[0, 0, 10, 10]], [0]), Detections.empty())
    assert (s.tp, s.fp, s.fn, s.frames) == (1, 1, 1, 2)
    assert s.precision == pytest.approx(0.5) and s.recall == pytest.approx(0.5)
