from __future__ import annotations

import pytest

from edge.errors import ModelError
from edge.runtime.contract import YOLOV8, ModelContract, from_metadata


def test_round_trip_through_metadata():
    c = ModelContract(
        names=("ball", "crate"), imgsz=(320, 320), mean=(1, 2, 3), extra={"dataset": "synthetic"}
    )
    meta = c.to_metadata()
    assert all(isinstance(v, str) for v in meta.values())
    back = from_metadata(meta)
    assert back.names == c.names and back.imgsz == c.imgsz and back.mean == (1.0, 2.0, 3.0)
    assert back.extra["dataset"] == "synthetic"


def test_reads_ultralytics_metadata():
    meta = {
        "author": "Ultralytics",
        "task": "detect",
        "stride": "32",
        "names": "{0: 'person', 1: 'car'}",
        "imgsz": "[640, 640]",
    }
    c = from_metadata(meta)
    assert c.names == ("person", "car") and c.imgsz == (640, 640)
    assert (c.layout, c.color, c.output_format) == ("NCHW", "RGB", YOLOV8)
    assert c.scale == pytest.approx(1 / 255)


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({}, "no detector metadata"),
        (
            {"edge.contract": "1", "names": "not json", "imgsz": "[1,1]"},
            "unreadable model metadata",
        ),
        ({"edge.contract": "1", "names": "[]", "imgsz": "[1,1]"}, "non-empty"),
        ({"edge.contract": "1", "names": '["a"]', "imgsz": "[1,2,3]"}, "imgsz"),
        ({"edge.contract": "9", "names": '["a"]', "imgsz": "[1,1]"}, "contract version"),
        (
            {"edge.contract": "1", "names": '["a"]', "imgsz": "[1,1]", "layout": "NWHC"},
            "layout",
        ),
        ({"author": "Ultralytics", "task": "segment", "names": "{0: 'a'}"}, "only 'detect'"),
        ({"author": "Ultralytics", "names": "__import__('os')"}, "unreadable"),
    ],
)
def test_bad_metadata_is_a_model_error(meta, match):
    with pytest.raises(ModelError, match=match):
        from_metadata(meta, source="m.onnx")
