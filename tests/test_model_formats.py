"""Every output layout edge reads, recognised at load from the output shapes and metadata, through
`edge run` and `edge eval`; layouts it cannot read are refused at load, naming the shapes found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx_models import fixed_detector

from edge.cli import main
from edge.errors import ModelError
from edge.runtime.contract import (
    END_TO_END,
    RTDETR,
    RTDETR_TOPK,
    XYXY_SCORES,
    YOLOV8,
    ModelContract,
)
from edge.runtime.postprocess import resolve_format
from edge.runtime.session import ModelSession, SessionOptions

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
A = [8.0, 8.0, 40.0, 40.0]  # class 0, score 0.9
B = [16.0, 36.0, 56.0, 60.0]  # class 1, score 0.8
BOXES = np.array([A, B], np.float32)


def _scores(nc: int) -> np.ndarray:
    s = np.zeros((2, nc), np.float32)
    s[0, 0], s[1, 1] = 0.9, 0.8
    return s


def _model(tmp_path: Path, fmt: str, names: tuple[str, ...]) -> Path:
    return fixed_detector(
        tmp_path / f"{fmt}.onnx",
        names=names,
        boxes=BOXES,
        scores=_scores(len(names)),
        output_format=fmt,
    )


def _dataset(root: Path, names: tuple[str, ...]) -> Path:
    """Two 64 x 64 val images whose truth is exactly what the models answer (A and B)."""
    for split in ("val", "train"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
    for stem in ("val/v0", "val/v1", "train/t0"):
        cv2.imwrite(str(root / "images" / f"{stem}.png"), np.full((64, 64, 3), 127, np.uint8))
        lines = [
            f"{c} {(b[0] + b[2]) / 128} {(b[1] + b[3]) / 128} {(b[2] - b[0]) / 64} {(b[3] - b[1]) / 64}"
            for c, b in ((0, A), (1, B))
        ]
        (root / "labels" / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(
        f"train: images/train\nval: images/val\nnames: [{', '.join(names)}]\n"
    )
    return root


CASES = [
    (XYXY_SCORES, ("a", "b", "c")),
    (YOLOV8, ("a", "b", "c")),
    (END_TO_END, ("a", "b", "c")),
    (RTDETR, ("a", "b", "c")),  # RT-DETR as Ultralytics exported it before 8.4
    (RTDETR_TOPK, ("a", "b", "c")),  # ... and since (rows of box, score, class)
    (END_TO_END, ("a", "b")),  # [B, K, 6] with two classes: rows, YOLO's or (description) RT-DETR's
    (RTDETR_TOPK, ("a", "b")),
]


@pytest.mark.parametrize(("fmt", "names"), CASES)
def test_layout_recognised_at_load(tmp_path, fmt, names):
    session = ModelSession(_model(tmp_path, fmt, names), SessionOptions(device="cpu", warmup=0))
    assert session.contract.output_format == fmt


@pytest.mark.parametrize(("fmt", "names"), CASES[:5])
def test_each_layout_through_edge_run_and_edge_eval(tmp_path, fmt, names):
    model = _model(tmp_path, fmt, names)
    data = _dataset(tmp_path / "data", names)
    out = tmp_path / "d.jsonl"
    r = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--model", str(model), "--source",
         str(data / "images" / "val"), "--no-show", "--jsonl", str(out), "--device", "cpu"],
        capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        got = sorted(row["detections"], key=lambda d: d["class_id"])
        assert [d["class"] for d in got] == ["a", "b"]
        np.testing.assert_allclose([d["box"] for d in got], [A, B], atol=0.15)
        np.testing.assert_allclose([d["score"] for d in got], [0.9, 0.8], atol=1e-4)
    metrics = tmp_path / "m.json"
    code = main(["eval", "--model", str(model), "--data", str(data), "--json", str(metrics)])
    assert code == 0
    result = json.loads(metrics.read_text())
    flat = json.dumps(result)
    assert result, flat
    # the model answers the truth exactly: a perfect score
    assert _find(result, "map50") == pytest.approx(1.0, abs=1e-6), flat


def _find(obj: object, key: str) -> float:
    """The first value under a key named `key` (any case, any depth) in the metrics JSON."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k.lower().replace("_", "").replace("-", "") == key and isinstance(v, (int, float)):
                return float(v)
        for v in obj.values():
            try:
                return _find(v, key)
            except KeyError:
                pass
    raise KeyError(key)


ULTRA = ModelContract(
    names=("a", "b", "c"),
    imgsz=(64, 64),
    layout="NCHW",
    scale=1 / 255,
    output_format=YOLOV8,
    extra={"author": "Ultralytics", "stride": "32"},
)
EDGE = ModelContract(names=("a", "b", "c"), imgsz=(64, 64))
DETR = replace(ULTRA, extra={**ULTRA.extra, "description": "Ultralytics rtdetr-l model"})


@pytest.mark.parametrize(
    ("contract", "shapes", "expected"),
    [
        (ULTRA, [(1, 7, 8400)], YOLOV8),
        (ULTRA, [(1, 300, 6)], END_TO_END),
        (ULTRA, [(1, 300, 7)], RTDETR),
        (DETR, [(1, 300, 7)], RTDETR),
        (DETR, [(1, 300, 6)], RTDETR_TOPK),
        (ULTRA, [(1, 7, 6)], END_TO_END),  # 7 = 4 + 3 boxes, each 6 wide: end-to-end, not raw
        (EDGE, [(1, 100, 4), (1, 100, 3)], XYXY_SCORES),
        (EDGE, [(1, 100, 3), (1, 100, 4)], XYXY_SCORES),  # outputs in the other order
        (ULTRA, [(1, 85, 8400)], "match no layout"),  # 80 classes' output for a 3-class model
        (ULTRA, [(1, 300, 9)], "match no layout"),
        (ULTRA, [(1, 7, 8400), (1, 32, 160, 160)], "match no layout"),  # a segmentation export
        (ULTRA, [(1, 8400)], "match no layout"),
        (EDGE, [(1, 100, 4)], "match no layout"),
        (EDGE, [(1, 100, 4), (1, 90, 3)], "match no layout"),
        (EDGE, [(1, 7, 8400)], "match no layout"),
    ],
)
def test_resolve_format_table(contract, shapes, expected):
    if expected in (YOLOV8, END_TO_END, RTDETR, RTDETR_TOPK, XYXY_SCORES):
        assert resolve_format(contract, shapes).output_format == expected
    else:
        with pytest.raises(ModelError, match=expected) as info:
            resolve_format(contract, shapes)
        assert str(list(shapes[0])).replace(" ", "") in str(info.value).replace(" ", "")


def test_wrong_layout_refused_at_load_before_the_source_opens(tmp_path):
    model = fixed_detector(
        tmp_path / "m.onnx",
        names=("a", "b", "c"),
        output_format=YOLOV8,
        metadata={
            "author": "Ultralytics",
            "stride": "32",
            "task": "detect",
            "names": repr({i: n for i, n in enumerate("abcdefgh")}),  # 8 names, outputs for 3
            "imgsz": "[64, 64]",
        },
    )
    r = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--model", str(model), "--source", "missing.mp4"],
        capture_output=True, text=True, env=ENV, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 2
    assert "match no layout" in r.stderr and "missing.mp4" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
