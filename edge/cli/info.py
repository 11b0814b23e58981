"""`edge info`: versions, ONNX Runtime providers (compiled in, and those that actually start), GPUs."""

from __future__ import annotations

import argparse
import platform

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


def main(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np
    import onnxruntime as ort

    from edge import __version__
    from edge.runtime.machine import gpus

    print(f"edge {__version__}")
    print(
        f"python {platform.python_version()} on {platform.system()} {platform.machine()} ({platform.processor() or 'cpu'})"
    )
    print(
        f"numpy {np.__version__}, opencv {cv2.__version__}, onnxruntime {ort.__version__} ({ort.get_device()})"
    )
    from edge.runtime.providers import PACKAGE, jetson, probe

    print(
        "execution providers (compiled into this build / a session really starts on it / why not):"
    )
    for name in PACKAGE:
        print(f"  {name:<28} {probe(name).describe()}")
    board = jetson()
    if board is not None:
        print(f"Jetson: {board.model} ({board.release})")
        for item in board.missing:
            print(f"  missing: {item}")
        if not board.missing:
            print("  CUDA provider and OpenCV with GStreamer present")
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
