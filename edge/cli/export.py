"""`edge export`: a trained .keras detector -> ONNX (fp32, fp16, int8), verified against Keras."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from edge.cli.argtypes import imgsz, integer, positive_int, seed

if TYPE_CHECKING:
    from edge.export import ExportOptions, ExportResult
    from edge.export.triton_repo import TritonOptions
    from edge.outputs.group import OutputGroup

log = logging.getLogger("edge")


def _precisions(text: str) -> tuple[str, ...]:
    from edge.export.export_options import PRECISIONS

    values = tuple(p.strip().lower() for p in text.split(",") if p.strip())
    bad = [p for p in values if p not in PRECISIONS]
    if not values or bad:
        raise argparse.ArgumentTypeError(
            f"expected one or more of {', '.join(PRECISIONS)} (comma-separated), got {text!r}"
        )
    return values


def add_parser(sub: argparse._SubParsersAction) -> None:
    from edge.export.export_options import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET

    p = sub.add_parser(
        "export",
        help="convert a trained .keras detector to ONNX (fp32, fp16, int8), verified",
        description="Convert a trained edge detector to ONNX with tf2onnx, its contract (classes, "
        "input size, normalisation, output format) in the file's metadata. Keras and ONNX Runtime "
        "run the same letterboxed images and must agree (fp32: 1e-4 of the input size on boxes, "
        "1e-4 on scores), else nothing is written. Prints each file's size, CPU latency and, "
        "with a dataset, mAP. --triton REPO also writes a Triton Inference Server model "
        "repository (from a .keras or an existing .onnx detector). --preset exports a KerasHub "
        "object detector (RetinaNet, D-FINE) as it is.",
    )
    p.add_argument(
        "model",
        type=Path,
        nargs="?",
        metavar="MODEL.keras",
        help="trained detector (or, with --triton only, an exported MODEL.onnx)",
    )
    p.add_argument(
        "--preset",
        metavar="PRESET",
        help="instead of MODEL: a KerasHub object-detector preset (RetinaNet, D-FINE), a local "
        "preset folder (model.save_to_preset) or a preset name such as dfine_nano_coco "
        "(downloaded once to the Keras cache); needs -o",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="OUT.onnx",
        help="output file (default: MODEL.onnx beside the model)",
    )
    p.add_argument("--imgsz", type=imgsz, help="input size N or HxW (default: the model's own)")
    p.add_argument(
        "--batch",
        choices=("1", "dynamic"),
        help="batch dimension (default 1; dynamic with --triton, so the server can batch)",
    )
    p.add_argument(
        "--opset",
        type=int,
        help=f"ONNX opset, {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET}; 18 for D-FINE presets)",
    )
    p.add_argument(
        "--precision",
        type=_precisions,
        default=("fp32",),
        metavar="P[,P...]",
        help="fp32, fp16 (for GPUs), int8 (static QDQ); several, comma-separated: the first goes "
        "to OUT.onnx, the others to OUT_<precision>.onnx",
    )
    p.add_argument(
        "--input",
        choices=("uint8", "float32"),
        default="uint8",
        help="uint8 (default): the graph takes the letterboxed uint8 BGR image and casts, "
        "normalises and lays it out inside (4x fewer bytes to the device, no float work on the "
        "host); float32: the host normalises (older edge versions read only this)",
    )
    data = p.add_argument_group("verification and calibration")
    data.add_argument(
        "--calib-data",
        type=Path,
        metavar="DATA",
        help="dataset (YOLO, COCO, VOC: also gives mAP) or image folder; default synthetic frames",
    )
    data.add_argument(
        "--calib-images",
        type=positive_int,
        default=32,
        metavar="N",
        help="images for parity and int8 calibration (default 32)",
    )
    data.add_argument(
        "--eval-images", type=positive_int, metavar="N", help="mAP on at most N val images"
    )
    data.add_argument("--no-verify", action="store_true", help="skip the Keras comparison")
    data.add_argument(
        "--runs",
        type=integer(1, 100_000),
        default=30,
        help="timed runs per file (median; default 30)",
    )
    data.add_argument("--seed", type=seed, default=0, help="synthetic frames seed")
    gpu = p.add_argument_group("TensorRT")
    gpu.add_argument(
        "--trt-cache", type=Path, metavar="DIR", help="pre-build TensorRT engines here"
    )
    gpu.add_argument(
        "--no-trt-fp16", action="store_true", help="build fp32 engines (match edge run's flag)"
    )
    gpu.add_argument(
        "--strict", action="store_true", help="fail when TensorRT is not available for --trt-cache"
    )
    tri = p.add_argument_group("Triton Inference Server (model repository)")
    tri.add_argument(
        "--triton",
        type=Path,
        metavar="REPO",
        help="write REPO/NAME/config.pbtxt and REPO/NAME/1/model.onnx for Triton (ONNX Runtime "
        "backend, TensorRT fp16 on GPUs); edge run --device triton://HOST:PORT/NAME uses it",
    )
    tri.add_argument("--triton-name", metavar="NAME", help="model name (default: the file's stem)")
    tri.add_argument(
        "--triton-max-batch",
        type=integer(1, 64),
        default=8,
        metavar="N",
        help="largest batch the server's dynamic batcher forms (default 8)",
    )
    tri.add_argument(
        "--triton-delay-us",
        type=integer(0, 1_000_000),
        default=2000,
        metavar="US",
        help="longest a request waits for others to share its batch (default 2000)",
    )
    tri.add_argument(
        "--triton-instances",
        type=integer(1, 64),
        default=1,
        metavar="N",
        help="model instances (per GPU on a GPU server; default 1)",
    )
    tri.add_argument(
        "--triton-kind",
        choices=("auto", "gpu", "cpu"),
        default="auto",
        help="where the instances run: auto (GPUs when the server has any), gpu, cpu",
    )
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from edge.outputs.files import check_folder
    from edge.outputs.group import OutputGroup

    triton = _triton_options(args)
    if (args.model is None) == (args.preset is None):
        raise ValueError("export takes MODEL.keras or --preset PRESET (one of them)")
    if args.preset is not None and args.output is None and triton is None:
        raise ValueError(f"--preset {args.preset}: name the file to write with -o OUT.onnx")
    if (
        args.model is not None and args.model.suffix.lower() == ".onnx"
    ):  # an exported model: only the repository to write
        if triton is None:
            raise ValueError(
                f"{args.model}: already ONNX; give a .keras model to convert, or --triton REPO "
                "to put this one in a Triton model repository"
            )
        _write_repository(args.model, args.triton, triton)
        return 0
    if triton is not None:
        check_folder("--triton", args.triton)
    _quiet_tensorflow(verbose=getattr(args, "verbose", False))
    from edge.export import ExportOptions, format_report, output_paths

    options = ExportOptions(
        imgsz=args.imgsz,
        batch=args.batch or ("dynamic" if triton is not None else "1"),
        opset=args.opset,
        precisions=args.precision,
        calib_data=args.calib_data,
        calib_images=args.calib_images,
        eval_images=args.eval_images,
        verify=not args.no_verify,
        latency_runs=args.runs,
        trt_cache=args.trt_cache,
        trt_fp16=not args.no_trt_fp16,
        strict=args.strict,
        seed=args.seed,
        input=args.input,
    )
    if triton is not None and args.output is None:  # the ONNX file goes into the repository only
        with tempfile.TemporaryDirectory(prefix=".edge-export-", dir=args.triton.parent) as tmp:
            stem = args.model.stem if args.model is not None else Path(args.preset).name
            output = Path(tmp) / f"{stem}.onnx"
            report = format_report(_export(args, output, options))
            folder = _write_repository(output, args.triton, triton)
            print(report.replace(str(output), str(folder / "1" / "model.onnx")))
        return 0
    output = args.output or args.model.with_suffix(".onnx")
    preset = Path(args.preset) if args.preset is not None and Path(args.preset).exists() else None
    variants = [("--output", p) for p in output_paths(output, options.precisions)]
    # The variants (and the Triton model folder beside them) appear together, or none does.
    inputs = [args.model or preset, args.calib_data]
    with OutputGroup(variants, inputs, parents=("--output",)) as group:
        result = _export(args, output, options, group)
        if triton is not None:
            from edge.export.triton_repo import describe, write_repository

            named = dataclasses.replace(triton, name=triton.name or output.stem)
            folder, config = write_repository(group.temporary(output), args.triton, named, group)
        group.commit()
    print(format_report(result))
    if triton is not None:
        print(f"wrote {folder}: {describe(config)}")
    return 0


def _export(
    args: argparse.Namespace, output: Path, options: ExportOptions, group: OutputGroup | None = None
) -> ExportResult:
    from edge.export import export_model, export_preset

    if args.preset is not None:
        return export_preset(args.preset, output, options, group)
    return export_model(args.model, output, options, group)


def _triton_options(args: argparse.Namespace) -> TritonOptions | None:
    """The repository's options, checked before any conversion; None without --triton."""
    if args.triton is None:
        return None
    from edge.export.triton_repo import TritonOptions

    return TritonOptions(
        name=args.triton_name,
        max_batch=args.triton_max_batch,
        delay_us=args.triton_delay_us,
        instances=args.triton_instances,
        kind=args.triton_kind,
        trt_fp16=not args.no_trt_fp16,
    )


def _write_repository(model: Path, repo: Path, options: TritonOptions) -> Path:
    from edge.export.triton_repo import describe, write_repository

    folder, config = write_repository(model, repo, options)
    print(f"wrote {folder}: {describe(config)}")
    return folder


def _quiet_tensorflow(verbose: bool) -> None:
    """Export converts through TensorFlow: select that Keras backend (a .keras file loads on any)
    and keep TensorFlow's and tf2onnx's start-up chatter out of the report unless -v."""
    if "keras" not in sys.modules:
        previous = os.environ.get("KERAS_BACKEND")
        if previous and previous != "tensorflow":
            log.info("KERAS_BACKEND=%s: export uses tensorflow", previous)
        os.environ["KERAS_BACKEND"] = "tensorflow"
    if not verbose:
        # tf2onnx logs a traceback when one of its optimisers fails on a graph (its transpose
        # optimiser does on MobileNetV3's hard-swish) at ERROR; the conversion goes on and parity
        # checks it. (Everything else is quiet already: edge.cli.quiet.)
        logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)
