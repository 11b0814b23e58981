"""ONNX Runtime sessions: provider choice, what actually runs, warm-up and IO binding.

ONNX Runtime happily lists CUDA and TensorRT on a machine without a GPU and then silently runs on
the CPU, so the providers reported here are always read back from the live session.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ModelError, check_regular
from edge.runtime.contract import ModelContract, from_metadata
from edge.runtime.gate import check_model
from edge.runtime.machine import physical_cores
from edge.runtime.providers import (  # noqa: F401  (CPU, CUDA, TRT, PROVIDERS: kept importable from here)
    CPU,
    CUDA,
    DEVICES,
    NVIDIA,
    PROVIDERS,
    TRT,
    WANTED,
    preload_gpu_libraries,
    probe,
    short_name,
)

log = logging.getLogger(__name__)


BINDINGS = ("auto", "on", "off")
REMOTE = "triton://"  # a --device naming a model on a Triton Inference Server


@dataclass
class Call:
    """One inference call of `run_many`: its outputs, when it started and ended (perf_counter_ns)
    and, for a model on a server, the part of that time outside the server (`network_ns`)."""

    outputs: list[np.ndarray]
    start_ns: int
    end_ns: int
    network_ns: int = 0


def input_size(
    shape: Sequence[object], contract: ModelContract, imgsz: tuple[int, int] | None = None
) -> tuple[int, int]:
    """(height, width) to feed a model of input `shape`: its fixed size, else `imgsz`, else the
    contract's, else 640x640."""
    dims = shape[2:4] if contract.layout == "NCHW" else shape[1:3]
    fixed = [d if isinstance(d, int) and d > 0 else 0 for d in dims]
    if all(fixed):
        if imgsz is not None and tuple(imgsz) != tuple(fixed):
            raise ValueError(
                f"--imgsz {imgsz[0]}x{imgsz[1]}: this model has a fixed input of {fixed[0]}x{fixed[1]}"
            )
        return (fixed[0], fixed[1])
    if imgsz is not None:
        return (int(imgsz[0]), int(imgsz[1]))
    if all(contract.imgsz):
        return contract.imgsz
    return (640, 640)


@dataclass(frozen=True)
class SessionOptions:
    """How to run a model.

    `device`: auto|cpu|cuda|tensorrt|openvino|coreml|directml, or triton://HOST:PORT/MODEL for a
    model on a Triton Inference Server (`open_session`; edge.runtime.remote). `bind`: IO binding with buffers on
    the device that runs the model (auto: on GPU providers; on: everywhere, the CPU included).
    `cuda_graph`: capture the model once as a CUDA graph and replay it (fixed-shape models on CUDA;
    implies binding). `pinned`: with binding on CUDA, the input in page-locked host memory where
    ORT offers it. TensorRT engine cache and fp16; threads; warm-up runs. `spinning`: whether
    ORT's idle intra-op threads spin waiting for work (None: its default, on); `edge run` and
    `edge.stream` run without, since a spinning thread keeps a core from the loop's other
    threads (decoding, encoding) and from other processes.
    """

    device: str = "auto"
    strict_device: bool = False
    trt_cache: Path | None = None
    trt_fp16: bool = True
    threads: int = 0  # 0: ONNX Runtime's default
    warmup: int = 2
    bind: str = "auto"
    cuda_graph: bool = False
    pinned: bool = True
    spinning: bool | None = None

    def __post_init__(self) -> None:
        if self.device not in DEVICES and not self.device.startswith(REMOTE):
            raise ValueError(
                f"--device must be one of {', '.join(DEVICES)} or {REMOTE}HOST:PORT/MODEL, "
                f"got {self.device!r}"
            )
        if self.threads < 0:
            raise ValueError(f"--threads must be >= 0, got {self.threads}")
        if self.warmup < 0:
            raise ValueError(f"--warmup must be >= 0, got {self.warmup}")
        if self.bind not in BINDINGS:
            raise ValueError(f"--bind must be one of {', '.join(BINDINGS)}, got {self.bind!r}")


class DeviceFallback(ModelError):
    """A GPU provider was asked for with --strict-device and did not start."""


def _provider_list(options: SessionOptions, available: list[str]) -> list[str | tuple[str, dict]]:
    providers: list[str | tuple[str, dict]] = []
    for name in WANTED[options.device]:
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
        elif name == CUDA and options.cuda_graph:
            providers.append((name, {"enable_cuda_graph": "1"}))
        else:
            providers.append(name)
    return providers


class DeviceBinding:
    """IO binding with the input and outputs in buffers on `device` ('cpu' or 'cuda').

    The input buffer is allocated once per shape and refilled in place (`update_inplace`), and
    after the first run the outputs ORT allocated are bound back, so every later run reads and
    writes the same addresses: what CUDA graph replay needs, and no allocation per frame.
    With `pinned` (CUDA, no graph), the input lives in page-locked host memory where this ORT
    build offers it (`OrtEpDevice.memory_info(HOST_ACCESSIBLE)`), so its copy to the GPU is a
    DMA; `input_memory` says which memory it got. Those buffers are one per binding, so a run
    holds the binding's lock from refilling the input to copying the outputs out: threads
    sharing a session take turns instead of reading each other's results.
    """

    def __init__(
        self,
        session: Any,
        input_name: str,
        output_names: list[str],
        device: str,
        pinned: bool = False,
    ) -> None:
        self.session = session
        self.input_name = input_name
        self.output_names = output_names
        self.device = device
        self.pinned = pinned and device == "cuda"
        self.input_memory = device
        self._binding = session.io_binding()
        self._input: Any = None
        self._outputs_fixed = False
        self._lock = threading.Lock()

    def _new_input(self, shape: tuple[int, ...], dtype: Any) -> Any:
        import onnxruntime as ort

        if self.pinned:
            info = _host_accessible_memory(CUDA)
            if info is not None:
                with contextlib.suppress(Exception):  # an allocator this build lacks
                    value = ort.OrtValue.ortvalue_from_shape_and_type(
                        shape, dtype, memory_info=info
                    )
                    self.input_memory = "pinned host"
                    return value
        self.input_memory = self.device
        return ort.OrtValue.ortvalue_from_shape_and_type(shape, dtype, self.device, 0)

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            return self._run(tensor)

    def _run(self, tensor: np.ndarray) -> list[np.ndarray]:
        b = self._binding
        if self._input is None or tuple(self._input.shape()) != tensor.shape:
            self._input = self._new_input(tensor.shape, tensor.dtype)
            b.bind_ortvalue_input(self.input_name, self._input)
            b.clear_binding_outputs()
            for name in self.output_names:
                b.bind_output(name, self.device, 0)
            self._outputs_fixed = False
        self._input.update_inplace(np.ascontiguousarray(tensor))
        self.session.run_with_iobinding(b)
        outputs = b.get_outputs()
        if not self._outputs_fixed:
            for name, value in zip(self.output_names, outputs, strict=True):
                b.bind_ortvalue_output(name, value)
            self._outputs_fixed = True
        # Copies: the next run overwrites the bound buffers.
        return [np.array(v.numpy(), copy=True) for v in outputs]


def _host_accessible_memory(provider: str) -> Any:
    """The page-locked host memory of `provider`'s device, where this ORT build exposes it."""
    import onnxruntime as ort

    if not hasattr(ort, "get_ep_devices") or not hasattr(ort, "OrtDeviceMemoryType"):
        return None
    for ep_device in ort.get_ep_devices():
        if ep_device.ep_name == provider:
            with contextlib.suppress(Exception):
                return ep_device.memory_info(ort.OrtDeviceMemoryType.HOST_ACCESSIBLE)
    return None


class ModelSession:
    """An ONNX model ready to run: its contract, input shape and the providers that actually run.

    `edge.runtime.remote.RemoteSession` answers the loop the same way for a model on a server;
    what differs is declared here: `concurrent` (run_many's calls overlap), `max_batch` (the most
    frames one call takes; None: the input's batch dimension says) and `events` (outages).
    """

    concurrent = False
    max_batch: int | None = None
    events: Sequence[object] = ()

    def __init__(self, path: str | Path, options: SessionOptions | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.options = options or SessionOptions()
        if not self.path.exists():
            raise ModelError(f"model {self.path}: no such file")
        check_regular(self.path, f"model {self.path}", ModelError)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # ORT's provider-load warnings are reported by us, in one line
        if self.options.threads:
            so.intra_op_num_threads = self.options.threads
        if self.options.spinning is not None:
            so.add_session_config_entry(
                "session.intra_op.allow_spinning", "1" if self.options.spinning else "0"
            )
        available = ort.get_available_providers()
        wanted = _provider_list(self.options, available)
        names = [p if isinstance(p, str) else p[0] for p in wanted]
        # Only providers that started in their probe process: one that fails here would log
        # its reason into the host program's terminal (the probe has it, for _check_device).
        wanted = [p for p, n in zip(wanted, names, strict=True) if n == CPU or probe(n).starts]
        if any(n in NVIDIA and probe(n).starts for n in names):
            preload_gpu_libraries()
        started = time.perf_counter()
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=so, providers=wanted)
        except Exception as exc:  # ORT raises its own untyped errors for bad files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"model {self.path}: not a loadable ONNX model ({first[:200]})"
            ) from None
        self.load_seconds = time.perf_counter() - started
        self.providers: list[str] = list(self._session.get_providers())
        self.requested = names
        self.fallback_reason = ""
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
        self.input_dtype = self.check.input_dtype.type  # np.float32, np.float16 or np.uint8
        self.binding: DeviceBinding | None = None
        on_gpu = self.device in ("cuda", "tensorrt")
        if (
            self.options.bind == "on"
            or self.options.cuda_graph
            or (self.options.bind == "auto" and on_gpu)
        ):
            where = "cuda" if on_gpu else "cpu"
            pinned = (
                self.options.pinned and not self.options.cuda_graph
            )  # graphs need device memory
            self.binding = DeviceBinding(
                self._session, self.input_name, self.output_names, where, pinned
            )

    @property
    def device(self) -> str:
        """The provider that actually runs the model: tensorrt, cuda, openvino, ... or cpu."""
        return short_name(self.providers[0])

    @property
    def fell_back(self) -> bool:
        """True when an accelerator was asked for (explicitly) and the CPU runs instead."""
        return self.options.device not in ("auto", "cpu") and self.device == "cpu"

    def _check_device(self) -> None:
        want = self.options.device
        if want == "cpu" or self.device == want or (want == "auto" and self.device != "cpu"):
            return
        first = WANTED[want][0]
        self.fallback_reason = probe(first).reason or "it starts alone but not with this model"
        msg = (
            f"asked for --device {want} but ONNX Runtime runs {self.device}: "
            f"{short_name(first)} did not start ({self.fallback_reason})"
        )
        if self.options.strict_device and want != "auto":
            raise DeviceFallback(msg + "; drop --strict-device to fall back")
        if want != "auto":
            log.warning("WARNING: %s", msg)

    def input_size(self, imgsz: tuple[int, int] | None = None) -> tuple[int, int]:
        """(height, width) to feed: the model's fixed size, else `imgsz`, else the contract's."""
        return input_size(self.input_shape, self.contract, imgsz)

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """One inference; with binding, through buffers on the device (see `DeviceBinding`).

        The model's input dtype rules: a tensor of another dtype (a warm-up buffer of float
        zeros for a uint8 model) is converted.
        """
        if tensor.dtype != self.input_dtype:
            tensor = tensor.astype(self.input_dtype)
        if self.binding is None:
            return self._session.run(None, {self.input_name: tensor})
        return self.binding.run(tensor)

    def run_many(
        self, tensors: Sequence[np.ndarray], stalled: Callable[[], bool] | None = None
    ) -> list[Call]:
        """One call per tensor, one after the other (a local model has no requests in flight)."""
        calls = []
        for tensor in tensors:
            start = time.perf_counter_ns()
            outputs = self.run(tensor)
            calls.append(Call(outputs, start, time.perf_counter_ns()))
        return calls

    def close(self) -> None:
        """Nothing to release: ONNX Runtime frees the model with the session."""

    def server_stats(self) -> None:
        """What a model server did (`RemoteSession`); a local model has none."""

    def warm_up(self, imgsz: tuple[int, int], runs: int | None = None) -> float:
        """Run zeros through the model so the first timed frame pays no start-up cost; seconds spent."""
        n = self.options.warmup if runs is None else runs
        h, w = imgsz
        shape = (1, 3, h, w) if self.contract.layout == "NCHW" else (1, h, w, 3)
        x = np.zeros(shape, self.input_dtype)
        started = time.perf_counter()
        for _ in range(n):
            self.run(x)
        return time.perf_counter() - started

    @property
    def intra_threads(self) -> int:
        """ONNX Runtime's intra-op threads: as asked, else its default (one per physical core)."""
        return self.options.threads or physical_cores()

    def variant(self, **changes: Any) -> ModelSession:
        """The same model in a new session with some options changed (e.g. `threads`)."""
        return ModelSession(self.path, replace(self.options, **changes))

    def describe(self) -> str:
        return f"{self.path.name} on {self.device} ({', '.join(self.providers)})"


def open_session(
    model: str | Path | None, options: SessionOptions | None = None, remote: Any = None
) -> Any:
    """A `ModelSession` for a local ONNX file, or a `RemoteSession` when `options.device` is
    triton://HOST:PORT/MODEL (then `model` must be None: the server's model and contract are
    used). `remote`: `edge.runtime.remote.RemoteOptions` (shared memory, timeouts, reconnects)."""
    options = options or SessionOptions()
    if options.device.startswith(REMOTE):
        if model is not None:
            raise ValueError(
                f"--model {model}: --device {options.device} runs the server's model; drop --model"
            )
        from edge.runtime.remote import RemoteSession

        return RemoteSession(options.device, options, remote)
    if model is None:
        raise ModelError("no model given: pass an ONNX file")
    return ModelSession(model, options)
