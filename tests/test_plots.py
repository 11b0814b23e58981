"""Evaluation pictures: PR-curve PNGs per class and the truth-beside-predictions grid."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.data.dataset import Sample
from edge.evaluation import coco_metrics
from edge.evaluation.plots import (
    PREDICTION_COLOR,
    TRUTH_COLOR,
    comparison_tile,
    draw_boxes,
    plot_pr_curves,
    prediction_grid,
    save_eval_plots,
)
from edge.types import Detections

NAMES = ("cat", "dog/wolf", "bird")  # a "/" must not leak into a file name


def _det(boxes: list[list[float]], classes: list[int], score: float = 0.9) -> Detections:
    return Detections(np.array(boxes, np.float32), [score] * len(classes), classes)


def test_pr_curves_one_png_per_class_with_truth(tmp_path: Path) -> None:
    truth = _det([[0, 0, 50, 50], [60, 60, 90, 90]], [0, 1])
    result = coco_metrics([_det([[0, 0, 50, 50]], [0])], [truth], NAMES)
    paths = plot_pr_curves(result, tmp_path / "plots")
    assert [p.name for p in paths] == ["pr_000_cat.png", "pr_001_dog_wolf.png"]  # bird: no truth
    for p in paths:
        image = cv2.imread(str(p))
        assert image is not None and image.shape == (400, 500, 3)


def test_draw_boxes_returns_a_new_image_with_the_colour_on_the_box() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    out = draw_boxes(image, _det([[10, 40, 90, 90]], [2]), NAMES, TRUTH_COLOR, show_score=False)
    assert not image.any()  # the caller's image is untouched
    assert tuple(out[90, 50]) == TRUTH_COLOR  # bottom edge of the box
    assert tuple(out[65, 50]) == (0, 0, 0)  # inside stays as it was


def test_comparison_tile_puts_truth_left_and_predictions_right() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    tile = comparison_tile(
        image, _det([[10, 40, 90, 90]], [0]), _det([[10, 40, 90, 90]], [0]), NAMES, 100
    )
    assert tile.shape == (100, 204, 3)  # two 100-wide halves and a 4-pixel divider
    assert tuple(tile[90, 50]) == TRUTH_COLOR
    assert tuple(tile[90, 104 + 50]) == PREDICTION_COLOR


# A 160 x 160 image makes a pair 160 x 324 (two halves and a 4-pixel divider), scaled to 320 high:
# 648 wide. Each tile takes (320 + 8) x (648 + 8) of the grid.
@pytest.mark.parametrize(
    ("n", "cols", "shape"),
    [(1, 2, (328, 1312, 3)), (3, 2, (656, 1312, 3)), (3, 3, (328, 1968, 3)), (2, 1, (656, 656, 3))],
)
def test_grid_shape(n: int, cols: int, shape: tuple[int, int, int]) -> None:
    images = [np.zeros((160, 160, 3), np.uint8)] * n
    dets = [Detections.empty()] * n
    assert prediction_grid(images, dets, dets, NAMES, cols=cols, height=320).shape == shape


@pytest.mark.parametrize(
    ("images", "truths", "cols", "match"),
    [
        ([], [], 2, "at least one"),
        ([np.zeros((8, 8, 3), np.uint8)], [], 2, "differ"),
        ([np.zeros((8, 8, 3), np.uint8)], [Detections.empty()], 0, "cols"),
        ([np.zeros((8, 8), np.uint8)], [Detections.empty()], 1, "H x W x 3"),
    ],
)
def test_grid_bad_input(images: list, truths: list, cols: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        prediction_grid(images, truths, [Detections.empty()] * len(images), NAMES, cols=cols)


def test_save_eval_plots_reads_the_images(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), np.full((64, 80, 3), 90, np.uint8))
    sample = Sample(path, 80, 64, np.array([[8, 8, 40, 40]]), np.array([0]))
    preds = [_det([[8, 8, 40, 40]], [0])]
    result = coco_metrics(preds, [sample], NAMES)
    paths = save_eval_plots(result, [sample], preds, tmp_path / "out", num_images=4)
    assert [p.name for p in paths] == ["pr_000_cat.png", "predictions.png"]
    assert cv2.imread(str(paths[-1])) is not None
