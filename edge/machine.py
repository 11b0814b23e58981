"""What this machine offers: its CPU, its GPUs and the ONNX Runtime providers that really start.

`edge info` prints it and `edge bench` records it beside every number, so no number is quoted
without the hardware it was measured on.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path


def _tiny_model() -> bytes:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx._serialize(model) if hasattr(onnx, "_serialize") else model.SerializeToString()


def provider_check() -> dict[str, str]:
    """For each compiled-in provider: 'starts' if a session really runs on it, else why not."""
    import numpy as np
    import onnxruntime as ort

    from edge.session import quiet_ort

    blob = _tiny_model()
    result = {}
    so = ort.SessionOptions()
    so.log_severity_level = 4
    for name in ort.get_available_providers():
        try:
            with quiet_ort():
                s = ort.InferenceSession(blob, sess_options=so, providers=[name])
            s.run(None, {"x": np.zeros((1, 4), np.float32)})
            got = s.get_providers()[0]
            result[name] = "starts" if got == name else f"does not start (falls back to {got})"
        except Exception as exc:  # a provider's load failure is information here, not an error
            result[name] = f"does not start ({str(exc).splitlines()[0][:120]})"
    return result


def gpus() -> list[str]:
    """The GPUs `nvidia-smi -L` lists; empty without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def machine_info() -> dict[str, str]:
    """CPU model, core count, GPUs: where the numbers were measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count() or 0),
        "gpus": "; ".join(gpus()) or "none",
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.machine()}",
    }
