"""The public Python API: `import edge` is lazy, `edge.Detector`, `edge.Detections` (filtering, JSON,
supervision). The README's Python examples run in tests/test_readme.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx_models import fixed_detector

import edge
from edge.errors import ModelError
from edge.sources.synthetic import SyntheticScene
from edge.types import Detections

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def test_import_edge_is_fast_and_pulls_no_heavy_modules():
    code = (
        "import sys, time; t = time.perf_counter(); import edge; dt = time.perf_counter() - t; "
        "heavy = [m for m in ('tensorflow', 'keras', 'onnxruntime', 'cv2', 'numpy') "
        "if m in sys.modules]; print(dt, heavy)"
    )
    best = None
    for _ in range(3):  # best of three: the machine is shared
        r = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60
        )
        assert r.returncode == 0, r.stderr
        dt, heavy = r.stdout.split(" ", 1)
        assert heavy.strip() == "[]"
        best = min(float(dt), best or 1e9)
    assert best < 0.1
    r = subprocess.run(
        [sys.executable, "-c", "import sys, edge; edge.Detections; edge.Detector; "
         "print('tensorflow' in sys.modules, 'keras' in sys.modules)"],
        capture_output=True, text=True, env=ENV, timeout=60,
    )  # fmt: skip
    assert r.stdout.strip() == "False False", r.stderr


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = edge.nope  # type: ignore[attr-defined]
    assert {"Detector", "Detections", "stream"} <= set(dir(edge))


def _scene_frame(index: int = 5) -> tuple[np.ndarray, Detections]:
    f = SyntheticScene(640, 480, seed=0).frame(index)
    return f.image, Detections(f.boxes, np.ones(len(f.boxes)), f.class_ids)


@pytest.fixture(scope="module")
def bundled():
    return edge.Detector(device="cpu")


def test_bundled_detector_finds_the_synthetic_shapes(bundled):
    assert bundled.names == ("ball", "crate", "cone", "star")
    image, truth = _scene_frame()
    dets = bundled.detect(image)
    assert dets.names == bundled.names and len(dets) >= len(truth) - 1
    # most true objects are found with the right class (IoU >= 0.5; some overlap each other)
    found = 0
    for box, cls in zip(truth.xyxy, truth.class_id, strict=True):
        ious = _iou(box, dets.xyxy)
        found += int(ious.max() >= 0.5 and dets.class_id[ious.argmax()] == cls)
    assert found >= 0.8 * len(truth), (found, len(truth))


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(box) + area(boxes) - inter)


def test_detector_options_and_errors(tmp_path, bundled):
    image, _ = _scene_frame()
    only_stars = bundled.detect(image, classes=["star"])
    assert set(only_stars.class_name) <= {"star"}
    assert len(bundled.detect(image, conf=0.99)) <= len(bundled.detect(image))
    with pytest.raises(ValueError, match="unknown class 'zebra'"):
        bundled.detect(image, classes=["zebra"])
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        bundled.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(ModelError, match="no such file"):
        edge.Detector(tmp_path / "missing.onnx")
    with edge.Detector(fixed_detector(tmp_path / "m.onnx"), device="cpu", conf=0.5) as d:
        dets = d.detect(np.zeros((64, 64, 3), np.uint8))
        assert dets.class_name == ["a", "b"] and repr(d).startswith("Detector(m.onnx")


DETS = Detections(
    np.array([[0, 0, 10, 10], [5, 5, 20, 20], [1, 2, 3, 4]]),
    np.array([0.9, 0.4, 0.7]),
    np.array([0, 1, 0]),
    np.array([7, -1, 3]),
    names=("cat", "dog"),
)


@pytest.mark.parametrize(
    ("query", "rows"),
    [
        ({"classes": "cat"}, [0, 2]),
        ({"classes": ["dog"]}, [1]),
        ({"classes": [1, "cat"]}, [0, 1, 2]),
        ({"classes": 0}, [0, 2]),
        ({"min_score": 0.5}, [0, 2]),
        ({"classes": ["cat"], "min_score": 0.8}, [0]),
        ({"classes": []}, []),
    ],
)
def test_filter_by_class_name_or_id_and_score(query, rows):
    got = DETS.filter(**query)
    np.testing.assert_array_equal(got.xyxy, DETS.xyxy[rows])
    assert got.names == DETS.names


def test_detections_indexing_iteration_and_json():
    assert len(DETS) == 3 and len(DETS[DETS.score > 0.5]) == 2 and len(DETS[1:]) == 2
    assert DETS[1].class_name == ["dog"]
    first = next(iter(DETS))
    assert first.xyxy == (0, 0, 10, 10) and first.class_name == "cat" and first.track_id == 7
    assert [b.score for b in DETS] == pytest.approx([0.9, 0.4, 0.7])
    d = json.loads(DETS.to_json())
    assert d == DETS.to_dict()
    assert d["detections"][1] == {
        "box": [5.0, 5.0, 20.0, 20.0],
        "score": 0.4,
        "class_id": 1,
        "class": "dog",
    }
    assert d["detections"][0]["track_id"] == 7
    assert Detections.empty().to_dict() == {"detections": []}
    with pytest.raises(ValueError, match="unknown class 'bird'"):
        DETS.filter(classes="bird")
    with pytest.raises(ValueError, match="disagree"):
        Detections(np.zeros((2, 4)), np.zeros(3), np.zeros(2))


def test_supervision_round_trip_for_real():
    sv = pytest.importorskip("supervision")  # in the dev extra: CI has it
    s = DETS.to_supervision()
    assert isinstance(s, sv.Detections) and len(s) == 3
    np.testing.assert_allclose(s.xyxy, DETS.xyxy)
    assert s.tracker_id.tolist() == [7, -1, 3] and list(s.data["class_name"]) == [
        "cat",
        "dog",
        "cat",
    ]
    # supervision's own tools work on it: NMS keeps the non-overlapping boxes
    assert len(s.with_nms(threshold=0.5)) == 3
    back = Detections.from_supervision(s, names=DETS.names)
    for a, b in zip(back, DETS, strict=True):
        assert a.class_name == b.class_name and a.track_id == b.track_id
        assert a.xyxy == pytest.approx(b.xyxy) and a.score == pytest.approx(b.score)
    bare = sv.Detections(xyxy=np.array([[1.0, 2, 3, 4]]))
    got = Detections.from_supervision(bare)
    assert (
        got.score.tolist() == [1.0]
        and got.class_id.tolist() == [0]
        and got.track_id.tolist() == [-1]
    )
    assert Detections(np.zeros((1, 4)), [0.5], [0]).to_supervision().tracker_id is None
