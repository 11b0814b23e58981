"""`edge bench`: model latency per provider and precision (and Keras beside ONNX Runtime)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from edge.cli.argtypes import device, imgsz, integer, threads
from edge.errors import ModelError, check_regular
from edge.runtime.session import PROVIDERS

if TYPE_CHECKING:
    from edge.export.benchmark import BenchReport


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="latency p50/p95/p99 and throughput of a model per provider and precision",
        description="Warm up, then time single-frame inference. For an .onnx model: each device whose "
        "provider really starts, and the -fp16/-int8 variants beside it. For a .keras model: Keras "
        "predict, a compiled call, and ONNX Runtime on its export.",
    )
    p.add_argument(
        "--model", type=Path, help=".onnx or .keras model (not with --device triton://...)"
    )
    p.add_argument(
        "--device",
        default="all",
        type=device(("all", *PROVIDERS)),
        metavar="DEVICE",
        help=f"providers to time: all (that start; the default), {', '.join(PROVIDERS)}; or "
        "triton://HOST:PORT/MODEL, a model on a Triton Inference Server",
    )
    p.add_argument("--imgsz", type=imgsz, help="input size N or HxW (dynamic models)")
    p.add_argument(
        "--runs", type=integer(1, 1_000_000), default=100, help="timed runs per case (default 100)"
    )
    p.add_argument(
        "--warmup", type=integer(0, 100_000), default=10, help="untimed runs first (default 10)"
    )
    p.add_argument(
        "--threads", type=threads, default=0, help="ONNX Runtime intra-op threads (0: default)"
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="write a bar chart")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from edge.export import benchmark as bench
    from edge.runtime.machine import machine_info

    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {args.warmup}")
    from edge.outputs.files import check_outputs

    check_outputs([("--json", args.json), ("--plot", args.plot)], [args.model])
    for flag, path, ext in (("--json", args.json, None), ("--plot", args.plot, ".png")):
        if path is not None and ext and path.suffix.lower() != ext:
            raise ValueError(f"{flag} {path}: use a {ext} file name")
    if args.device.startswith("triton://"):
        if args.model is not None:
            raise ValueError(
                f"--model {args.model}: --device {args.device} times the server's model"
            )
        remote, size = bench.bench_remote(args.device, args.imgsz, args.runs, args.warmup)
        report = bench.BenchReport(args.device, size, machine_info(), remote)
        return _report(report, args)
    if args.model is None:
        raise ValueError("--model is required (or --device triton://HOST:PORT/MODEL)")
    model: Path = args.model
    if not model.exists():
        raise ModelError(f"model {model}: no such file")
    check_regular(model, f"model {model}", ModelError)
    devices = list(PROVIDERS) if args.device == "all" else [args.device]
    results = []
    onnx_path = model
    imgsz = args.imgsz
    if model.suffix == ".keras":
        keras_results, onnx_path, imgsz = bench.bench_keras(
            model, args.imgsz, args.runs, args.warmup
        )
        results += keras_results
    elif model.suffix != ".onnx":
        raise ModelError(f"model {model}: expected an .onnx or .keras file")
    ort_results, size = bench.bench_onnx(
        onnx_path, devices, imgsz, args.runs, args.warmup, args.threads
    )
    report = bench.BenchReport(
        model=model.name, imgsz=size, machine=machine_info(), results=ort_results + results
    )
    return _report(report, args)


def _report(report: BenchReport, args: argparse.Namespace) -> int:
    from edge.export import benchmark as bench

    print(bench.format_table(report))
    if args.json:
        bench.write_json(report, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        bench.plot(report, args.plot)
        print(f"wrote {args.plot}")
    return 0
