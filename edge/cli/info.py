"""`edge info`: versions, ONNX Runtime providers (compiled in, and those that actually start), GPUs."""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess

from edge.cli.argtypes import integer


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info", help="versions, execution providers that really start, GPUs and cameras"
    )
    p.add_argument(
        "--cameras",
        type=integer(0, 64),
        default=0,
        metavar="N",
        help="also probe camera indices 0..N-1",
    )
    p.set_defaults(handler=main)


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
    """For each compiled-in provider: 'ok' if a session really runs on it, else why not."""
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
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def main(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np
    import onnxruntime as ort

    from edge import __version__

    print(f"edge {__version__}")
    print(
        f"python {platform.python_version()} on {platform.system()} {platform.machine()} ({platform.processor() or 'cpu'})"
    )
    print(
        f"numpy {np.__version__}, opencv {cv2.__version__}, onnxruntime {ort.__version__} ({ort.get_device()})"
    )
    print("execution providers (compiled in -> does a session really run on it?):")
    for name, state in provider_check().items():
        print(f"  {name:<28} {state}")
    found = gpus()
    print(
        "GPUs: " + ("; ".join(found) if found else "none visible (nvidia-smi absent or lists none)")
    )
    if args.cameras:
        for i in range(args.cameras):
            cap = cv2.VideoCapture(i)
            ok = cap.isOpened() and cap.read()[0]
            print(f"camera {i}: {'ok' if ok else 'not available'}")
            cap.release()
    return 0
