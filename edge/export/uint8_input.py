"""Pre-processing inside the graph: a float model -> one that takes the letterboxed uint8 BGR image.

The added nodes cast to float, reorder the channels, scale and normalise, and transpose to the
model's layout, so the runtime sends the canvas as it is (4x fewer bytes, no float work on the host).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from edge.runtime.contract import ModelContract

FLOAT_INPUT = "float_input"  # the old input, now made inside the graph


def uint8_contract(contract: ModelContract) -> ModelContract:
    """The contract of the wrapped model: BGR NHWC uint8 pixels in; what `contract` did, inside."""
    inside = (
        f"{contract.color} {contract.layout}, x*{contract.scale:g}, "
        f"mean {list(contract.mean)}, std {list(contract.std)}"
    )
    return replace(
        contract,
        input_dtype="uint8",
        color="BGR",
        layout="NHWC",
        scale=1.0,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        extra={
            **contract.extra,
            "edge.preprocess": f"in graph: uint8 BGR NHWC -> {inside}",
        },
    )


def with_uint8_input(model: Any, contract: ModelContract) -> Any:
    """A copy of `model` (onnx.ModelProto with one float32 input laid out per `contract`) whose
    input is uint8 [B, H, W, 3] BGR, the same name and batch/size dims as before."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if contract.input_dtype != "float32":
        raise ValueError("the model already takes uint8 input")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    (old,) = graph.input
    name = old.name
    for node in graph.node:
        node.input[:] = [FLOAT_INPUT if i == name else i for i in node.input]
    for value in graph.output:
        if value.name == name:
            raise ValueError("the input is also an output; cannot wrap it")
    dims = [d for d in old.type.tensor_type.shape.dim]
    nhwc = [dims[0], dims[2], dims[3], dims[1]] if contract.layout == "NCHW" else dims
    new = helper.make_tensor_value_info(name, TensorProto.UINT8, None)
    for d in nhwc:
        dim = new.type.tensor_type.shape.dim.add()
        dim.CopyFrom(d)

    scale = np.float32(contract.scale) / np.asarray(contract.std, np.float32)
    shift = -np.asarray(contract.mean, np.float32) / np.asarray(contract.std, np.float32)
    nchw = contract.layout == "NCHW"
    nodes = [helper.make_node("Cast", [name], ["pre_f32"], to=TensorProto.FLOAT)]
    x = "pre_f32"
    if nchw:  # transposed first, so the channel flip below copies whole planes
        nodes.append(helper.make_node("Transpose", [x], ["pre_nchw"], perm=[0, 3, 1, 2]))
        x = "pre_nchw"
    channel = 1 if nchw else 3
    shape = [1, 3, 1, 1] if nchw else [3]  # per-channel constants broadcast on the channel axis
    inits = []
    if contract.color == "RGB":  # a reversed Slice: Gather on the channel axis costs ~10x more
        for key, value in (("start", -1), ("end", -(2**62)), ("axis", channel), ("step", -1)):
            inits.append(numpy_helper.from_array(np.array([value], np.int64), f"pre_{key}"))
        flip = ["pre_start", "pre_end", "pre_axis", "pre_step"]
        nodes.append(helper.make_node("Slice", [x, *flip], ["pre_rgb"]))
        x = "pre_rgb"
    if not np.all(scale == 1.0):
        inits.append(numpy_helper.from_array(scale.reshape(shape), "pre_scale"))
        nodes.append(helper.make_node("Mul", [x, "pre_scale"], ["pre_scaled"]))
        x = "pre_scaled"
    if np.any(shift != 0.0):
        inits.append(numpy_helper.from_array(shift.reshape(shape), "pre_shift"))
        nodes.append(helper.make_node("Add", [x, "pre_shift"], ["pre_shifted"]))
        x = "pre_shifted"
    nodes.append(helper.make_node("Identity", [x], [FLOAT_INPUT]))
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *existing])
    graph.initializer.extend(inits)
    del graph.input[:]
    graph.input.append(new)
    return out
