"""`edge eval` end to end: a tiny YOLO dataset, a constant-output ONNX (and Keras) model, and the
error cases that must end in one line and exit code 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.errors import ModelError
from edge.evaluation import (
    coco_metrics,
    keras_predictor,
    open_predictor,
    predict_keras,
    predict_samples,
)
from edge.runtime.contract import ModelContract

NAMES = ("a", "b")
A = [8.0, 8.0, 40.0, 40.0]  # class a, in both val images
B = [16.0, 36.0, 56.0, 60.0]  # class b, in val image 1 (missed by the model) and the train image
# The model always says: A is class a with score 0.9; B is class b with score 0 (below any --conf).
BOXES = np.array([[A, B]], np.float32)
SCORES = np.array([[[0.9, 0.0], [0.0, 0.0]]], np.float32)


def _yolo_line(cls: int, box: list[float], size: int = 64) -> str:
    x1, y1, x2, y2 = (v / size for v in box)
    return f"{cls} {(x1 + x2) / 2} {(y1 + y2) / 2} {x2 - x1} {y2 - y1}\n"


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """val: v0 has A, v1 has A and B; train: t0 has B. All images 64 x 64."""
    root = tmp_path / "data"
    labels = {"val/v0": [(0, A)], "val/v1": [(0, A), (1, B)], "train/t0": [(1, B)]}
    for stem, objs in labels.items():
        (root / "images" / stem).parent.mkdir(parents=True, exist_ok=True)
        (root / "labels" / stem).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / f"{stem}.png"), np.full((64, 64, 3), 127, np.uint8))
        text = "".join(_yolo_line(c, b) for c, b in objs)
        (root / "labels" / f"{stem}.txt").write_text(text)
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a, b]\n")
    return root


def _onnx_model(path: Path, names: tuple[str, ...] = NAMES) -> Path:
    """An ONNX model with the edge contract whose outputs are BOXES and SCORES for any input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    scores = np.zeros((1, 2, len(names)), np.float32)
    scores[:, :, :2] = SCORES
    nodes = [
        helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))
        for name, value in (("boxes", BOXES), ("scores", scores))
    ]
    graph = helper.make_graph(
        nodes,
        "constant_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 64, 64, 3])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 2, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2, len(names)]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = ModelContract(names=names, imgsz=(64, 64)).to_metadata()
    helper.set_model_props(model, meta)
    onnx.save(model, str(path))
    return path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


# (extra args, AP50-95 of a, of b, mAP50-95). val: a found twice (1), b missed (0): mean 0.5.
# --max-images 1: only v0, where b has no truth (absent). train: only b, missed; a has no truth.
RUNS = [
    ([], 1.0, 0.0, 0.5),
    (["--max-images", "1"], 1.0, None, 1.0),
    (["--split", "train"], None, 0.0, 0.0),
]


@pytest.mark.parametrize(("extra", "ap_a", "ap_b", "map50_95"), RUNS)
def test_onnx_eval_writes_table_and_json(
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    ap_a: float | None,
    ap_b: float | None,
    map50_95: float,
) -> None:
    model = _onnx_model(tmp_path / "m.onnx")
    out_json = tmp_path / "metrics.json"
    argv = ["eval", "--model", str(model), "--data", str(dataset), "--json", str(out_json), *extra]
    rc, out, err = _run(argv, capsys)
    assert rc == 0, err
    metrics = json.loads(out_json.read_text())
    assert metrics["map50_95"] == pytest.approx(map50_95)
    for name, want in (("a", ap_a), ("b", ap_b)):
        got = metrics["per_class"][name]["ap50_95"]
        assert got == (None if want is None else pytest.approx(want))
    assert metrics["model"] == str(model) and metrics["conf"] == 0.001
    assert out.splitlines()[1].split()[0] == "all"
    assert f"{map50_95:.4f}" in out.splitlines()[1]


def test_plots_are_written(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _onnx_model(tmp_path / "m.onnx")
    plots = tmp_path / "plots"
    argv = ["eval", "--model", str(model), "--data", str(dataset), "--plots", str(plots)]
    rc, _, err = _run(argv, capsys)
    assert rc == 0, err
    assert sorted(p.name for p in plots.iterdir()) == [
        "pr_000_a.png",
        "pr_001_b.png",
        "predictions.png",
    ]


def test_metrics_and_plots_appear_together_or_not_at_all(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The last plot's name is a folder: found only once the plots are drawn, after the metrics
    # (which were written already). Now neither is: one line, exit 2, nothing new.
    model = _onnx_model(tmp_path / "m.onnx")
    plots, out_json = tmp_path / "plots", tmp_path / "metrics.json"
    (plots / "predictions.png").mkdir(parents=True)
    argv = ["eval", "--model", str(model), "--data", str(dataset), "--json", str(out_json),
            "--plots", str(plots)]  # fmt: skip
    rc, _, err = _run(argv, capsys)
    assert rc == 2
    assert (
        err
        == f"edge eval: error: --plots {plots / 'predictions.png'}: is a folder; give a file name inside it\n"
    )
    assert not out_json.exists()
    assert [p.name for p in plots.iterdir()] == ["predictions.png"]  # no PR curve, no temporary


def _garbage(path: Path) -> Path:
    path.write_bytes(b"not a model")
    return path


# (how to make the model, data, extra args, words the one error line must hold)
ERRORS = [
    (lambda d: d / "missing.onnx", None, [], "model not found"),
    (lambda d: d / "missing.keras", None, [], "model not found"),
    (lambda d: _garbage(d / "m.pt"), None, [], "must be one of"),
    (lambda d: _onnx_model(d / "m.onnx"), "missing_data", [], "no such file"),
    (lambda d: _onnx_model(d / "m3.onnx", ("a", "b", "c")), None, [], "3 classes"),
    (lambda d: _garbage(d / "garbage.onnx"), None, [], "garbage.onnx"),
    (lambda d: _garbage(d / "garbage.keras"), None, [], "cannot load Keras model"),
]


@pytest.mark.parametrize(
    ("make_model", "data", "extra", "words"),
    ERRORS,
    ids=["no_model", "no_keras", "extension", "no_data", "class_count", "bad_onnx", "bad_keras"],
)
def test_errors_are_one_line_and_exit_2(
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make_model: Callable[[Path], Path],
    data: str | None,
    extra: list[str],
    words: str,
) -> None:
    model = make_model(tmp_path)
    data_path = tmp_path / data if data else dataset
    rc, out, err = _run(["eval", "--model", str(model), "--data", str(data_path), *extra], capsys)
    assert rc == 2
    assert err.startswith("edge eval: error: ") and err.count("\n") == 1
    assert words in err
    assert out == ""


@pytest.mark.parametrize(
    "bad",
    [
        ["--conf", "1.5"],
        ["--iou", "0"],
        ["--max-images", "0"],
        ["--split", "test"],
        ["--imgsz", "0"],
    ],
)
def test_bad_flags_are_argparse_errors(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--model", "m.onnx", "--data", "d", *bad])
    assert exc.value.code == 2


def _keras_model(size: int | None = 64, logits: bool = False) -> object:
    """A Keras model whose outputs are BOXES and SCORES for any input: `boxes` and `scores` as the
    inference form has them, or `boxes` and `logits` as the training form does."""
    keras = pytest.importorskip("keras")
    inputs = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)

    def constant(value: np.ndarray, name: str) -> object:
        dense = keras.layers.Dense(
            value.size,
            kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(value.ravel().tolist()),
        )
        return keras.layers.Reshape(value.shape[1:], name=name)(dense(x))

    if logits:  # sigmoid(ln 9) = 0.9; sigmoid(-20) = 2e-9, below any --conf
        second = {"logits": constant(np.where(SCORES > 0, np.log(9.0), -20.0), "logits")}
    else:
        second = {"scores": constant(SCORES, "scores")}
    return keras.Model(inputs, {"boxes": constant(BOXES, "boxes"), **second})


def test_keras_model_gives_the_same_metrics(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.keras"
    _keras_model().save(path)
    out_json = tmp_path / "metrics.json"
    argv = ["eval", "--model", str(path), "--data", str(dataset), "--json", str(out_json)]
    rc, _, err = _run(argv, capsys)
    assert rc == 0, err
    metrics = json.loads(out_json.read_text())
    assert metrics["map50_95"] == pytest.approx(0.5)
    assert metrics["per_class"]["a"]["ap50_95"] == pytest.approx(1.0)


@pytest.mark.parametrize(("logits", "batch_size"), [(False, 1), (False, 2), (True, 16)])
def test_predict_keras_per_epoch_as_training_calls_it(
    dataset: Path, logits: bool, batch_size: int
) -> None:
    from edge.data import load_dataset

    data = load_dataset(dataset)
    model = _keras_model(logits=logits)
    predictions = predict_keras(model, data.val, data.names, batch_size=batch_size)
    result = coco_metrics(predictions, data.val, data.names)
    assert (result.map50_95, result.map50) == (pytest.approx(0.5), pytest.approx(0.5))
    one_by_one = predict_samples(keras_predictor(model, data.names), data.val)
    for a, b in zip(predictions, one_by_one, strict=True):
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-4)
        np.testing.assert_allclose(a.score, b.score, atol=1e-6)


def test_keras_predictor_maps_boxes_back_through_the_letterbox() -> None:
    predict = keras_predictor(_keras_model(), NAMES)
    # A 32 x 32 image is letterboxed up to 64 x 64 and the boxes come back at half size.
    image = np.full((32, 32, 3), 127, np.uint8)
    np.testing.assert_allclose(predict(image).xyxy, [[4, 4, 20, 20]], atol=1e-4)


def test_dynamic_keras_input_needs_imgsz() -> None:
    model = _keras_model(size=None)
    with pytest.raises(ValueError, match="imgsz"):
        keras_predictor(model, NAMES)
    predict = keras_predictor(model, NAMES, imgsz=(64, 64))
    assert len(predict(np.full((64, 64, 3), 127, np.uint8))) == 1


def test_keras_outputs_without_scores_are_a_model_error() -> None:
    keras = pytest.importorskip("keras")
    inputs = keras.Input((64, 64, 3))
    model = keras.Model(inputs, {"boxes": inputs, "features": inputs})
    with pytest.raises(ModelError, match="expected boxes and scores"):
        keras_predictor(model, NAMES)(np.zeros((64, 64, 3), np.uint8))


@pytest.mark.parametrize(("kwargs", "match"), [({"conf": 1.5}, "conf"), ({"iou": 0.0}, "iou")])
def test_open_predictor_checks_thresholds(tmp_path: Path, kwargs: dict, match: str) -> None:
    model = _onnx_model(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match=match), open_predictor(model, NAMES, **kwargs):
        pass


def test_sigterm_during_eval_exits_130_and_writes_nothing(tmp_path: Path) -> None:
    # SIGTERM ended eval with 143 (no handler); now every command unwinds as for Ctrl-C.
    import os
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "big"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("train: images\nval: images\nnames: [a, b]\n")
    noise = np.random.default_rng(0).integers(0, 255, (1500, 1500, 3), np.uint8)
    first = root / "images" / "0000.jpg"
    cv2.imwrite(str(first), noise)
    for i in range(400):  # hard links: large images to decode, no disk to fill
        if i:
            os.link(first, root / "images" / f"{i:04d}.jpg")
        (root / "labels" / f"{i:04d}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    model = _onnx_model(tmp_path / "m.onnx")
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.Popen(
        [sys.executable, "-m", "edge", "eval", "--model", str(model), "--data", str(root),
         "--json", str(out / "m.json"), "--plots", str(out / "plots")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert p.stderr is not None
    deadline = time.monotonic() + 120
    for line in p.stderr:  # "evaluating ... on 400 val images": the predictions start
        assert time.monotonic() < deadline, "eval never started"
        if line.startswith("evaluating "):
            break
    p.send_signal(signal.SIGTERM)
    _, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "edge eval: interrupted"
    assert list(out.iterdir()) == []  # no metrics, no plots, no temporary files
