"""Which shared libraries an ONNX Runtime provider needs that this machine cannot load.

Read from the provider's own library (`libonnxruntime_providers_<name>.so` in onnxruntime/capi):
`ldd` resolves its DT_NEEDED entries, and theirs, the way the dynamic loader will, and prints
`=> not found` for each one it cannot find. A library already loaded in this process counts as
found (`onnxruntime.preload_dlls` loads CUDA and cuDNN from NVIDIA's pip packages, which `ldd`
does not search). Where there is no `ldd` (Windows, macOS, musl) nothing is reported here and
ONNX Runtime's own messages are all there is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# Provider -> the name part of its library, libonnxruntime_providers_<name>.so.
PROVIDER_LIBRARIES = {
    "TensorrtExecutionProvider": "tensorrt",
    "CUDAExecutionProvider": "cuda",
    "OpenVINOExecutionProvider": "openvino",
    "MIGraphXExecutionProvider": "migraphx",
    "ROCMExecutionProvider": "rocm",
}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$", re.M)


def provider_library(provider: str) -> Path | None:
    """The installed onnxruntime's library for `provider`, if it has one (None for the CPU)."""
    name = PROVIDER_LIBRARIES.get(provider)
    if name is None or not sys.platform.startswith("linux"):
        return None
    try:
        import onnxruntime
    except ImportError:
        return None
    path = Path(onnxruntime.__file__).parent / "capi" / f"libonnxruntime_providers_{name}.so"
    return path if path.is_file() else None


def not_found(ldd_output: str) -> list[str]:
    """The library names `ldd` printed as `=> not found`, in its order, each once."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def loaded_libraries() -> set[str]:
    """File names of the shared libraries mapped into this process (Linux; empty elsewhere)."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    return {os.path.basename(line.split()[-1]) for line in maps.splitlines() if ".so" in line}


def missing_libraries(library: Path) -> tuple[str, ...]:
    """What `library` needs, directly or through the libraries it loads, that cannot be found."""
    ldd = shutil.which("ldd")
    if ldd is None or not library.is_file():
        return ()
    try:
        done = subprocess.run(
            [ldd, str(library)], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    have = loaded_libraries()
    return tuple(name for name in not_found(done.stdout) if name not in have)


def provider_missing(provider: str) -> tuple[str, ...]:
    """`missing_libraries` of `provider`'s library; () when it has none here."""
    library = provider_library(provider)
    return () if library is None else missing_libraries(library)
