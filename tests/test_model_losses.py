"""edge.model boxes / assign / losses: hand-worked overlaps, a hand-made assignment, loss ordering."""

from __future__ import annotations

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras import ops  # noqa: E402

from edge.model.assign import task_aligned_assign  # noqa: E402
from edge.model.boxes import ciou, giou, iou  # noqa: E402
from edge.model.decode import anchor_points  # noqa: E402
from edge.model.losses import DetectionLoss  # noqa: E402


def _np(x: object) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


# (a, b, IoU, GIoU, CIoU), worked out by hand:
# overlap: inter 1, union 4 + 4 - 1 = 7; enclosing 3x3 = 9 -> GIoU 1/7 - 2/9;
#   centres (1, 1), (2, 2): distance^2 2 over diagonal^2 18; same aspect, so v = 0.
# apart: inter 0, union 2, enclosing 3x1 -> GIoU -1/3; centres 2 apart, diagonal^2 10 -> CIoU -0.4.
# aspect: 2x1 vs 1x2 at the origin: inter 1, union 3; enclosing 2x2 (diagonal^2 8), centre
#   distance^2 0.5; v = 4/pi^2 (atan 2 - atan 1/2)^2, alpha = v / (v - 1/3 + 1).
_V = 4 / math.pi**2 * (math.atan(2) - math.atan(0.5)) ** 2
CASES = [
    ("same", (0, 0, 2, 2), (0, 0, 2, 2), 1.0, 1.0, 1.0),
    ("overlap", (0, 0, 2, 2), (1, 1, 3, 3), 1 / 7, 1 / 7 - 2 / 9, 1 / 7 - 2 / 18),
    ("apart", (0, 0, 1, 1), (2, 0, 3, 1), 0.0, -1 / 3, -0.4),
    (
        "aspect",
        (0, 0, 2, 1),
        (0, 0, 1, 2),
        1 / 3,
        1 / 3 - 1 / 4,
        1 / 3 - 0.5 / 8 - _V**2 / (_V + 2 / 3),
    ),
]


@pytest.mark.parametrize(("case", "a", "b", "want_iou", "want_giou", "want_ciou"), CASES)
def test_overlaps_match_hand_worked_numbers(
    case: str, a: tuple, b: tuple, want_iou: float, want_giou: float, want_ciou: float
) -> None:
    a_t, b_t = np.array(a, np.float32), np.array(b, np.float32)
    assert float(_np(iou(a_t, b_t))) == pytest.approx(want_iou, abs=1e-5)
    assert float(_np(giou(a_t, b_t))) == pytest.approx(want_giou, abs=1e-5)
    assert float(_np(ciou(a_t, b_t))) == pytest.approx(want_ciou, abs=1e-5)


def test_overlaps_broadcast_pairwise() -> None:
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1]], np.float32)
    b = np.array([[0, 0, 2, 2], [1, 1, 3, 3], [5, 5, 6, 6]], np.float32)
    pairwise = _np(iou(a[:, None, :], b[None, :, :]))
    np.testing.assert_allclose(pairwise, [[1, 1 / 7, 0], [0.25, 0, 0]], atol=1e-5)


def test_assignment_on_a_hand_made_case() -> None:
    # Four points in a row; one box (class 1) covers the first three. Point 3 predicts the box
    # exactly but lies outside it, so it may not be chosen.
    points = np.array([[4, 4], [12, 4], [20, 4], [28, 4]], np.float32)
    gt = np.array([[[0, 0, 24, 8], [0, 0, 0, 0]]], np.float32)  # second row is padding
    classes = np.array([[1, -1]], np.float32)
    boxes = np.array([[[0, 0, 24, 8], [0, 0, 16, 8], [8, 0, 24, 8], [0, 0, 24, 8]]], np.float32)
    scores = np.zeros((1, 4, 2), np.float32)
    scores[0, :, 1] = [0.5, 0.8, 0.2, 0.9]
    # Alignment s^0.5 * IoU^6: point 0: 0.7071 * 1; point 1: 0.8944 * (2/3)^6 = 0.07852;
    # point 2: 0.4472 * (2/3)^6 = 0.03926. Top 2 -> points 0 and 1. Soft targets: metric /
    # best metric * best IoU -> 1.0 and 0.07852 / 0.7071 = 0.1110.
    out = task_aligned_assign(scores, boxes, points, gt, classes, topk=2)
    np.testing.assert_array_equal(_np(out.foreground), [[1, 1, 0, 0]])
    want = np.zeros((1, 4, 2), np.float32)
    want[0, 0, 1], want[0, 1, 1] = 1.0, math.sqrt(0.8) * (2 / 3) ** 6 / math.sqrt(0.5)
    np.testing.assert_allclose(_np(out.scores), want, atol=1e-4)
    np.testing.assert_allclose(_np(out.boxes)[0, :2], gt[0, [0, 0]])


def test_a_point_claimed_twice_goes_to_the_box_it_overlaps_most() -> None:
    points = np.array([[4, 4]], np.float32)
    gt = np.array([[[0, 0, 16, 16], [0, 0, 8, 8]]], np.float32)
    classes = np.array([[1, 0]], np.float32)
    boxes = np.array([[[0, 0, 8, 8]]], np.float32)  # IoU 0.25 with box 0, 1.0 with box 1
    scores = np.full((1, 1, 2), 0.5, np.float32)
    out = task_aligned_assign(scores, boxes, points, gt, classes, topk=3)
    np.testing.assert_allclose(_np(out.boxes)[0, 0], [0, 0, 8, 8])
    assert _np(out.scores)[0, 0, 0] > 0 and _np(out.scores)[0, 0, 1] == 0


def _scene() -> tuple[np.ndarray, np.ndarray]:
    points, _ = anchor_points((64, 64), (8, 16, 32))
    targets = np.full((1, 3, 5), -1.0, np.float32)
    targets[0, 0] = [1, 8, 8, 40, 40]
    return points, targets


def test_a_perfect_prediction_has_a_lower_loss_than_a_wrong_one() -> None:
    points, targets = _scene()
    n = len(points)
    inside = (points[:, 0] > 8) & (points[:, 0] < 40) & (points[:, 1] > 8) & (points[:, 1] < 40)
    perfect_boxes = np.tile(targets[0, 0, 1:], (1, n, 1)).astype(np.float32)
    perfect_logits = np.full((1, n, 2), -8.0, np.float32)
    perfect_logits[0, inside, 1] = 8.0
    wrong_boxes = perfect_boxes + 12.0
    wrong_logits = perfect_logits[..., ::-1].copy()  # confident in the other class
    loss = DetectionLoss()
    perfect = loss.parts(targets, perfect_boxes, perfect_logits, points)
    wrong = loss.parts(targets, wrong_boxes, wrong_logits, points)
    assert float(_np(perfect["box"])) == pytest.approx(0.0, abs=1e-4)
    assert float(_np(perfect["cls"])) < 0.1
    assert float(_np(wrong["box"])) > 1.0 and float(_np(wrong["cls"])) > 10 * float(
        _np(perfect["cls"])
    )


def test_an_image_without_objects_only_teaches_background() -> None:
    points, _ = anchor_points((64, 64), (8, 16, 32))
    n = len(points)
    empty = np.full((1, 3, 5), -1.0, np.float32)
    boxes = np.tile(np.array([0, 0, 8, 8], np.float32), (1, n, 1))
    parts = DetectionLoss().parts(empty, boxes, np.full((1, n, 2), -4.0, np.float32), points)
    assert float(_np(parts["box"])) == 0.0
    # BCE of logit -4 against 0 is log(1 + e^-4) per element, summed and divided by max(0, 1).
    assert float(_np(parts["cls"])) == pytest.approx(n * 2 * math.log1p(math.exp(-4)), rel=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"box_weight": -1.0}, "weights"), ({"class_weight": -0.1}, "weights"), ({"topk": 0}, "topk")],
)
def test_bad_loss_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DetectionLoss(**kwargs)


def test_anchor_points_are_cell_centres_level_by_level() -> None:
    points, strides = anchor_points((64, 32), (8, 16, 32))
    assert points.shape == (8 * 4 + 4 * 2 + 2 * 1, 2)
    np.testing.assert_array_equal(points[:2], [[4, 4], [12, 4]])
    np.testing.assert_array_equal(points[32], [8, 8])  # first cell of stride 16
    np.testing.assert_array_equal(points[-1], [16, 48])
    assert strides[0] == 8 and strides[-1] == 32
