from __future__ import annotations

import numpy as np
import pytest

from edge.errors import ModelError
from edge.runtime.contract import XYXY_SCORES, YOLOV8, ModelContract
from edge.runtime.postprocess import PostprocessOptions, decode, postprocess, select
from edge.runtime.preprocess import Letterbox

OURS = ModelContract(names=("cat", "dog"), imgsz=(64, 64))
YOLO = ModelContract(
    names=("cat", "dog"), imgsz=(64, 64), layout="NCHW", scale=1 / 255, output_format=YOLOV8
)


def test_decode_yolov8_cxcywh_to_xyxy():
    # one box: centre (20, 30), size 10 x 6, scores (0.1, 0.8)
    out = np.array([[[20.0], [30.0], [10.0], [6.0], [0.1], [0.8]]], np.float32)
    boxes, scores = decode([out], YOLO)
    np.testing.assert_allclose(boxes, [[15, 27, 25, 33]])
    np.testing.assert_allclose(scores, [[0.1, 0.8]])


@pytest.mark.parametrize(
    ("outputs", "contract", "match"),
    [
        ([np.zeros((1, 5, 4), np.float32)], OURS, "expected outputs"),
        (
            [np.zeros((1, 5, 4), np.float32), np.zeros((1, 5, 3), np.float32)],
            OURS,
            r"scores \[B,N,2\]",
        ),
        ([np.zeros((1, 7, 10), np.float32)], YOLO, r"YOLOv8 output \[B, 6, N\]"),
    ],
)
def test_decode_rejects_outputs_it_does_not_understand(outputs, contract, match):
    with pytest.raises(ModelError, match=match):
        decode(outputs, contract)


def _sel(boxes, scores, **kw):
    return select(
        np.asarray(boxes, np.float32), np.asarray(scores, np.float32), PostprocessOptions(**kw)
    )


@pytest.mark.parametrize(
    ("boxes", "scores", "kw", "kept_scores", "kept_classes"),
    [
        # Two heavy overlaps of the same class (IoU 0.81): the better one survives.
        ([[0, 0, 10, 10], [1, 1, 10, 10]], [[0.9, 0], [0.8, 0]], {}, [0.9], [0]),
        # The same boxes but different classes: class-aware NMS keeps both.
        ([[0, 0, 10, 10], [1, 1, 10, 10]], [[0.9, 0], [0, 0.8]], {}, [0.9, 0.8], [0, 1]),
        # IoU 0.81 stays when the threshold is above it.
        ([[0, 0, 10, 10], [1, 1, 10, 10]], [[0.9, 0], [0.8, 0]], {"iou": 0.9}, [0.9, 0.8], [0, 0]),
        # Below the score threshold: nothing.
        ([[0, 0, 10, 10]], [[0.2, 0.1]], {"conf": 0.25}, [], []),
        # Class filter keeps only dogs.
        ([[0, 0, 10, 10], [20, 20, 30, 30]], [[0.9, 0], [0, 0.7]], {"classes": (1,)}, [0.7], [1]),
        # max_det keeps the best.
        (
            [[0, 0, 5, 5], [10, 10, 15, 15], [20, 20, 25, 25]],
            [[0.5, 0], [0.9, 0], [0.7, 0]],
            {"max_det": 2},
            [0.9, 0.7],
            [0, 0],
        ),
        # No boxes at all.
        (np.zeros((0, 4)), np.zeros((0, 2)), {}, [], []),
    ],
)
def test_select_threshold_nms_filter(boxes, scores, kw, kept_scores, kept_classes):
    d = _sel(boxes, scores, **kw)
    np.testing.assert_allclose(d.score, kept_scores, rtol=1e-6)
    assert d.class_id.tolist() == kept_classes


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"conf": 1.5}, "--conf"), ({"iou": 0.0}, "--iou"), ({"max_det": 0}, "--max-det")],
)
def test_options_reject_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        PostprocessOptions(**kw)


def test_postprocess_maps_back_to_frame():
    lb = Letterbox(scale=0.1, pad_x=0, pad_y=8, src_width=640, src_height=480)
    outs = [np.array([[[10, 18, 20, 28]]], np.float32), np.array([[[0.3, 0.95]]], np.float32)]
    d = postprocess(outs, OURS, lb, PostprocessOptions())
    np.testing.assert_allclose(d.xyxy, [[100, 100, 200, 200]])
    assert d.class_id.tolist() == [1]
    assert OURS.output_format == XYXY_SCORES
