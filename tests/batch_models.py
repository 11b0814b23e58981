"""A tiny ONNX detector with a dynamic batch dimension, for the several-streams tests.

Like `onnx_models.fixed_detector` it answers fixed boxes, but each image's boxes are shifted by
`shift` x that image's mean pixel value, so every batch row's output depends on its own image: a
frame whose results went to the wrong stream shows up as a different box.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.runtime.contract import ModelContract


def batch_detector(
    path: Path,
    names: tuple[str, ...] = ("a", "b"),
    imgsz: tuple[int, int] = (64, 64),
    batch: int | str = "batch",
    shift: float = 0.05,
) -> Path:
    """NHWC input [batch, h, w, 3] -> boxes [batch, 2, 4], scores [batch, 2, len(names)]."""
    h, w = imgsz
    boxes = np.array([[[8, 8, 24, 24], [30, 30, 60, 50]]], np.float32)
    scores = (np.eye(2, len(names), dtype=np.float32) * 0.9)[None]
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, h, w, 3])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Squeeze", ["m4", "ax"], ["m3"]),  # [batch, 1, 1]
        helper.make_node("Mul", ["m3", "k"], ["dx"]),
        helper.make_node("Mul", ["m3", "zero"], ["z"]),
        helper.make_node("Add", ["cb", "dx"], ["boxes"]),
        helper.make_node("Add", ["cs", "z"], ["scores"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([3], np.int64), "ax"),
        numpy_helper.from_array(np.array(shift, np.float32), "k"),
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        numpy_helper.from_array(boxes, "cb"),
        numpy_helper.from_array(scores, "cs"),
    ]
    outs = [
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [batch, 2, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, 2, len(names)]),
    ]
    graph = helper.make_graph(nodes, "batch", [inp], outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in ModelContract(names=names, imgsz=imgsz, layout="NHWC").to_metadata().items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
