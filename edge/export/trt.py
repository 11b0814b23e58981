"""Pre-building TensorRT engines for exported files, so the first `edge run` starts at once.

The engine is built with the options `edge run --trt-cache DIR` uses (fp16 unless told not to),
from the file at its final path: ONNX Runtime keys cached engines on the model file's name.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def tensorrt_available() -> tuple[bool, str]:
    """(whether ONNX Runtime really runs TensorRT here, which providers it ran instead).

    onnxruntime-gpu lists TensorRT on machines with no GPU or no TensorRT libraries and then
    falls back to the CPU, so a one-node model is opened to see what actually runs.
    """
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from edge.runtime.session import TRT, quiet_ort

    if TRT not in ort.get_available_providers():
        return False, ", ".join(ort.get_available_providers())
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    probe = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    probe.ir_version = 8
    so = ort.SessionOptions()
    so.log_severity_level = 4
    try:
        with quiet_ort():
            session = ort.InferenceSession(
                probe.SerializeToString(),
                sess_options=so,
                providers=[TRT, "CPUExecutionProvider"],
            )
    except Exception as exc:  # ORT raises its own untyped errors
        return False, f"error: {str(exc).strip().splitlines()[0][:120]}"
    providers = session.get_providers()
    return providers[0] == TRT, ", ".join(providers)


def build_cache(path: Path, cache: Path, fp16: bool = True) -> float:
    """Open `path` with TensorRT caching into `cache` and run it once; seconds spent.

    Raises edge.runtime.session.DeviceFallback when TensorRT does not start after all.
    """
    from edge.runtime.session import ModelSession, SessionOptions

    started = time.perf_counter()
    session = ModelSession(
        path,
        SessionOptions(
            device="tensorrt", strict_device=True, trt_cache=cache, trt_fp16=fp16, warmup=1
        ),
    )
    session.warm_up(session.input_size())
    return time.perf_counter() - started
