"""Zero padding before a max pool, kept exact under ONNX Runtime's graph optimiser.

Keras' `ZeroPadding2D` then a `MaxPooling2D` (KerasHub's HGNetV2 stem in D-FINE, ResNet's
`pool1_pad`) converts to an ONNX `Pad` (constant 0) feeding a `MaxPool`. ONNX Runtime's PadFusion
(onnxruntime/core/optimizer/pad_fusion.cc, at every optimisation level from basic up, so on every
execution provider) moves the padding into the pool's `pads` attribute, which MaxPool treats as
-inf, not 0: a window at the border whose values are all negative then gives its negative
maximum where Keras gives 0. Behind a ReLU nothing changes; behind HGNetV2's learnable affine
block, the values are negative and the error grows through the network (a fine-tuned D-FINE's
scores moved by 2e-3, and the export's parity gate refused the file). The same fold is a known
bug of onnx-optimizer's `fuse_pad_into_pool` (onnxsim issue 290).

The fix is in the graph, so every consumer of the file (ONNX Runtime, TensorRT, Triton) computes
Keras' function: after such a pool, `Max(pooled, border)` with a constant that is 0 at the output
positions whose window reaches the zero padding and the lowest float elsewhere. Where nothing
fuses, the Max changes nothing (the padding's zeros already took part); where the pad was fused
into the pool, it brings the zeros back.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def keep_zero_padding(proto: Any) -> int:
    """Add the border `Max` after every MaxPool fed by a zero `Pad` of its spatial axes alone
    (in place); the number of pools changed. A pool whose shapes the graph does not say is left
    as it is (the parity gate still compares the file with Keras)."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    producers = {out: node for node in graph.node for out in node.output}
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    shapes = _shapes(proto)
    changed = 0
    for index, pool in reversed(list(enumerate(graph.node))):
        if pool.op_type != "MaxPool" or len(pool.output) != 1:
            continue
        pad = producers.get(pool.input[0])
        pads = _zero_spatial_pads(pad, constants) if pad is not None else None
        padded, pooled = shapes.get(pool.input[0]), shapes.get(pool.output[0])
        if pads is None or padded is None or pooled is None:
            continue
        border = _border(pool, pads, padded, pooled)
        if border is None or not border.any():
            continue
        value = np.where(border, np.float32(0), np.finfo(np.float32).min).astype(np.float32)
        name = f"{pool.name or pool.output[0]}/zero_padding"
        graph.initializer.append(numpy_helper.from_array(value[None, None], f"{name}/border"))
        out = pool.output[0]
        pool.output[0] = f"{name}/pooled"
        fix = helper.make_node("Max", [pool.output[0], f"{name}/border"], [out], name=name)
        graph.node.insert(index + 1, fix)
        changed += 1
    if changed:
        log.debug("kept the zero padding of %d max pool(s)", changed)
    return changed


def _shapes(proto: Any) -> dict[str, tuple[int, ...]]:
    """The spatial dims (after batch and channels) of every tensor whose shape inference knows
    them all."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # a model over 2 GB, an op onnx does not know: no shapes, no change
        return {}
    out = {}
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    for value in values:
        dims = value.type.tensor_type.shape.dim
        if len(dims) >= 3 and all(d.HasField("dim_value") for d in dims[2:]):
            out[value.name] = tuple(d.dim_value for d in dims[2:])
    return out


def _zero_spatial_pads(pad: Any, constants: dict[str, np.ndarray]) -> list[int] | None:
    """The Pad's [begin..., end...] over the spatial axes when it pads with zeros, only those
    axes and nothing negative; else None."""
    if pad.op_type != "Pad":
        return None
    attrs = {a.name: a for a in pad.attribute}
    mode = attrs["mode"].s.decode() if "mode" in attrs else "constant"
    if mode != "constant":
        return None
    if len(pad.input) > 1:  # opset 11+: pads, constant_value and axes are inputs
        if len(pad.input) > 3 and pad.input[3]:
            return None  # an axes input: the pads name only some axes
        pads = constants.get(pad.input[1])
        value = constants.get(pad.input[2]) if len(pad.input) > 2 and pad.input[2] else 0.0
    else:
        pads = np.asarray(attrs["pads"].ints) if "pads" in attrs else None
        value = attrs["value"].f if "value" in attrs else 0.0
    if pads is None or value is None or np.any(np.asarray(value) != 0):
        return None
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    rank = len(pads) // 2
    begin, end = pads[:rank], pads[rank:]
    if rank < 3 or any(begin[:2]) or any(end[:2]) or min(pads) < 0:
        return None
    return begin[2:] + end[2:]


def _border(pool: Any, pads: list[int], padded: tuple[int, ...], pooled: tuple[int, ...]) -> Any:
    """True at the output positions of `pool` whose window samples the Pad's zeros."""
    attrs = {a.name: a for a in pool.attribute}
    auto = attrs["auto_pad"].s.decode() if "auto_pad" in attrs else "NOTSET"
    if auto not in ("NOTSET", "VALID"):
        return None
    spatial = len(padded)
    kernel = list(attrs["kernel_shape"].ints)
    strides = list(attrs["strides"].ints) if "strides" in attrs else [1] * spatial
    dilations = list(attrs["dilations"].ints) if "dilations" in attrs else [1] * spatial
    own = list(attrs["pads"].ints) if "pads" in attrs and auto == "NOTSET" else [0] * 2 * spatial
    if not len(kernel) == len(strides) == len(dilations) == spatial == len(pooled):
        return None
    axes = []
    for a in range(spatial):
        begin, end, size = pads[a], pads[spatial + a], padded[a]
        real = range(begin, size - end)  # the Pad's input, in the Pad's output coordinates
        hits = []
        for i in range(pooled[a]):
            samples = (i * strides[a] - own[a] + j * dilations[a] for j in range(kernel[a]))
            hits.append(any(0 <= p < size and p not in real for p in samples))
        axes.append(np.asarray(hits))
    grid = np.zeros(pooled, bool)
    for a, hits in enumerate(axes):
        grid |= hits.reshape([-1 if b == a else 1 for b in range(spatial)])
    return grid
