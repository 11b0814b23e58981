"""The model gate: at load, before any source opens, refuse in one line a model the runtime cannot
feed or whose outputs it cannot decode, and settle what the loop needs to know about it.

Checks the one input (element type, rank, channels against the metadata's layout, fixed and dynamic
sizes, batch), then runs one trial inference at the real input size: the outputs' shapes pick the
output layout (`edge.runtime.postprocess.resolve_format`) and prove their batch follows the input's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from edge.errors import ModelError
from edge.runtime.contract import RTDETR, RTDETR_TOPK, ModelContract
from edge.runtime.postprocess import resolve_format

log = logging.getLogger(__name__)

INPUT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
}
DEFAULT_SIZE = (640, 640)
MAX_SIDE = 8192  # larger inputs are a broken export, and a trial inference would not fit in memory
MAX_BATCH = 64


@dataclass(frozen=True)
class ModelCheck:
    """What the gate learnt: the contract with its output layout settled, the input as the loop
    should see it (batch pinned to 1 where the outputs never follow a larger batch), the element
    type to feed, and the trial's output shapes."""

    contract: ModelContract
    input_shape: tuple[int | str | None, ...]
    input_dtype: np.dtype
    output_shapes: tuple[tuple[int, ...], ...]


def _fixed(dim: object) -> int | None:
    return dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else None


def _shape(shape: Sequence[object]) -> str:
    return "[" + ", ".join("?" if _fixed(d) is None else str(d) for d in shape) + "]"


def check_model(session: Any, contract: ModelContract, source: str = "model") -> ModelCheck:
    """Check an `onnxruntime.InferenceSession` against its `contract`; ModelError if unusable.

    `source` names the model in messages ("model path/x.onnx").
    """
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{source}: expected one image input, found {len(inputs)}")
    inp = inputs[0]
    dtype = _input_dtype(inp, contract, source)
    shape = list(inp.shape or [])
    if len(shape) != 4:
        raise ModelError(
            f"{source}: input {inp.name!r} has shape {_shape(shape) if shape else 'unknown (none declared)'}; "
            "edge feeds one image as [batch, 3, H, W] (NCHW) or [batch, H, W, 3] (NHWC): "
            "re-export it with a 4-D input"
        )
    _check_layout(shape, contract, source)
    hw = _trial_size(shape, contract)
    batch = _fixed(shape[0]) or 1
    if max(hw) > MAX_SIDE or batch > MAX_BATCH:
        raise ModelError(
            f"{source}: input {_shape(shape)} (fed {batch}x{hw[0]}x{hw[1]}) is beyond what edge "
            f"feeds: at most {MAX_SIDE} pixels a side and a batch of {MAX_BATCH}"
        )
    outputs = _trial(session, inp.name, shape, contract, hw, batch, dtype, source)
    shapes = tuple(tuple(int(d) for d in o.shape) for o in outputs)
    bad = [s for s in shapes if not s or s[0] != batch]
    if bad:
        raise ModelError(
            f"{source}: outputs {', '.join(_shape(s) for s in shapes)} for an input batch of {batch}; "
            "each output must have the input's batch first"
        )
    try:
        resolved = resolve_format(contract, shapes)
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from None
    if resolved.output_format in (RTDETR, RTDETR_TOPK):
        resolved = replace(resolved, imgsz=hw)  # its boxes are fractions of the size it was fed
    if _fixed(shape[0]) is None and not _follows_batch(
        session, inp.name, shape, contract, hw, dtype
    ):
        log.warning(
            "%s: the input batch is dynamic but the outputs stay at batch 1; one frame per call",
            source,
        )
        shape[0] = 1
    return ModelCheck(resolved, tuple(shape), np.dtype(dtype), shapes)


def _input_dtype(inp: Any, contract: ModelContract, source: str) -> type:
    dtype = INPUT_TYPES.get(inp.type)
    if dtype is None:
        raise ModelError(
            f"{source}: input {inp.name!r} is {inp.type}; edge feeds images as float32, float16 or "
            "uint8"
        )
    identity = contract.scale == 1.0 and not any(contract.mean) and set(contract.std) == {1.0}
    if dtype is np.uint8 and not identity:
        raise ModelError(
            f"{source}: input {inp.name!r} is uint8 but the metadata asks for scaled input "
            f"(scale {contract.scale:g}, mean {list(contract.mean)}, std {list(contract.std)}); "
            "a uint8 input takes the pixels as they are (scale 1, mean 0, std 1)"
        )
    return dtype


def _check_layout(shape: list, contract: ModelContract, source: str) -> None:
    nchw = contract.layout == "NCHW"
    channels, other = (shape[1], shape[3]) if nchw else (shape[3], shape[1])
    if _fixed(channels) in (None, 3):
        return
    if _fixed(other) == 3:
        actual = "NHWC" if nchw else "NCHW"
        raise ModelError(
            f"{source}: the metadata says layout {contract.layout} but the input {_shape(shape)} is "
            f"{actual}; fix the model's `layout` metadata"
        )
    raise ModelError(
        f"{source}: input {_shape(shape)} ({contract.layout}) has {channels} channels; edge feeds "
        "3-channel images"
    )


def _trial_size(shape: list, contract: ModelContract) -> tuple[int, int]:
    dims = shape[2:4] if contract.layout == "NCHW" else shape[1:3]
    fixed = [_fixed(d) for d in dims]
    if all(fixed):
        return (fixed[0], fixed[1])  # type: ignore[return-value]
    if all(contract.imgsz):
        return contract.imgsz
    return DEFAULT_SIZE


def _zeros(contract: ModelContract, hw: tuple[int, int], batch: int, dtype: type) -> np.ndarray:
    h, w = hw
    shape = (batch, 3, h, w) if contract.layout == "NCHW" else (batch, h, w, 3)
    return np.zeros(shape, dtype)


def _quiet() -> Any:
    """Run options that keep ONNX Runtime's own error log off the terminal: we report in one line."""
    import onnxruntime as ort

    options = ort.RunOptions()
    options.log_severity_level = 4
    return options


def _trial(
    session: Any,
    name: str,
    shape: list,
    contract: ModelContract,
    hw: tuple[int, int],
    batch: int,
    dtype: type,
    source: str,
) -> list[np.ndarray]:
    x = _zeros(contract, hw, batch, dtype)
    try:
        outputs = session.run(None, {name: x}, _quiet())
    except Exception as exc:  # ORT raises its own untyped errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{source}: a trial inference on a {list(x.shape)} {np.dtype(dtype).name} input "
            f"(declared {_shape(shape)}) failed: {first[:200]}"
        ) from None
    return [np.asarray(o) for o in outputs]


def _follows_batch(
    session: Any, name: str, shape: list, contract: ModelContract, hw: tuple[int, int], dtype: type
) -> bool:
    """A dynamic-batch model must give two results for two images; some exports give one."""
    try:
        outputs = session.run(None, {name: _zeros(contract, hw, 2, dtype)}, _quiet())
    except Exception:  # a graph that reshapes to batch 1 inside fails here: run it one by one
        return False
    return all(np.asarray(o).shape[:1] == (2,) for o in outputs)
