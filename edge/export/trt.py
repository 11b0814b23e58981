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
    """(whether ONNX Runtime really runs TensorRT here, what it runs instead and why).

    onnxruntime-gpu lists TensorRT on machines with no GPU or no TensorRT libraries and then
    falls back to the CPU, so a one-node model is started on it (in a probe process) to see.
    """
    from edge.runtime.providers import CPU, TRT, probe

    state = probe(TRT)
    return state.starts, TRT if state.starts else f"{CPU}; TensorRT: {state.describe()}"


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
