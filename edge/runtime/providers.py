"""ONNX Runtime execution providers: which `--device` asks for which, and why one does not start.

ONNX Runtime lists CUDA and TensorRT on a machine without a GPU and then quietly runs on the CPU,
logging the real reason (a missing library, a driver too old) in coloured C++ log lines and
Python prints. So each accelerator is first started in a child process (`probe`, once per
process and provider): its output is read from the child's pipes and turned into one line that
names the cause, and a session here is only given the providers that started there. Nothing in
this process's stdout/stderr is touched: a host program's threads keep printing meanwhile.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.runtime.native_libs import provider_missing

log = logging.getLogger(__name__)

TRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
OPENVINO = "OpenVINOExecutionProvider"
COREML = "CoreMLExecutionProvider"
DML = "DmlExecutionProvider"
CPU = "CPUExecutionProvider"

# --device -> providers in order of preference (CPU last, so a model always runs).
WANTED: dict[str, list[str]] = {
    "auto": [TRT, CUDA, OPENVINO, DML, COREML, CPU],
    "cpu": [CPU],
    "cuda": [CUDA, CPU],
    "tensorrt": [TRT, CUDA, CPU],
    "openvino": [OPENVINO, CPU],
    "coreml": [COREML, CPU],
    "directml": [DML, CPU],
}
DEVICES = tuple(WANTED)
# --device name -> the one provider it names (its first choice); and back.
PROVIDERS = {device: wanted[0] for device, wanted in WANTED.items() if device != "auto"}
SHORT = {provider: device for device, provider in PROVIDERS.items()}
NVIDIA = (TRT, CUDA)
# Which package brings each provider (README: "which package on which device").
PACKAGE = {
    TRT: "onnxruntime-gpu (pip install 'edge[gpu]') plus TensorRT 10 libraries",
    CUDA: "onnxruntime-gpu (pip install 'edge[gpu]'; on a Jetson, JetPack's onnxruntime-gpu wheel)",
    OPENVINO: "onnxruntime-openvino (pip install 'edge[openvino]')",
    COREML: "onnxruntime (the standard macOS wheel)",
    DML: "onnxruntime-directml (pip install 'edge[directml]')",
    CPU: "onnxruntime",
}


def short_name(provider: str) -> str:
    return SHORT.get(provider, provider)


_preload_lock = threading.Lock()
_preloaded: list[bool] = []


def preload_gpu_libraries() -> None:
    """Call `onnxruntime.preload_dlls()` once (ORT >= 1.21): it loads CUDA and cuDNN from the
    NVIDIA pip packages (`onnxruntime-gpu[cuda,cudnn]`), so no system CUDA is needed. It prints
    the libraries it cannot load, so a session only calls it for a provider its probe process
    saw start (`probe`), where it has nothing to say."""
    import onnxruntime as ort

    with _preload_lock:
        if _preloaded:
            return
        _preloaded.append(True)
        if hasattr(ort, "preload_dlls"):
            try:
                ort.preload_dlls()
            except Exception as exc:  # a broken NVIDIA package must not stop a CPU fallback
                log.debug("onnxruntime.preload_dlls failed: %s", exc)


def cuda_driver() -> str:
    """What the NVIDIA driver supports, read from libcuda: 'driver for CUDA 12.8', or why not."""
    names = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        version = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(version)) != 0:
            return f"{name} loads but cuDriverGetVersion fails"
        major, minor = divmod(version.value, 1000)
        return f"NVIDIA driver for CUDA {major}.{minor // 10}"
    return f"no NVIDIA driver ({names[0]} not found)"


def diagnose(
    provider: str,
    native_text: str,
    available: list[str],
    missing_here: Sequence[str] | None = None,
) -> str:
    """One line on why `provider` did not start, from ORT's log text. `missing_here`: what its
    library needs that the process it ran in could not load (None: `provider_missing` here)."""
    if provider not in available:
        return (
            f"not compiled into this onnxruntime build ({_installed_build()}); it comes with "
            f"{PACKAGE.get(provider, 'another onnxruntime build')}"
        )
    parts: list[str] = []
    lib = r"([\w.+-]+\.(?:so(?:\.\d+)*|dll|dylib))"
    found = re.findall(lib + r": cannot open", native_text)
    found += re.findall(r"Failed to load " + lib + r":", native_text)
    found += re.findall(
        r"LoadLibrary failed with error \d+ \S+ when trying to load \S*?" + lib, native_text
    )
    logged = bool(found)
    # what its library needs, as ldd resolves it
    found += provider_missing(provider) if missing_here is None else list(missing_here)
    if provider in NVIDIA:  # the driver has its own part below
        found = [name for name in found if not name.startswith("libcuda.so")]
    missing = sorted(set(found))
    if missing:
        parts.append("missing " + ", ".join(missing))
    need = re.search(r"Require (cuDNN [\d.*]+ and CUDA [\d.*]+)", native_text)
    if need:
        parts.append(f"this build needs {need.group(1).rstrip('.')}")
    if provider in NVIDIA:
        parts.append(cuda_driver())
    if not logged and not need:  # ORT's own words, when its log names no missing library
        errors = [
            ln for ln in native_text.splitlines() if "[E:" in ln or "[W:" in ln or "rror" in ln
        ]
        if errors:
            parts.append(re.sub(r"^.*?\] ", "", errors[-1]).strip()[:200])
    return "; ".join(parts) or "ONNX Runtime gave no reason"


def _installed_build() -> str:
    from importlib import metadata

    names = []
    for dist in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            names.append(f"{dist} {metadata.version(dist)}")
    return ", ".join(names) or "unknown"


@dataclass(frozen=True)
class ProviderState:
    """One provider on this machine: compiled into the installed ORT build, really starts, why not."""

    name: str
    compiled_in: bool
    starts: bool
    reason: str = ""

    def describe(self) -> str:
        if self.starts:
            return "compiled in, starts"
        if not self.compiled_in:
            return "not compiled in"
        return f"compiled in, does not start: {self.reason}"


_PROBE_MARK = "edge-probe-result: "
_PROBE_TIMEOUT_S = 300  # a TensorRT engine build for the one-node model included
_probe_lock = threading.Lock()
_probed: dict[str, ProviderState] = {}


def probe(provider: str) -> ProviderState:
    """Whether `provider` really starts here, and why not: the CPU in this process, any other
    provider in a child process (`probe_child_main`), once per process (the answer is kept)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if provider not in available:
        return ProviderState(provider, False, False, diagnose(provider, "", available))
    if provider == CPU:
        runs, error = start_here(CPU)
        return ProviderState(CPU, True, runs == CPU, error)
    with _probe_lock:  # threads opening sessions at once share one probe per provider
        if provider not in _probed:
            _probed[provider] = _probe_in_child(provider, available)
        return _probed[provider]


def _probe_in_child(provider: str, available: list[str]) -> ProviderState:
    import onnxruntime as ort

    # The child imports this edge and this onnxruntime, wherever they were found.
    roots = [str(Path(__file__).resolve().parents[2]), str(Path(ort.__file__).parents[1])]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*roots, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    code = "import sys; from edge.runtime.providers import probe_child_main as m; m(sys.argv[1])"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, provider],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ProviderState(provider, True, False, f"its probe ran over {_PROBE_TIMEOUT_S} s")
    except OSError as exc:
        return ProviderState(provider, True, False, f"no probe process ({exc})")
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    results = [ln[len(_PROBE_MARK) :] for ln in lines if ln.startswith(_PROBE_MARK)]
    logged = [ln for ln in lines if not ln.startswith(_PROBE_MARK)]
    logged += done.stderr.decode("utf-8", "replace").splitlines()
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(logged))  # ORT colours its log lines
    if not results:  # the provider took its process down (a crash in a native library)
        reason = diagnose(provider, text, available)
        return ProviderState(
            provider, True, False, f"its probe process ended with code {done.returncode}; {reason}"
        )
    result = json.loads(results[-1])
    if result["error"]:
        return ProviderState(provider, True, False, result["error"])
    if result["runs"] == provider:
        return ProviderState(provider, True, True)
    return ProviderState(
        provider, True, False, diagnose(provider, text, available, result["missing"])
    )


def probe_child_main(provider: str) -> None:
    """In a probe process: start `provider` on `tiny_model`, ORT's log at warnings so the
    reason is in this process's output, and print the outcome as the last line (JSON)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(2)
    if provider in NVIDIA:
        preload_gpu_libraries()
    runs, error = start_here(provider, log_level=2)
    result = {"runs": runs, "error": error, "missing": list(provider_missing(provider))}
    sys.stdout.flush()
    sys.stderr.flush()
    print(_PROBE_MARK + json.dumps(result), flush=True)


def start_here(provider: str, log_level: int = 3) -> tuple[str, str]:
    """Start a one-node session on `provider` (the CPU behind it) in this process: (the
    provider that runs it, ''), or ('', the first line of ORT's error)."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = log_level
    try:
        s = ort.InferenceSession(
            tiny_model(), sess_options=so, providers=list(dict.fromkeys([provider, CPU]))
        )
        s.run(None, {"x": np.zeros((1, 4), np.float32)})
    except Exception as exc:  # a provider's load failure is information here, not an error
        text = str(exc).strip()
        return "", text.splitlines()[0][:200] if text else type(exc).__name__
    return s.get_providers()[0], ""


def tiny_model() -> bytes:
    """A one-node ONNX model (Relu on [1, 4] float32): what probes start sessions with."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@dataclass(frozen=True)
class Jetson:
    """An NVIDIA Jetson: its model name, L4T release, and what edge needs that is missing."""

    model: str
    release: str
    missing: tuple[str, ...]


def jetson(root: Path = Path("/")) -> Jetson | None:
    """Recognise a Jetson (L4T release file or a Jetson/Tegra device-tree model); None elsewhere."""
    release_file = root / "etc/nv_tegra_release"
    model_file = root / "proc/device-tree/model"
    model = _read(model_file).strip("\x00 \n")
    release = _read(release_file).splitlines()[0].strip("# \n") if release_file.is_file() else ""
    if not release and not re.search(r"jetson|tegra|orin|xavier", model, re.IGNORECASE):
        return None
    return Jetson(
        model or "unknown Jetson", release or "no /etc/nv_tegra_release", jetson_missing()
    )


def jetson_missing() -> tuple[str, ...]:
    import cv2
    import onnxruntime as ort

    missing = []
    if CUDA not in ort.get_available_providers():
        missing.append(
            "an onnxruntime build with CUDA/TensorRT: install JetPack's onnxruntime-gpu wheel "
            "(README: Jetson), not the PyPI onnxruntime"
        )
    if not re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()):
        missing.append(
            "OpenCV with GStreamer (hardware decoding of cameras and RTSP): use JetPack's "
            "python3-opencv, not opencv-python from PyPI"
        )
    return tuple(missing)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
