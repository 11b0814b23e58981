"""Small ONNX detectors built with onnx.helper for runtime tests (no TensorFlow needed).

`fixed_detector` returns the given raw outputs whatever the image (plus 0 x the image mean, so the
graph really reads its input), in any output layout edge reads (edge's own, Ultralytics YOLOv8 raw,
end-to-end [B, K, 6], RT-DETR); `slow` adds matrix products so inference takes measurable time;
`input_type`, `input_shape` and `batch` make the inputs the model gate must refuse or handle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.runtime.contract import (
    END_TO_END,
    RTDETR,
    RTDETR_TOPK,
    XYXY_SCORES,
    YOLOV8,
    ModelContract,
)

ULTRALYTICS = (YOLOV8, END_TO_END, RTDETR, RTDETR_TOPK)


def fixed_detector(
    path: Path,
    names: tuple[str, ...] = ("a", "b"),
    imgsz: tuple[int, int] = (64, 64),
    boxes: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    output_format: str = XYXY_SCORES,
    layout: str = "NHWC",
    dynamic: bool = False,
    slow: int = 0,
    metadata: dict[str, str] | None = None,
    input_type: int = TensorProto.FLOAT,
    input_shape: list | None = None,
    batch: int | str = 1,
) -> Path:
    """Write an ONNX model whose decoded outputs are `boxes` (N,4 xyxy) and `scores` (N,C)."""
    nc = len(names)
    if output_format in ULTRALYTICS:
        layout = "NCHW"  # as Ultralytics exports
    if boxes is None:
        boxes = np.array([[8, 8, 24, 24], [30, 30, 60, 50]], np.float32)
    if scores is None:
        scores = np.eye(len(boxes), nc, dtype=np.float32) * 0.9
    boxes = np.asarray(boxes, np.float32)
    scores = np.asarray(scores, np.float32)
    h, w = imgsz
    dims = ["h", "w"] if dynamic else [h, w]
    shape = [batch, 3, *dims] if layout == "NCHW" else [batch, *dims, 3]
    inp = helper.make_tensor_value_info(
        "images", input_type, shape if input_shape is None else input_shape
    )
    nodes = [
        helper.make_node("Cast", ["images"], ["imagesf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["imagesf"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["z"]),
    ]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    last = "z"
    for i in range(slow):  # busy work whose result is multiplied by zero
        inits.append(numpy_helper.from_array(np.full((384, 384), 1e-3, np.float32), f"m{i}"))
        if i == 0:  # depends on the image, so it cannot be folded away at load time
            nodes.append(helper.make_node("Add", ["m0", "mean"], ["m0x"]))
        src = "m0x" if i == 0 else f"p{i - 1}"
        nodes.append(helper.make_node("MatMul", [src, f"m{i}"], [f"p{i}"]))
    if slow:
        nodes += [
            helper.make_node("ReduceSum", [f"p{slow - 1}"], ["ps"], keepdims=0),
            helper.make_node("Mul", ["ps", "zero"], ["pz"]),
            helper.make_node("Add", ["z", "pz"], ["z2"]),
        ]
        last = "z2"
    if output_format == XYXY_SCORES:
        inits += [
            numpy_helper.from_array(boxes[None], "cb"),
            numpy_helper.from_array(scores[None], "cs"),
        ]
        nodes += [
            helper.make_node("Add", ["cb", last], ["boxes"]),
            helper.make_node("Add", ["cs", last], ["scores"]),
        ]
        outs = [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, len(boxes), 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, len(boxes), nc]),
        ]
    else:
        cxcywh = np.concatenate(
            [(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], axis=1
        )
        if output_format == YOLOV8:
            raw = np.concatenate([cxcywh, scores], axis=1).T[None]  # [1, 4 + nc, N]
        elif output_format == END_TO_END:  # [1, K, 6]: xyxy, best score, its class; a padding row
            best = scores.argmax(axis=1)
            rows = np.concatenate(
                [boxes, scores.max(axis=1, keepdims=True), best[:, None].astype(np.float32)], axis=1
            )
            raw = np.concatenate([rows, np.zeros((1, 6), np.float32)])[None]
        elif output_format == RTDETR:  # [1, K, 4 + nc]: cx cy w h as fractions of the input, scores
            frac = cxcywh / np.array([w, h, w, h], np.float32)
            raw = np.concatenate([frac, scores], axis=1)[None]
        else:  # RT-DETR of Ultralytics 8.4+ [1, K, 6]: cx cy w h as fractions, best score, class
            frac = cxcywh / np.array([w, h, w, h], np.float32)
            best = scores.argmax(axis=1)[:, None].astype(np.float32)
            raw = np.concatenate([frac, scores.max(axis=1, keepdims=True), best], axis=1)[None]
        inits.append(numpy_helper.from_array(raw.astype(np.float32), "craw"))
        nodes.append(helper.make_node("Add", ["craw", last], ["output0"]))
        outs = [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(raw.shape))]
    graph = helper.make_graph(nodes, "fixed", [inp], outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata is None:
        if output_format in ULTRALYTICS:
            metadata = {
                "author": "Ultralytics",
                "task": "detect",
                "stride": "32",
                "names": repr(dict(enumerate(names))),
                "imgsz": repr([h, w]),
                "end2end": str(output_format == END_TO_END),
                "description": "Ultralytics "
                + ("rtdetr-l" if output_format in (RTDETR, RTDETR_TOPK) else "YOLO11n")
                + " model trained on test data",
            }
        else:
            metadata = ModelContract(
                names=names, imgsz=(0, 0) if dynamic else imgsz, layout=layout
            ).to_metadata()
    for k, v in metadata.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def failing_detector(path: Path) -> Path:
    """Declares a fine NHWC input, then reshapes 64*64*3 values into rows of 7: loads, fails when
    run (the target shape depends on the image, so only running it finds the mismatch)."""
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 64, 64, 3])
    outs = [
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, None),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, None),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Cast", ["mean"], ["imean"], to=TensorProto.INT64),
        helper.make_node("Mul", ["imean", "zero"], ["izero"]),
        helper.make_node("Add", ["shape", "izero"], ["runtime_shape"]),
        helper.make_node("Reshape", ["images", "runtime_shape"], ["boxes"]),
        helper.make_node("Identity", ["boxes"], ["scores"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([1, -1, 7], np.int64), "shape"),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
    ]
    graph = helper.make_graph(nodes, "fails", [inp], outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in ModelContract(names=("a", "b"), imgsz=(64, 64)).to_metadata().items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.save(model, str(path))
    return path


def shapeless_detector(path: Path) -> Path:
    """A detector whose input declares no shape at all (rank unknown)."""
    fixed_detector(path)
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.ClearField("shape")
    onnx.save(model, str(path))
    return path


ULTRALYTICS_META = {
    "author": "Ultralytics",
    "stride": "32",
    "task": "detect",
    "names": "{0: 'a', 1: 'b'}",
    "imgsz": "[64, 64]",
}


def gate_models(work: Path) -> dict[str, Path]:
    """One model per thing the model gate refuses at load (edge/runtime/gate.py), by file name."""
    nchw = ModelContract(names=("a", "b"), imgsz=(64, 64), layout="NCHW").to_metadata()
    eight = {**ULTRALYTICS_META, "names": repr({i: n for i, n in enumerate("abcdefgh")})}
    return {
        "int32-input.onnx": fixed_detector(work / "int32-input.onnx", input_type=TensorProto.INT32),
        "shapeless.onnx": shapeless_detector(work / "shapeless.onnx"),
        "rank3.onnx": fixed_detector(work / "rank3.onnx", input_shape=[64, 64, 3]),
        "nchw-meta.onnx": fixed_detector(work / "nchw-meta.onnx", metadata=nchw),
        "four-channels.onnx": fixed_detector(
            work / "four-channels.onnx", input_shape=[1, 64, 64, 4]
        ),
        "uint8-scaled.onnx": fixed_detector(
            work / "uint8-scaled.onnx",
            input_type=TensorProto.UINT8,
            output_format=YOLOV8,
            metadata=ULTRALYTICS_META,
        ),
        "batch2.onnx": fixed_detector(work / "batch2.onnx", batch=2),
        "huge-input.onnx": fixed_detector(work / "huge-input.onnx", imgsz=(100_000, 100_000)),
        "fails-when-run.onnx": failing_detector(work / "fails-when-run.onnx"),
        "eight-names.onnx": fixed_detector(
            work / "eight-names.onnx", names=("a", "b", "c"), output_format=YOLOV8, metadata=eight
        ),
    }
