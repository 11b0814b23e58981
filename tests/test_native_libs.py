"""A provider that does not start is explained by every library its own library needs and cannot
find, as `ldd` resolves them (here: onnxruntime-gpu without CUDA, cuDNN or TensorRT installed)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from edge.runtime.native_libs import loaded_libraries, not_found, provider_library
from edge.runtime.providers import CPU, CUDA, TRT, diagnose

LDD = """\tlinux-vdso.so.1 (0x00007ffd)
\tlibcublas.so.13 => not found
\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f8a)
\tlibnvinfer.so.10 => not found
\tlibcudart.so.13 => /usr/local/cuda-13.0/lib/libcudart.so.13 (0x00007f8b)
\tlibcudnn.so.9 => not found
\tlibcublas.so.13 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f8c)
"""


def test_not_found_reads_what_ldd_prints():
    assert not_found(LDD) == ["libcublas.so.13", "libnvinfer.so.10", "libcudnn.so.9"]
    assert not_found("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n") == []


def _ldd_missing(provider: str) -> set[str]:
    """What `ldd` itself says the provider's library cannot find, less what this process has
    loaded already (onnxruntime.preload_dlls)."""
    text = subprocess.run(
        ["ldd", str(provider_library(provider))], capture_output=True, text=True, check=True
    ).stdout
    names = {line.split()[0] for line in text.splitlines() if "=> not found" in line}
    return names - loaded_libraries() - {"libcuda.so.1"}  # the driver has its own part


needs_gpu_build = pytest.mark.skipif(
    provider_library(TRT) is None or shutil.which("ldd") is None,
    reason="needs Linux with ldd and onnxruntime-gpu (its TensorRT provider library)",
)


@needs_gpu_build
@pytest.mark.parametrize("provider", [TRT, CUDA])
def test_diagnose_names_every_library_ldd_cannot_find(provider):
    missing = _ldd_missing(provider)
    if not missing:
        pytest.skip(f"every library of {provider} is installed here")
    line = diagnose(provider, "", [provider, CPU])  # even when ORT's own log says nothing
    assert "\n" not in line and " ..." not in line
    for name in sorted(missing):
        assert name in line, (name, line)


@needs_gpu_build
def test_edge_info_names_them_for_tensorrt():
    missing = _ldd_missing(TRT)
    if not missing:
        pytest.skip("TensorRT and its libraries are installed here")
    out = subprocess.run(
        [sys.executable, "-m", "edge", "info"], capture_output=True, text=True, timeout=120
    ).stdout
    (line,) = [ln for ln in out.splitlines() if ln.strip().startswith(TRT)]
    assert "does not start" in line
    for name in sorted(missing):  # libnvinfer, libnvonnxparser, cuDNN, cuBLAS on this machine
        assert name in line, (name, line)
