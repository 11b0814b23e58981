"""ONNX Runtime sessions: provider choice, what actually runs, warm-up and IO binding.

ONNX Runtime happily lists CUDA and TensorRT on a machine without a GPU and then silently runs on
the CPU, so the providers reported here are always read back from the live session.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.contract import ModelContract, from_metadata
from edge.errors import ModelError
from edge.gate import check_model

log = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet_ort() -> Iterator[None]:
    """Silence ONNX Runtime's own provider-load chatter (C++ logs and its Python fallback print).

    What actually runs is read back from the session and reported by us, in one line.
    """
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        ort.set_default_logger_severity(2)
        if buf.getvalue().strip():
            log.debug("onnxruntime: %s", buf.getvalue().strip())


TRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PROVIDERS = {"cpu": CPU, "cuda": CUDA, "tensorrt": TRT}  # --device name -> ONNX Runtime provider
DEVICES = ("auto", *PROVIDERS)
_WANTED = {
    "auto": [TRT, CUDA, CPU],
    "tensorrt": [TRT, CUDA, CPU],
    "cuda": [CUDA, CPU],
    "cpu": [CPU],
}
_SHORT = {provider: device for device, provider in PROVIDERS.items()}


@dataclass(frozen=True)
class SessionOptions:
    """How to run a model: `device` auto|cpu|cuda|tensorrt; TensorRT engine cache and fp16; threads."""

    device: str = "auto"
    strict_device: bool = False
    trt_cache: Path | None = None
    trt_fp16: bool = True
    threads: int = 0  # 0: ONNX Runtime's default
    warmup: int = 2

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.threads < 0:
            raise ValueError(f"--threads must be >= 0, got {self.threads}")
        if self.warmup < 0:
            raise ValueError(f"--warmup must be >= 0, got {self.warmup}")


class DeviceFallback(ModelError):
    """A GPU provider was asked for with --strict-device and did not start."""


def _provider_list(options: SessionOptions, available: list[str]) -> list[str | tuple[str, dict]]:
    providers: list[str | tuple[str, dict]] = []
    for name in _WANTED[options.device]:
        if name not in available:
            continue
        if name == TRT:
            trt: dict[str, object] = {"trt_fp16_enable": options.trt_fp16}
            if options.trt_cache is not None:
                options.trt_cache.mkdir(parents=True, exist_ok=True)
                trt.update(
                    trt_engine_cache_enable=True,
                    trt_engine_cache_path=str(options.trt_cache),
                    trt_timing_cache_enable=True,
                    trt_timing_cache_path=str(options.trt_cache),
                )
            providers.append((name, trt))
        else:
            providers.append(name)
    return providers


class ModelSession:
    """An ONNX model ready to run: its contract, input shape and the providers that actually run."""

    def __init__(self, path: str | Path, options: SessionOptions | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.options = options or SessionOptions()
        if not self.path.is_file():
            raise ModelError(f"model {self.path}: no such file")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # ORT's provider-load warnings are reported by us, in one line
        if self.options.threads:
            so.intra_op_num_threads = self.options.threads
        available = ort.get_available_providers()
        wanted = _provider_list(self.options, available)
        started = time.perf_counter()
        try:
            with quiet_ort():
                self._session = ort.InferenceSession(
                    str(self.path), sess_options=so, providers=wanted
                )
        except Exception as exc:  # ORT raises its own untyped errors for bad files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"model {self.path}: not a loadable ONNX model ({first[:200]})"
            ) from None
        self.load_seconds = time.perf_counter() - started
        self.providers: list[str] = list(self._session.get_providers())
        self.requested = [p if isinstance(p, str) else p[0] for p in wanted]
        meta = self._session.get_modelmeta().custom_metadata_map
        self.contract: ModelContract = from_metadata(meta, source=f"model {self.path}")
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"model {self.path}: expected one image input, found {len(inputs)}")
        self.input_name = inputs[0].name
        self.output_names = [o.name for o in self._session.get_outputs()]
        self._check_device()
        # The gate refuses, in one line and before any source opens, what cannot be fed or decoded.
        self.check = check_model(self._session, self.contract, f"model {self.path}")
        self.contract = self.check.contract
        self.input_shape = list(self.check.input_shape)
        self._binding = None
        if self.device != "cpu":
            self._binding = self._session.io_binding()

    @property
    def device(self) -> str:
        """The provider that actually runs the model: tensorrt, cuda or cpu."""
        return _SHORT.get(self.providers[0], self.providers[0])

    @property
    def fell_back(self) -> bool:
        """True when a GPU provider was asked for (explicitly) and the CPU runs instead."""
        return self.options.device in ("cuda", "tensorrt") and self.device == "cpu"

    def _check_device(self) -> None:
        want = self.options.device
        if want == "cpu" or self.device == want or (want == "auto" and self.device != "cpu"):
            return
        msg = f"asked for --device {want} but ONNX Runtime runs {self.device} (providers: {', '.join(self.providers)})"
        if self.options.strict_device and want != "auto":
            raise DeviceFallback(msg + "; drop --strict-device to fall back")
        if want != "auto":
            log.warning("WARNING: %s", msg)

    def input_size(self, imgsz: tuple[int, int] | None = None) -> tuple[int, int]:
        """(height, width) to feed: the model's fixed size, else `imgsz`, else the contract's."""
        dims = self.input_shape[2:4] if self.contract.layout == "NCHW" else self.input_shape[1:3]
        fixed = [d if isinstance(d, int) and d > 0 else 0 for d in dims]
        if all(fixed):
            if imgsz is not None and tuple(imgsz) != tuple(fixed):
                raise ValueError(
                    f"--imgsz {imgsz[0]}x{imgsz[1]}: this model has a fixed input of {fixed[0]}x{fixed[1]}"
                )
            return (fixed[0], fixed[1])
        if imgsz is not None:
            return (int(imgsz[0]), int(imgsz[1]))
        if all(self.contract.imgsz):
            return self.contract.imgsz
        return (640, 640)

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """One inference. On GPU providers the input is bound once (no extra host copy)."""
        if tensor.dtype != self.check.input_dtype:  # float16 inputs; uint8 ones fed float pixels
            tensor = tensor.astype(self.check.input_dtype)
        if self._binding is None:
            return self._session.run(None, {self.input_name: tensor})
        b = self._binding
        b.bind_cpu_input(self.input_name, tensor)
        for name in self.output_names:
            b.bind_output(name)
        self._session.run_with_iobinding(b)
        return b.copy_outputs_to_cpu()

    def warm_up(self, imgsz: tuple[int, int], runs: int | None = None) -> float:
        """Run zeros through the model so the first timed frame pays no start-up cost; seconds spent."""
        n = self.options.warmup if runs is None else runs
        h, w = imgsz
        shape = (1, 3, h, w) if self.contract.layout == "NCHW" else (1, h, w, 3)
        x = np.zeros(shape, np.float32)
        started = time.perf_counter()
        for _ in range(n):
            self.run(x)
        return time.perf_counter() - started

    def describe(self) -> str:
        return f"{self.path.name} on {self.device} ({', '.join(self.providers)})"
