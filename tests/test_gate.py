"""The model gate (edge/runtime/gate.py): models the runtime cannot feed or decode are refused at load, in
one line, before any source opens; the ones it can feed (float16, uint8 pixels, a dynamic batch
stuck at 1) run; non-finite output rows are dropped, counted, and never reach the JSONL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from batch_models import batch_detector
from onnx import TensorProto
from onnx_models import fixed_detector, gate_models

from edge.errors import ModelError
from edge.runtime.contract import END_TO_END, ModelContract
from edge.runtime.postprocess import PostprocessOptions, postprocess
from edge.runtime.preprocess import Letterbox
from edge.runtime.session import ModelSession, SessionOptions

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
CPU = SessionOptions(device="cpu", warmup=0)


def _edge_run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge", "run", "--no-show", "--device", "cpu", *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        timeout=120,
    )


# file name from onnx_models.gate_models, the one line expected
REFUSED = [
    ("int32-input.onnx", "is tensor(int32)"),
    ("shapeless.onnx", "unknown (none declared)"),
    ("rank3.onnx", "has shape [64, 64, 3]"),
    ("nchw-meta.onnx", "metadata says layout NCHW but the input [1, 64, 64, 3] is NHWC"),
    ("four-channels.onnx", "has 4 channels"),
    ("uint8-scaled.onnx", "is uint8 but the metadata asks for scaled input"),
    ("batch2.onnx", "for an input batch of 2"),
    ("huge-input.onnx", "at most 8192 pixels a side"),
    ("fails-when-run.onnx", "a trial inference on a [1, 64, 64, 3] float32 input"),
    ("eight-names.onnx", "outputs [1, 7, 2] match no layout edge reads for 8 classes"),
]


@pytest.mark.parametrize(("name", "needle"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_at_load_in_one_line_before_the_source(tmp_path, name, needle):
    model = gate_models(tmp_path)[name]
    with pytest.raises(ModelError, match=f"model .*{name}: ") as info:
        ModelSession(model, CPU)
    assert needle in str(info.value)
    r = _edge_run("--model", str(model), "--source", "missing.mp4", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "missing.mp4" not in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize(
    ("kw", "dtype"),
    [
        ({"input_type": TensorProto.FLOAT16}, np.float16),
        ({"input_type": TensorProto.UINT8}, np.uint8),  # identity normalisation: pixels as they are
    ],
)
def test_float16_and_uint8_inputs_are_fed_and_decoded(tmp_path, kw, dtype):
    session = ModelSession(fixed_detector(tmp_path / "m.onnx", **kw), CPU)
    assert session.check.input_dtype == dtype
    image = np.full((64, 64, 3), 200, np.uint8)
    from edge.api.detector import Detector

    dets = Detector(tmp_path / "m.onnx", device="cpu").detect(image)
    np.testing.assert_allclose(dets.xyxy, [[8, 8, 24, 24], [30, 30, 60, 50]])
    assert dets.class_name == ["a", "b"]


def test_dynamic_batch_whose_outputs_stay_at_one_runs_one_frame_per_call(tmp_path, caplog):
    stuck = fixed_detector(tmp_path / "stuck.onnx", batch="batch")
    session = ModelSession(stuck, CPU)
    assert session.input_shape[0] == 1  # pinned: the several-streams loop will not batch it
    assert "outputs stay at batch 1" in caplog.text
    honest = ModelSession(batch_detector(tmp_path / "honest.onnx"), CPU)
    assert honest.input_shape[0] == "batch"  # a real dynamic batch stays dynamic
    r = _edge_run(
        "--model", str(stuck), "--source", "synthetic", "--source", "synthetic",
        "--max-frames", "4", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr


NAN = float("nan")
INF = float("inf")


def test_non_finite_rows_are_dropped_and_counted_valid_rows_kept():
    contract = ModelContract(names=("a", "b"), imgsz=(64, 64))
    boxes = np.array([[[8, 8, 24, 24], [NAN, 0, 10, 10], [30, 30, 60, 50], [0, 0, INF, 9]]])
    scores = np.array([[[0.9, 0.0], [0.9, 0.0], [0.0, NAN], [0.8, 0.0]]])
    options = PostprocessOptions()
    lb = Letterbox(1.0, 0.0, 0.0, 64, 64)
    dets = postprocess([boxes.astype(np.float32), scores.astype(np.float32)], contract, lb, options)
    np.testing.assert_allclose(dets.xyxy, [[8, 8, 24, 24]])
    assert options.nonfinite.rows == 3 and options.nonfinite.frames == 1
    # end-to-end rows: a NaN score is dropped and counted, a NaN class is a padding row
    e2e = ModelContract(names=("a", "b", "c"), imgsz=(64, 64), output_format=END_TO_END)
    rows = np.array([[[8, 8, 24, 24, 0.9, 2], [1, 1, 5, 5, NAN, 0], [0, 0, 9, 9, 0.5, NAN]]])
    dets = postprocess([rows.astype(np.float32)], e2e, lb, options)
    assert dets.class_id.tolist() == [2] and options.nonfinite.rows == 4


def test_nan_outputs_never_reach_the_jsonl_and_the_summary_counts_them(tmp_path):
    boxes = np.array([[8, 8, 24, 24], [NAN, 1, 9, 9], [30, 30, 60, 50]], np.float32)
    scores = np.array([[0.9, 0.0], [0.9, 0.0], [0.0, INF]], np.float32)
    model = fixed_detector(tmp_path / "nan.onnx", boxes=boxes, scores=scores)
    out = tmp_path / "d.jsonl"
    r = _edge_run("--model", str(model), "--max-frames", "3", "--jsonl", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for line in out.read_text().splitlines():
        row = json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in the JSONL"))
        assert [d["box"] for d in row["detections"]] != []
        assert all(np.isfinite(d["box"]).all() for d in row["detections"])
    assert "6 output rows with NaN or infinite values" in r.stdout, r.stdout
