"""`edge run --device openvino` for real: ONNX Runtime's OpenVINO build in its own venv.

onnxruntime-openvino and onnxruntime(-gpu) cannot share one environment, so this builds a venv
in pytest's temporary folder (removed with it; nothing goes to ~/.cache or the repo) holding
onnxruntime-openvino, numpy, OpenCV and onnx, and runs this checkout through PYTHONPATH. The venv
is about 650 MB on disk (OpenVINO's runtime libraries are most of it); pip fetches the wheels
through its own cache, so only the first run on a machine downloads them.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["onnxruntime-openvino", "numpy", "opencv-python-headless", "onnx"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        platform.machine() not in ("x86_64", "AMD64") or sys.platform == "darwin",
        reason="onnxruntime-openvino wheels are for x86-64 Linux and Windows",
    ),
]


def openvino_python(home: Path) -> Path:
    """A venv in `home` with PACKAGES installed; its python."""
    python = home / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    venv.EnvBuilder(clear=True, with_pip=True).create(home)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PACKAGES],
        check=True,
        timeout=1200,
    )
    return python


def edge_run(python: Path, device: str, out: Path) -> tuple[str, list[dict]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYTHONHOME", None)
    jsonl = out / f"{device}.jsonl"
    cmd = [str(python), "-m", "edge", "run", "--device", device, "--strict-device"]
    cmd += ["--max-frames", "12", "--jsonl", str(jsonl), "--no-show", "--conf", "0.3"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=out, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr, [json.loads(line) for line in jsonl.read_text().splitlines()]


def test_edge_run_on_openvino_matches_the_cpu(tmp_path):
    python = openvino_python(tmp_path / "venv")
    probe = subprocess.run(
        [str(python), "-c", "import onnxruntime as o; print(o.get_available_providers())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "OpenVINOExecutionProvider" in probe.stdout
    text, ov = edge_run(python, "openvino", tmp_path)
    assert "on openvino (OpenVINOExecutionProvider" in text  # read back from the live session
    _, cpu = edge_run(python, "cpu", tmp_path)
    assert len(ov) == len(cpu) == 12
    assert [r["frame"] for r in ov] == [r["frame"] for r in cpu]  # the same frames, both runs
    found = 0
    for a, b in zip(ov, cpu, strict=True):
        da, db = a["detections"], b["detections"]
        assert [d["class"] for d in da] == [d["class"] for d in db]
        for x, y in zip(da, db, strict=True):
            np.testing.assert_allclose(x["box"], y["box"], atol=1.5)
            assert abs(x["score"] - y["score"]) < 0.02
        found += len(da)
    assert found > 0  # the bundled model finds the synthetic scene's objects
