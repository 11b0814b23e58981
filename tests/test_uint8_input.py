"""Pre-processing inside the graph: the wrapped model sees exactly what the host used to compute."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge.export.uint8_input import uint8_contract, with_uint8_input
from edge.runtime.contract import ModelContract, from_metadata
from edge.runtime.preprocess import letterbox, prepare, to_input
from edge.runtime.session import ModelSession, SessionOptions


def echo_model(path: Path, contract: ModelContract, dynamic: bool = False) -> Path:
    """A float model whose first output is its input times 2 (reshaped to edge's boxes
    [1, N, 4]), with zero scores [1, N, 1] beside it, so the model gate reads it as edge's own
    layout; carries `contract` in its metadata."""
    h, w = ("h", "w") if dynamic else contract.imgsz
    shape = [1, 3, h, w] if contract.layout == "NCHW" else [1, h, w, 3]
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)
    boxes = helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, None, 4])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, None, 1])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    rows = helper.make_tensor("rows", TensorProto.INT64, [3], [0, -1, 4])
    nodes = [
        helper.make_node("Mul", ["images", "two"], ["y"]),
        helper.make_node("Reshape", ["y", "rows"], ["boxes"]),
        helper.make_node("ReduceMean", ["boxes"], ["mean"], axes=[2], keepdims=1),
        helper.make_node("Mul", ["mean", "zero"], ["scores"]),
    ]
    graph = helper.make_graph(nodes, "echo", [x], [boxes, scores], [two, zero, rows])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in contract.to_metadata().items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.save(model, str(path))
    return path


BASE = ModelContract(names=("a",), imgsz=(24, 32))
CONTRACTS = {
    "rgb nhwc 0..255 (edge's own)": BASE,
    "bgr nhwc": replace(BASE, color="BGR"),
    "rgb nchw /255 (Ultralytics-like)": replace(BASE, layout="NCHW", scale=1 / 255),
    "imagenet mean/std": replace(
        BASE, scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    ),
}


@pytest.mark.parametrize("contract", CONTRACTS.values(), ids=CONTRACTS.keys())
def test_wrapped_graph_computes_the_host_preprocessing(tmp_path, contract):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (40, 50, 3), np.uint8)
    canvas, _ = letterbox(frame, contract.imgsz)
    float_path = echo_model(tmp_path / "f.onnx", contract)
    wrapped = with_uint8_input(onnx.load(str(float_path)), contract)
    onnx.checker.check_model(wrapped)
    new = uint8_contract(contract)
    del wrapped.metadata_props[:]
    for k, v in new.to_metadata().items():
        wrapped.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.save(wrapped, str(tmp_path / "u8.onnx"))

    s_float = ModelSession(float_path, SessionOptions(device="cpu", warmup=0))
    s_u8 = ModelSession(tmp_path / "u8.onnx", SessionOptions(device="cpu", warmup=0))
    assert s_u8.contract.input_dtype == "uint8" and s_u8.input_dtype == np.uint8
    fed = to_input(canvas, s_u8.contract)
    assert fed.dtype == np.uint8 and fed.shape == (
        1,
        24,
        32,
        3,
    )  # the canvas itself, 4x fewer bytes
    np.testing.assert_array_equal(fed[0], canvas)
    want = s_float.run(to_input(canvas, contract))[0]
    got = s_u8.run(fed)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)
    # prepare() follows the contract: float model float input, uint8 model the canvas
    assert prepare(frame, s_u8.contract, contract.imgsz)[0].dtype == np.uint8
    assert prepare(frame, contract, contract.imgsz)[0].dtype == np.float32


def test_uint8_contract_round_trip_and_rules():
    u8 = uint8_contract(replace(BASE, scale=1 / 255))
    meta = u8.to_metadata()
    assert meta["input_dtype"] == "uint8" and meta["color"] == "BGR" and meta["layout"] == "NHWC"
    assert "in graph" in meta["edge.preprocess"] and "0.00392157" in meta["edge.preprocess"]
    assert from_metadata(meta) == u8
    assert "input_dtype" not in BASE.to_metadata()  # float models keep their old metadata
    assert from_metadata(BASE.to_metadata()).input_dtype == "float32"
    with pytest.raises(ValueError, match="uint8 input takes the pixels as they are"):
        replace(u8, scale=0.5)
    with pytest.raises(ValueError, match="input_dtype must be one of"):
        replace(BASE, input_dtype="int8")
    with pytest.raises(ValueError, match="already takes uint8"):
        with_uint8_input(onnx.ModelProto(), u8)


def test_dynamic_size_wrapped_model_keeps_its_dims(tmp_path):
    path = echo_model(tmp_path / "d.onnx", BASE, dynamic=True)
    wrapped = with_uint8_input(onnx.load(str(path)), BASE)
    dims = [d.dim_param or d.dim_value for d in wrapped.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, "h", "w", 3]
    assert wrapped.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8
