"""edge.export in process: round trip, parity, metadata, fp16/int8, failures that leave nothing.

The detector is edge.model's own, tiny backbone at 64x64 (see `save_tiny_detector`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.errors import DataError, EdgeError, ModelError
from edge.export import (
    MAX_OPSET,
    TOLERANCES,
    ExportOptions,
    Tolerance,
    VerificationError,
    export_model,
    output_paths,
)
from edge.export import convert as convert_module
from edge.export.metadata import training_info
from edge.export.quantize import head_tail, topologically_sorted
from edge.export.sample_images import ImageSource, export_images, open_source
from edge.sources.synthetic import CLASS_NAMES, render_still

IMGSZ = 64
FAST = {"calib_images": 4, "latency_runs": 3}


def save_tiny_detector(path: Path, seed: int = 0) -> Path:
    """edge.model's detector, tiny backbone, untrained but with batch norms set to the statistics
    of a batch of synthetic stills (a second to make; training takes far longer here).

    Fresh batch norms pass a signal that fades layer by layer, so outputs would barely depend on
    the image; with real statistics they do (boxes move by pixels, scores by tenths). The box
    predictor is scaled down so boxes span a few strides, as trained ones do.
    """
    import keras

    import edge.model as em

    keras.utils.set_random_seed(seed)
    model = em.build_detector(CLASS_NAMES, imgsz=IMGSZ, backbone="tiny", width=16)
    norms = [x for x in _all_layers(model) if isinstance(x, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0  # the next training-mode call sets the statistics to its batch's
    frames = [render_still(seed + i, IMGSZ, IMGSZ).image[..., ::-1] for i in range(16)]
    model(np.stack(frames).astype("float32"), training=True)
    for layer in norms:
        layer.momentum = 0.97
    kernel, bias = model.get_layer("head_reg_pred").get_weights()
    model.get_layer("head_reg_pred").set_weights([kernel * 0.1, bias])
    model.save(path)
    return path


def _all_layers(model: Any) -> Iterator[Any]:
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def tiny_detector_file(factory: pytest.TempPathFactory) -> Path:
    """One trained tiny detector per test session, shared by the export test modules."""
    path = factory.getbasetemp() / "edge-export-tiny.keras"
    return path if path.is_file() else save_tiny_detector(path)


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("export converts through the TensorFlow backend")
    return tiny_detector_file(tmp_path_factory)


def _meta(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if "partial" in p.name or p.name.startswith(".edge")]


def test_fp32_round_trip_parity_metadata_and_detector(tiny_keras: Path, tmp_path: Path) -> None:
    from edge.api.detector import Detector
    from edge.evaluation import keras_predictor
    from edge.export.trt import tensorrt_available
    from edge.runtime.contract import from_metadata

    src = shutil.copy(tiny_keras, tmp_path / "best.keras")  # as `edge train` leaves a run folder
    (tmp_path / "options.json").write_text(json.dumps({"data": "datasets/toy/data.yaml"}))
    (tmp_path / "results.csv").write_text(RESULTS)
    out = tmp_path / "tiny.onnx"
    result = export_model(src, out, ExportOptions(trt_cache=tmp_path / "trt", **FAST))

    (v,) = result.variants
    assert v.path == out and v.size_bytes == out.stat().st_size and v.latency_ms > 0
    assert v.parity.max_box <= 1e-4 * IMGSZ and v.parity.max_score <= 1e-4
    assert v.parity.images == 4 and result.anchors == 8 * 8 + 4 * 4 + 2 * 2
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == ["boxes", "scores"]
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, IMGSZ, IMGSZ, 3]
    # edge's own models take the letterboxed uint8 BGR image; the graph pre-processes inside
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    contract = from_metadata(_meta(out))
    assert contract.names == CLASS_NAMES and contract.imgsz == (IMGSZ, IMGSZ)
    assert contract.input_dtype == "uint8" and contract.layout == "NHWC"
    assert contract.color == "BGR" and contract.scale == 1.0
    assert contract.extra["edge.preprocess"].startswith("in graph: uint8 BGR NHWC -> RGB NHWC")
    extra = contract.extra
    assert extra["edge.precision"] == "fp32" and extra["edge.backbone"] == "tiny"
    assert extra["edge.version"] == __import__("edge").__version__
    assert extra["edge.dataset"] == "datasets/toy/data.yaml" and extra["edge.map50_95"] == "0.2500"
    assert extra["edge.source"] == "best.keras" and extra["edge.converter"].startswith("tf2onnx")

    # The runtime's Detector and the Keras model find the same objects in a frame.
    import keras

    import edge.model as em

    model_k = em.inference_model(keras.saving.load_model(src))
    reference = keras_predictor(model_k, CLASS_NAMES, conf=0.001, iou=0.45)
    frame = render_still(7, 160, 120).image
    ours = Detector(out, device="cpu").detect(frame, conf=0.001)
    theirs = reference(frame)
    assert len(ours) == len(theirs) > 0
    np.testing.assert_allclose(ours.xyxy, theirs.xyxy, atol=1e-3)
    np.testing.assert_allclose(ours.score, theirs.score, atol=1e-4)

    if not tensorrt_available()[0]:
        assert "not available" in result.trt and not (tmp_path / "trt").exists()
    assert not _leftovers(tmp_path)

    # --input float32: the old float graph, normalised on the host, finds the same objects
    old = tmp_path / "float.onnx"
    export_model(src, old, ExportOptions(input="float32", **FAST))
    float_model = onnx.load(str(old))
    assert float_model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert from_metadata(_meta(old)).input_dtype == "float32"
    assert "input_dtype" not in _meta(old)
    got = Detector(old, device="cpu").detect(frame, conf=0.001)
    np.testing.assert_allclose(got.xyxy, ours.xyxy, atol=1e-3)
    np.testing.assert_allclose(got.score, ours.score, atol=1e-4)


def test_fp16_int8_dynamic_batch_new_size_with_a_dataset(tiny_keras: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    from edge.data.synth import write_synthetic

    data = write_synthetic(tmp_path / "ds", images=6, imgsz=IMGSZ).parent
    out = tmp_path / "m.onnx"
    options = ExportOptions(
        imgsz=(96, 128),
        batch="dynamic",
        precisions=("fp32", "fp16", "int8"),
        calib_data=data,
        **FAST,
    )
    result = export_model(tiny_keras, out, options)

    paths = [tmp_path / n for n in ("m.onnx", "m_fp16.onnx", "m_int8.onnx")]
    assert [v.path for v in result.variants] == paths and all(p.is_file() for p in paths)
    assert result.contract.imgsz == (96, 128) and result.anchors == 12 * 16 + 6 * 8 + 3 * 4
    for v in result.variants:
        assert v.parity.within(TOLERANCES[v.precision], (96, 128)), v.parity
        assert _meta(v.path)["edge.precision"] == v.precision
        assert _meta(v.path)["edge.batch"] == "dynamic"
        model = onnx.load(str(v.path))
        onnx.checker.check_model(model)
        (image,) = model.graph.input  # uint8 in (every precision), float32 out
        assert image.type.tensor_type.elem_type == TensorProto.UINT8
        for value in (*model.graph.input, *model.graph.output):
            assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
        for value in model.graph.output:
            assert value.type.tensor_type.elem_type == TensorProto.FLOAT
        assert v.metrics is not None and np.isfinite(v.metrics.map50)
    fp32, fp16, int8 = (onnx.load(str(p)) for p in paths)
    assert any(t.data_type == TensorProto.FLOAT16 for t in fp16.graph.initializer)
    assert {n.op_type for n in int8.graph.node} >= {"QuantizeLinear", "DequantizeLinear", "Conv"}
    # the box decoding stays float: Softplus and the score Sigmoid read no dequantized tensor
    producers = {o: n.op_type for n in int8.graph.node for o in n.output}
    tail = [n for n in int8.graph.node if n.op_type == "Softplus" or "scores" in n.output]
    assert tail and all(producers.get(i) != "DequantizeLinear" for n in tail for i in n.input)
    assert result.keras_metrics is not None
    fp32_map, keras_map = result.variants[0].metrics, result.keras_metrics
    assert fp32_map.map50_95 == pytest.approx(keras_map.map50_95, abs=1e-3)
    session = ort.InferenceSession(str(paths[0]), providers=["CPUExecutionProvider"])
    boxes, scores = session.run(None, {"images": np.zeros((3, 96, 128, 3), np.uint8)})
    assert boxes.shape == (3, 252, 4) and scores.shape == (3, 252, len(CLASS_NAMES))
    assert not _leftovers(tmp_path)


def _corrupt_first_conv(monkeypatch: pytest.MonkeyPatch) -> None:
    real = convert_module.to_onnx

    def corrupted(*args: object, **kwargs: object) -> object:
        proto = real(*args, **kwargs)
        conv = next(n for n in proto.graph.node if n.op_type == "Conv")
        weight = next(t for t in proto.graph.initializer if t.name == conv.input[1])
        weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.5, weight.name))
        return proto

    monkeypatch.setattr(convert_module, "to_onnx", corrupted)


@pytest.mark.parametrize("how", ["tolerance", "corrupted graph"])
def test_verification_failure_leaves_nothing(
    how: str, tiny_keras: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tmp_path / "old.onnx"
    old.write_bytes(b"previous export")
    if how == "tolerance":  # fp32 passes and is staged, int8 fails: neither is kept
        monkeypatch.setitem(TOLERANCES, "int8", Tolerance(boxes=-1.0, scores=-1.0))
        out, options = old, ExportOptions(precisions=("fp32", "int8"), **FAST)
    else:  # into a folder made for it, which is removed again
        _corrupt_first_conv(monkeypatch)
        out, options = tmp_path / "new" / "m.onnx", ExportOptions(**FAST)
    with pytest.raises(VerificationError, match="disagrees with Keras") as info:
        export_model(tiny_keras, out, options)
    assert "nothing was written" in str(info.value) and "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.onnx"]
    assert old.read_bytes() == b"previous export"


def test_no_verify_and_tensorrt_cache_from_the_final_file(
    tiny_keras: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge.export import trt

    built = []

    def fake_build(path: Path, cache: Path, fp16: bool = True) -> float:
        built.append((path, path.is_file(), cache, fp16))
        return 1.5

    monkeypatch.setattr(trt, "tensorrt_available", lambda: (True, "TensorrtExecutionProvider"))
    monkeypatch.setattr(trt, "build_cache", fake_build)
    out = tmp_path / "m.onnx"
    options = ExportOptions(verify=False, trt_cache=tmp_path / "trt", trt_fp16=False, **FAST)
    result = export_model(tiny_keras, out, options)
    assert result.verified is False and result.variants[0].parity is None
    assert result.keras_metrics is None and out.is_file()
    # ONNX Runtime keys engines on the model file's name: built from the final path, not staged
    assert built == [(out, True, tmp_path / "trt", False)]
    assert "m.onnx 1.5 s" in result.trt


def _write_plain_keras(path: Path) -> Path:
    import keras

    inputs = keras.Input((32, 32, 3))
    keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs)).save(path)
    return path


@pytest.mark.parametrize(
    ("case", "error", "match"),
    [
        ("missing", ModelError, "model not found"),
        ("onnx suffix", ValueError, "must be a .keras file"),
        ("text file", ModelError, "not a Keras model"),
        ("plain keras", ModelError, "not an edge detector"),
        ("empty calib folder", DataError, "no images"),
        ("missing calib", DataError, "no such file"),
        ("output not onnx", ValueError, "must end in .onnx"),
        ("imgsz not /32", ValueError, "multiple of 32"),
    ],
)
def test_bad_inputs_raise_and_write_nothing(
    case: str, error: type, match: str, tiny_keras: Path, tmp_path: Path
) -> None:
    model, out, options = tiny_keras, tmp_path / "out.onnx", ExportOptions(**FAST)
    if case == "missing":
        model = tmp_path / "missing.keras"
    elif case == "onnx suffix":
        model = tmp_path / "m.onnx"
        model.write_bytes(b"x")
    elif case == "text file":
        model = tmp_path / "notes.keras"
        model.write_text("not a model\n")
    elif case == "plain keras":
        model = _write_plain_keras(tmp_path / "plain.keras")
    elif case in ("empty calib folder", "missing calib"):
        calib = tmp_path / "calib"
        if case == "empty calib folder":
            calib.mkdir()
        options = ExportOptions(calib_data=calib, **FAST)
    elif case == "output not onnx":
        out = tmp_path / "out.tflite"
    elif case == "imgsz not /32":
        options = ExportOptions(imgsz=(50, 50), **FAST)
    before = set(tmp_path.rglob("*"))
    with pytest.raises(error, match=match) as info:
        export_model(model, out, options)
    assert "\n" not in str(info.value)
    assert set(tmp_path.rglob("*")) == before


def test_strict_tensorrt_fails_before_converting(tiny_keras: Path, tmp_path: Path) -> None:
    from edge.export.trt import tensorrt_available

    if tensorrt_available()[0]:
        pytest.skip("TensorRT runs here")
    options = ExportOptions(trt_cache=tmp_path / "trt", strict=True, **FAST)
    with pytest.raises(EdgeError, match="TensorRT is not available"):
        export_model(tiny_keras, tmp_path / "m.onnx", options)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"opset": 12}, "--opset must be in"),
        ({"input": "float16"}, "--input must be one of"),
        ({"opset": MAX_OPSET + 1}, "--opset must be in"),
        ({"precisions": ("fp8",)}, "--precision must be among"),
        ({"precisions": ()}, "at least one"),
        ({"precisions": ("fp16", "fp16")}, "twice"),
        ({"batch": "4"}, "--batch"),
        ({"calib_images": 0}, "--calib-images"),
        ({"eval_images": 0}, "--eval-images"),
        ({"latency_runs": 0}, "--runs"),
        ({"imgsz": (0, 64)}, "--imgsz"),
    ],
)
def test_options_reject_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ExportOptions(**kwargs)


def test_max_opset_is_what_tf2onnx_maps() -> None:
    pytest.importorskip("tf2onnx")
    from tf2onnx import constants

    assert max(constants.OPSET_TO_IR_VERSION) == MAX_OPSET


def test_output_paths() -> None:
    out = Path("models/det.onnx")
    assert output_paths(out, ("int8",)) == [out]
    assert output_paths(out, ("fp32", "fp16", "int8")) == [
        out,
        Path("models/det_fp16.onnx"),
        Path("models/det_int8.onnx"),
    ]


def _graph(nodes: list, inputs: list[str], outputs: list[str], inits: dict) -> onnx.ModelProto:
    def value(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1])

    graph = helper.make_graph(
        nodes,
        "g",
        [value(i) for i in inputs],
        [value(o) for o in outputs],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_head_tail_is_what_follows_the_last_convolutions() -> None:
    # x -> conv1 -> relu -> conv2 (predictor) -> reshape -> softplus -> boxes
    #                   \-> conv3 (predictor) -> sigmoid -> scores; conv1 feeds a conv: not tail
    w = np.ones((1, 1, 1, 1), np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="conv1"),
        helper.make_node("Relu", ["a"], ["b"], name="relu"),
        helper.make_node("Conv", ["b", "w"], ["c"], name="conv2"),
        helper.make_node("Reshape", ["c", "shape"], ["d"], name="reshape"),
        helper.make_node("Softplus", ["d"], ["boxes"], name="softplus"),
        helper.make_node("Conv", ["b", "w"], ["e"], name="conv3"),
        helper.make_node("Sigmoid", ["e"], ["scores"], name="sigmoid"),
    ]
    model = _graph(nodes, ["x"], ["boxes", "scores"], {"w": w, "shape": np.array([1, -1])})
    tail, predictors = head_tail(model)
    assert tail == {"reshape", "softplus", "sigmoid"}
    assert predictors == {"conv2", "conv3"}


def test_topologically_sorted_orders_appended_nodes() -> None:
    nodes = [
        helper.make_node("Relu", ["a"], ["y"], name="second"),
        helper.make_node("Neg", ["x"], ["a"], name="first"),
    ]
    model = topologically_sorted(_graph(nodes, ["x"], ["y"], {}))
    assert [n.name for n in model.graph.node] == ["first", "second"]
    onnx.checker.check_model(model)


RESULTS = "epoch,loss,box_loss,cls_loss,lr,map50,map50_95,seconds\n" + "\n".join(
    [
        "0,5.1,2.5,2.6,0.001,0.2,0.1,3.5",
        "1,4.2,2.1,2.1,0.002,0.45,0.25,3.4",  # the best epoch
        "2,4.0,2.0,2.0,0.002,0.4,0.2,3.4",
        "3,3.9,2.0,1.9,0.001,nan,nan,3.3",  # not validated
    ]
)


@pytest.mark.parametrize(
    ("model", "files", "expected"),
    [
        ("best.keras", {}, {}),
        (
            "best.keras",
            {
                "options.json": json.dumps({"data": "/d/coco.json", "epochs": 4}),
                "results.csv": RESULTS,
            },
            {
                "edge.dataset": "/d/coco.json",
                "edge.epoch": "2",
                "edge.map50_95": "0.2500",
                "edge.map50": "0.4500",
            },
        ),
        (
            "last.keras",
            {"results.csv": RESULTS},
            {"edge.epoch": "3", "edge.map50_95": "0.2000", "edge.map50": "0.4000"},
        ),
        ("best.keras", {"options.json": "{not json", "results.csv": "epoch,loss\n0,1\n"}, {}),
        ("best.keras", {"options.json": json.dumps({"data": None})}, {}),
    ],
)
def test_training_info_from_the_run_folder(
    model: str, files: dict, expected: dict, tmp_path: Path
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert training_info(tmp_path / model) == expected


def test_image_sources(tmp_path: Path) -> None:
    import cv2

    from edge.runtime.contract import ModelContract

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), render_still(i, 80, 60).image)
    (folder / "notes.txt").write_text("x")
    contract = ModelContract(names=("a",), imgsz=(32, 64))
    source = open_source(folder)
    assert source.kind == "images" and len(source.files) == 3
    picked = export_images(source, 2, contract)
    assert len(picked.tensors) == 2 and picked.tensors[0].shape == (1, 32, 64, 3)
    synthetic = export_images(ImageSource(), 3, contract, seed=5)
    assert len(synthetic.tensors) == 3 and "synthetic" in synthetic.description
    assert synthetic.tensors[0].dtype == np.float32 and synthetic.tensors[0].max() > 1.0
    assert open_source(None).kind == "synthetic"
