"""A zero Pad before a MaxPool keeps its zeros in ONNX Runtime (edge.export.max_pool).

The reference is onnx's own evaluator on the graph as written (the ONNX semantics, no
optimiser); the file runs under ONNX Runtime at its full optimisation level, where PadFusion
folds the Pad into the pool."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from edge.export.max_pool import keep_zero_padding


def _graph(pads, pool, value=None, opset=18, shape=(2, 3, 9, 8)):
    """x -> Pad(pads, value) -> MaxPool(**pool) -> y"""
    inits = []
    if opset >= 11:
        inits.append(numpy_helper.from_array(np.asarray(pads, np.int64), "pads"))
        inputs = ["x", "pads"]
        if value is not None:
            inits.append(numpy_helper.from_array(np.asarray(value, np.float32), "value"))
            inputs.append("value")
        pad = helper.make_node("Pad", inputs, ["padded"], mode="constant")
    else:
        extra = {} if value is None else {"value": float(value)}
        pad = helper.make_node("Pad", ["x"], ["padded"], mode="constant", pads=pads, **extra)
    nodes = [pad, helper.make_node("MaxPool", ["padded"], ["y"], name="pool", **pool)]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])],
        initializer=inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _ort(model, x):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


CASES = {
    "3x3 stride 2": ([0, 0, 1, 1, 0, 0, 1, 1], {"kernel_shape": [3, 3], "strides": [2, 2]}),
    # HGNetV2's stem: ZeroPadding2D((0, 1), (0, 1)) then MaxPooling2D(2, strides=1)
    "bottom right, 2x2 stride 1": (
        [0, 0, 0, 0, 0, 0, 1, 1],
        {"kernel_shape": [2, 2], "strides": [1, 1]},
    ),
    "asymmetric": ([0, 0, 2, 0, 0, 0, 1, 1], {"kernel_shape": [3, 2], "strides": [2, 3]}),
    "dilated": ([0, 0, 1, 1, 0, 0, 1, 1], {"kernel_shape": [2, 2], "dilations": [3, 2]}),
    "with the pool's own pads": (
        [0, 0, 1, 1, 0, 0, 1, 1],
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 0, 1]},
    ),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("opset", [10, 18])
def test_a_window_of_negatives_at_the_border_pools_to_the_zero_padding(case, opset) -> None:
    pads, pool = CASES[case]
    model = _graph(pads, pool, opset=opset)
    x = -np.random.default_rng(0).uniform(0.1, 1.0, (2, 3, 9, 8)).astype(np.float32)
    x[0, 0, 4, 4] = 2.0  # a positive one inside: the interior keeps its real maxima
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    assert (want == 0).any() and (want < 0).any()  # windows at the border and inside

    assert keep_zero_padding(model) == 1
    onnx.checker.check_model(model)
    np.testing.assert_array_equal(_ort(model, x), want)
    np.testing.assert_array_equal(ReferenceEvaluator(model).run(None, {"x": x})[0], want)


def test_a_positive_input_and_a_pad_of_other_values_are_computed_as_written() -> None:
    pads, pool = CASES["3x3 stride 2"]
    x = np.random.default_rng(1).uniform(-1, 1, (2, 3, 9, 8)).astype(np.float32)
    for model in (_graph(pads, pool, value=-5.0), _graph([0, 1, 1, 1, 0, 0, 1, 1], pool)):
        before = onnx.ModelProto()
        before.CopyFrom(model)
        assert keep_zero_padding(model) == 0  # not a zero pad of the spatial axes alone
        assert model == before
    model = _graph(pads, pool)
    assert keep_zero_padding(model) == 1
    positive = np.abs(x) + 0.5
    np.testing.assert_array_equal(
        _ort(model, positive), ReferenceEvaluator(_graph(pads, pool)).run(None, {"x": positive})[0]
    )
