from __future__ import annotations

import logging

import numpy as np
import pytest
from onnx_models import fixed_detector

from edge.errors import ModelError
from edge.runtime.session import DeviceFallback, ModelSession, SessionOptions


def test_cpu_session_reports_what_runs(tiny_model):
    s = ModelSession(tiny_model, SessionOptions(device="cpu"))
    assert s.providers == ["CPUExecutionProvider"] and s.device == "cpu" and not s.fell_back
    assert s.contract.names == ("a", "b")
    assert s.input_size() == (64, 64)
    out = s.run(np.zeros((1, 64, 64, 3), np.float32))
    assert [o.shape for o in out] == [(1, 2, 4), (1, 2, 2)]


def _gpu_runs() -> bool:
    import onnxruntime as ort

    from edge.runtime.machine import provider_check

    return (
        "CUDAExecutionProvider" in ort.get_available_providers()
        and provider_check().get("CUDAExecutionProvider") == "starts"
    )


@pytest.mark.skipif(_gpu_runs(), reason="a GPU really runs here: the fallback cannot happen")
@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_gpu_request_without_gpu_falls_back_loudly(tiny_model, device, caplog):
    with caplog.at_level(logging.WARNING):
        s = ModelSession(tiny_model, SessionOptions(device=device))
    assert s.device == "cpu" and s.fell_back
    assert f"asked for --device {device} but ONNX Runtime runs cpu" in caplog.text
    with pytest.raises(DeviceFallback, match="drop --strict-device"):
        ModelSession(tiny_model, SessionOptions(device=device, strict_device=True))


def test_dynamic_model_takes_imgsz(tmp_path):
    m = fixed_detector(tmp_path / "dyn.onnx", dynamic=True)
    s = ModelSession(m, SessionOptions(device="cpu"))
    assert s.input_size() == (640, 640)  # no size anywhere: the common default
    assert s.input_size((96, 128)) == (96, 128)
    assert s.run(np.zeros((1, 96, 128, 3), np.float32))[0].shape == (1, 2, 4)


def test_fixed_model_rejects_other_imgsz(tiny_model):
    s = ModelSession(tiny_model, SessionOptions(device="cpu"))
    with pytest.raises(ValueError, match="fixed input of 64x64"):
        s.input_size((32, 32))


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "no such file"), (b"not an onnx model", "not a loadable ONNX model")],
)
def test_bad_model_files(tmp_path, content, match):
    p = tmp_path / "m.onnx"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(ModelError, match=match):
        ModelSession(p, SessionOptions(device="cpu"))


def test_model_without_detector_metadata(tmp_path):
    m = fixed_detector(tmp_path / "plain.onnx", metadata={})
    with pytest.raises(ModelError, match="no detector metadata"):
        ModelSession(m, SessionOptions(device="cpu"))


@pytest.mark.parametrize(
    ("kw", "match"), [({"device": "gpu"}, "--device"), ({"threads": -1}, "--threads")]
)
def test_bad_session_options(kw, match):
    with pytest.raises(ValueError, match=match):
        SessionOptions(**kw)
