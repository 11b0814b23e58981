"""`edge info`: versions, ONNX Runtime providers (compiled in, and those that actually start), GPUs."""

from __future__ import annotations

import argparse
import platform

from edge.cli.argtypes import device, integer


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
    p.add_argument(
        "--device",
        type=device(()),
        metavar="triton://HOST:PORT/MODEL",
        help="also report a Triton Inference Server: its version, the model, its config, readiness",
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
    if args.device:
        print("\n".join(triton_report(args.device)))
    return 0


def triton_report(device: str) -> list[str]:
    """The server at `device` (triton://HOST:PORT/MODEL): version, readiness, the model's config
    (batching, instances, accelerators, the edge contract) and what the repository holds."""
    import json

    from edge.errors import ModelError
    from edge.runtime.remote import CONTRACT_KEY
    from edge.runtime.remote_address import TritonAddress

    try:
        import tritonclient.grpc as grpcclient
    except ImportError:
        raise ModelError(
            "--device triton://...: needs tritonclient: pip install 'edge[triton]'"
        ) from None
    a = TritonAddress.parse(device)
    client = grpcclient.InferenceServerClient(a.url)
    try:
        server = client.get_server_metadata(as_json=True, client_timeout=5.0)
    except Exception as exc:
        raise ModelError(
            f"--device {device}: no Triton server answers at {a.url} ({str(exc).strip()[:200]})"
        ) from None
    lines = [
        f"Triton server {a.url}: {server.get('name', '?')} {server.get('version', '?')}, "
        f"live {client.is_server_live()}, ready {client.is_server_ready()}",
        f"  extensions: {', '.join(server.get('extensions', []))}",
    ]
    index = client.get_model_repository_index(as_json=True).get("models", [])
    lines.append("  repository: " + (", ".join(
        f"{m['name']} v{m.get('version', '?')} {m.get('state', '?')}" for m in index
    ) or "empty"))  # fmt: skip
    ready = client.is_model_ready(a.model, a.version)
    lines.append(f"model {a.model}: ready {ready}")
    if not ready:
        return lines
    meta = client.get_model_metadata(a.model, a.version, as_json=True)
    cfg = client.get_model_config(a.model, a.version, as_json=True)["config"]
    for kind in ("inputs", "outputs"):
        for t in meta.get(kind, []):
            lines.append(
                f"  {kind[:-1]} {t['name']} {t['datatype']} {[int(d) for d in t['shape']]}"
            )
    lines.append(
        f"  backend {cfg.get('backend') or cfg.get('platform')}, max_batch_size {cfg.get('max_batch_size', 0)}"
    )
    batching = cfg.get("dynamic_batching")
    if batching is not None:
        lines.append(
            f"  dynamic batching: preferred {batching.get('preferred_batch_size', [])}, queue delay "
            f"{batching.get('max_queue_delay_microseconds', 0)} us"
        )
    for g in cfg.get("instance_group", []):
        lines.append(f"  instances: {g.get('count', 1)} x {g.get('kind', 'KIND_AUTO')}")
    accel = cfg.get("optimization", {}).get("execution_accelerators", {})
    for acc in accel.get("gpu_execution_accelerator", []):
        lines.append(f"  GPU accelerator {acc.get('name')}: {acc.get('parameters', {})}")
    contract = cfg.get("parameters", {}).get(CONTRACT_KEY, {}).get("string_value")
    if contract:
        meta_map = json.loads(contract)
        lines.append(
            f"  edge contract: classes {meta_map.get('names')}, input {meta_map.get('imgsz')} {meta_map.get('layout')} {meta_map.get('input_dtype', 'float32')}"
        )
    else:
        lines.append(
            f"  edge contract: none (no {CONTRACT_KEY!r} parameter; export with edge export --triton)"
        )
    client.close()
    return lines
