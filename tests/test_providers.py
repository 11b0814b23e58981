"""Provider diagnosis, Jetson detection and device binding, on the CPU."""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort
import pytest
from test_uint8_input import BASE, echo_model

from edge.runtime import providers
from edge.runtime.providers import CPU, CUDA, OPENVINO, TRT, diagnose, jetson, probe
from edge.runtime.session import ModelSession, SessionOptions

# What ONNX Runtime 1.31 (onnxruntime-gpu) really printed on a machine without CUDA libraries.
ORT_CUDA_LOG = (
    "Failed to load libcublasLt.so.13: libcublasLt.so.13: cannot open shared object file: No such "
    "file or directory\n"
    "2026-12-02 01:03:08.167 [E:onnxruntime:Default, provider_bridge_ort.cc:2458 operator()] "
    "Failed to load library /x/onnxruntime/capi/libonnxruntime_providers_cuda.so with error: "
    "libcublasLt.so.13: cannot open shared object file: No such file or directory\n"
    "2026-12-02 01:03:08.167 [W:onnxruntime:Default, onnxruntime_pybind_state.cc:1295 "
    "CreateExecutionProviderFactoryInstance] Failed to create CUDAExecutionProvider. Require "
    "cuDNN 9.* and CUDA 13.*. Please install all dependencies"
)
WINDOWS_LOG = (
    '[E:onnxruntime:Default, provider_bridge_ort.cc:1862] LoadLibrary failed with error 126 "" '
    "when trying to load C:\\ort\\capi\\onnxruntime_providers_cuda.dll"
)


@pytest.mark.parametrize(
    ("provider", "text", "available", "expect"),
    [
        # "missing " and then every name: the log's and what ldd finds missing on this machine
        (
            CUDA,
            ORT_CUDA_LOG,
            [CUDA, CPU],
            ["missing ", "libcublasLt.so.13", "cuDNN 9.* and CUDA 13.*"],
        ),
        (TRT, "libnvinfer.so.10: cannot open shared object file", [TRT, CPU], ["libnvinfer.so.10"]),
        (CUDA, WINDOWS_LOG, [CUDA, CPU], ["onnxruntime_providers_cuda.dll"]),
        (OPENVINO, "", [CPU], ["not compiled into this onnxruntime build", "onnxruntime-openvino"]),
        (
            CUDA,
            "[E:onnxruntime:Default, x.cc:1] CUDA failure 35: driver too old",
            [CUDA, CPU],
            ["CUDA failure 35: driver too old"],
        ),
        (CUDA, "", [CUDA, CPU], ["NVIDIA driver"]),  # no text: at least what the driver says
    ],
)
def test_diagnose_names_the_cause(provider, text, available, expect):
    line = diagnose(provider, text, available)
    assert "\n" not in line
    for part in expect:
        assert part in line


def test_probe_reads_back_what_really_runs():
    assert probe(CPU).starts and probe(CPU).describe() == "compiled in, starts"
    state = probe(OPENVINO)
    assert state.compiled_in == (OPENVINO in ort.get_available_providers())


def _cuda_starts() -> bool:
    return probe(CUDA).starts


@pytest.mark.skipif(_cuda_starts(), reason="CUDA really starts here: nothing to diagnose")
def test_gpu_fallback_warning_says_why(tmp_path, caplog):
    model = echo_model(tmp_path / "m.onnx", BASE)
    with caplog.at_level(logging.WARNING):
        s = ModelSession(model, SessionOptions(device="cuda", warmup=0))
    assert s.device == "cpu" and s.fell_back
    lines = [r.getMessage() for r in caplog.records if "asked for --device cuda" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "cuda did not start (" in lines[0]
    # the reason is the real one: a missing library (onnxruntime-gpu here) or the wrong build
    assert ".so" in s.fallback_reason or "not compiled into" in s.fallback_reason


@pytest.mark.parametrize(
    ("files", "expect"),
    [
        (
            {"etc/nv_tegra_release": "# R36 (release), REVISION: 4.0\n"},
            "R36 (release), REVISION: 4.0",
        ),
        ({"proc/device-tree/model": "NVIDIA Jetson Orin Nano Developer Kit\x00"}, "Orin Nano"),
        ({"proc/device-tree/model": "Raspberry Pi 5 Model B\x00"}, None),
        ({}, None),
    ],
)
def test_jetson_detection(tmp_path, files, expect):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = jetson(tmp_path)
    if expect is None:
        assert found is None
        return
    assert expect in f"{found.model} {found.release}"
    wants_cuda = CUDA not in ort.get_available_providers()
    assert any("JetPack's onnxruntime-gpu" in m for m in found.missing) == wants_cuda
    import re

    import cv2

    has_gstreamer = re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()) is not None
    assert any("GStreamer" in m for m in found.missing) == (not has_gstreamer)


def test_device_binding_reuses_buffers_and_gives_fresh_results(tmp_path):
    model = echo_model(tmp_path / "m.onnx", BASE)
    plain = ModelSession(model, SessionOptions(device="cpu", warmup=0, bind="off"))
    bound = ModelSession(model, SessionOptions(device="cpu", warmup=0, bind="on"))
    assert plain.binding is None and bound.binding is not None and bound.binding.device == "cpu"
    rng = np.random.default_rng(1)
    kept = []
    for _ in range(3):
        x = rng.uniform(0, 255, (1, 24, 32, 3)).astype(np.float32)
        got = bound.run(x)[0]
        np.testing.assert_array_equal(got, plain.run(x)[0])
        kept.append((x, got))
    for x, got in kept:  # earlier results are not overwritten by later runs
        np.testing.assert_array_equal(got.reshape(x.shape), x * 2)


def test_device_binding_rebinds_when_the_shape_changes(tmp_path):
    model = echo_model(tmp_path / "d.onnx", BASE, dynamic=True)
    s = ModelSession(model, SessionOptions(device="cpu", warmup=0, bind="on"))
    for h, w in [(8, 8), (8, 8), (16, 24), (8, 8)]:
        x = np.full((1, h, w, 3), 3.0, np.float32)
        np.testing.assert_array_equal(s.run(x)[0].reshape(x.shape), x * 2)


def test_float_zeros_are_converted_for_a_uint8_model(tmp_path):
    """Warm-up buffers of float zeros (the loop's) still run on a uint8-input model."""
    import onnx

    from edge.export.uint8_input import uint8_contract, with_uint8_input

    path = echo_model(tmp_path / "m.onnx", BASE)
    wrapped = with_uint8_input(onnx.load(str(path)), BASE)
    del wrapped.metadata_props[:]
    for k, v in uint8_contract(BASE).to_metadata().items():
        wrapped.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.save(wrapped, str(tmp_path / "u8.onnx"))
    s = ModelSession(tmp_path / "u8.onnx", SessionOptions(device="cpu", warmup=2))
    assert s.warm_up((24, 32)) >= 0
    assert s.run(np.zeros((1, 24, 32, 3), np.float32))[0].max() == 0


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"bind": "always"}, "--bind must be one of"), ({"device": "npu"}, "--device must be one of")],
)
def test_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        SessionOptions(**kw)


def test_every_device_has_a_provider_list_ending_on_the_cpu():
    for device, wanted in providers.WANTED.items():
        assert wanted[-1] == CPU, device


@pytest.mark.parametrize(
    ("options", "available", "expect"),
    [
        (SessionOptions(device="cuda"), [CUDA, CPU], [CUDA, CPU]),
        (
            SessionOptions(device="cuda", cuda_graph=True),
            [CUDA, CPU],
            [(CUDA, {"enable_cuda_graph": "1"}), CPU],
        ),
        (
            SessionOptions(device="tensorrt", trt_fp16=False),
            [TRT, CUDA, CPU],
            [(TRT, {"trt_fp16_enable": False}), CUDA, CPU],
        ),
        (SessionOptions(device="openvino"), [CPU], [CPU]),  # not in this build: the CPU runs
        (SessionOptions(device="auto"), [OPENVINO, CPU], [OPENVINO, CPU]),
    ],
)
def test_provider_list_per_device(options, available, expect):
    from edge.runtime.session import _provider_list

    assert _provider_list(options, available) == expect


def test_cuda_graph_binds_even_on_the_cpu(tmp_path):
    """A CUDA-graph session needs fixed buffers; where CUDA does not start, the same binding
    path runs on the CPU (what the GPU machine then exercises with real device buffers)."""
    model = echo_model(tmp_path / "m.onnx", BASE)
    s = ModelSession(model, SessionOptions(device="cpu", cuda_graph=True, warmup=0))
    assert s.binding is not None and s.binding.device == "cpu"
    x = np.ones((1, 24, 32, 3), np.float32)
    np.testing.assert_array_equal(s.run(x)[0].reshape(x.shape), x * 2)


def test_pinned_input_only_where_ort_offers_it(tmp_path):
    from edge.runtime.session import _host_accessible_memory

    model = echo_model(tmp_path / "m.onnx", BASE)
    s = ModelSession(model, SessionOptions(device="cpu", bind="on", pinned=True, warmup=0))
    s.run(np.zeros((1, 24, 32, 3), np.float32))
    assert not s.binding.pinned and s.binding.input_memory == "cpu"  # pinned is a CUDA matter
    if not probe(CUDA).starts:  # no CUDA device: no page-locked memory to ask for
        assert _host_accessible_memory(CUDA) is None
