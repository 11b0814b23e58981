"""`edge eval`: COCO mAP50-95, mAP50 and per-class AP of a .onnx or .keras model on a dataset."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from edge.cli.argtypes import device, fraction, imgsz, integer, overlap, whole
from edge.errors import DataError
from edge.runtime.session import DEVICES

log = logging.getLogger("edge")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="measure a model's COCO mAP on a dataset",
        description=(
            "Run a .onnx or .keras detector over a dataset split and report COCO mAP50-95, mAP50 "
            "and AP per class (pycocotools). Use a low --conf, as mAP needs the whole PR curve."
        ),
    )
    p.add_argument(
        "--model", help="the model: .onnx (exported) or .keras (not with --device triton://...)"
    )
    p.add_argument("--data", required=True, help="dataset folder or file (YOLO, COCO or VOC)")
    p.add_argument("--split", choices=("val", "train"), default="val", help="default: val")
    p.add_argument("--conf", type=fraction, default=0.001, help="score threshold (default 0.001)")
    p.add_argument("--iou", type=overlap, default=0.6, help="NMS IoU threshold (default 0.6)")
    p.add_argument(
        "--max-images",
        type=whole(1),
        default=None,
        metavar="N",
        help="evaluate only the first N images of the split",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="write the metrics as JSON")
    p.add_argument(
        "--plots", type=Path, metavar="DIR", help="write PR curves and a predictions grid"
    )
    p.add_argument(
        "--plot-images",
        type=integer(0, 1000),
        default=8,
        metavar="N",
        help="images in the predictions grid (default 8)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        type=device(DEVICES),
        metavar="DEVICE",
        help=f"ONNX Runtime device: {', '.join(DEVICES)} (default cpu); or "
        "triton://HOST:PORT/MODEL, the model on a Triton Inference Server",
    )
    p.add_argument(
        "--imgsz", type=imgsz, default=None, help="N or HxW, for models with a dynamic input"
    )
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from edge import evaluation
    from edge.data import load_dataset
    from edge.outputs.files import check_folder
    from edge.outputs.group import OutputGroup

    remote = args.device.startswith("triton://")
    if remote and args.model:
        raise ValueError(f"--model {args.model}: --device {args.device} runs the server's model")
    if not remote and not args.model:
        raise ValueError("--model is required (or --device triton://HOST:PORT/MODEL)")
    if not remote:
        evaluation.check_model_path(args.model)  # before the dataset is read: fail fast
    # Metrics and plots are one output: checked now, they appear together at the end or not at all.
    group = OutputGroup([("--json", args.json)], [args.model, args.data])
    if args.plots is not None:
        check_folder("--plots", args.plots)
    dataset = load_dataset(args.data)
    samples = dataset.val if args.split == "val" else dataset.train
    samples = samples[: args.max_images] if args.max_images else samples
    if not samples:
        raise DataError(f"{args.data}: the {args.split} split has no images")
    what = args.model or args.device
    log.info("evaluating %s on %d %s images of %s", what, len(samples), args.split, args.data)
    with evaluation.open_predictor(
        args.model,
        dataset.names,
        conf=args.conf,
        iou=args.iou,
        device=args.device,
        imgsz=args.imgsz,
    ) as predict:
        start = time.perf_counter()  # after loading: the per-image cost, not the start-up
        predictions = evaluation.predict_samples(predict, _bar(samples))
    seconds = time.perf_counter() - start
    result = evaluation.coco_metrics(predictions, samples, dataset.names)
    print(evaluation.format_table(result))
    log.info("%.1f ms per image (reading, inference, NMS)", 1000 * seconds / len(samples))
    with group:
        if args.json:
            settings = {"model": str(what), "data": str(args.data), "split": args.split}
            settings.update({"conf": args.conf, "iou": args.iou})
            evaluation.write_json(result, args.json, group.write_atomic, **settings)
        plots: list = []
        if args.plots:
            from edge.evaluation.plots import save_eval_plots

            plots = save_eval_plots(
                result,
                samples,
                predictions,
                args.plots,
                args.plot_images,
                writer=group.write_atomic,
            )
        group.commit()
    if args.json:
        log.info("metrics written to %s", args.json)
    if args.plots:
        log.info("%d plots written to %s", len(plots), args.plots)
    return 0


def _bar(samples: list) -> Any:
    """The samples behind a tqdm bar on a terminal (tqdm comes with the train extra)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return samples
    return tqdm(samples, desc="eval", unit="img", leave=False, disable=not sys.stderr.isatty())
