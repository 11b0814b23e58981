"""The plain-text summary `edge export` prints: one row per written file, Keras as the reference."""

from __future__ import annotations

import math
from typing import Any

from edge.export.exporter import ExportResult, VariantReport
from edge.runtime.contract import RTDETR

HEADER = (
    "precision",
    "file",
    "size",
    "CPU ms",
    "paired",
    "Δbox px max/mean",
    "Δscore max/mean",
    "limit (box px / score)",
    "mAP50-95",
    "mAP50",
)
MAP = 8  # the column of mAP50-95


def _outputs(result: ExportResult) -> str:
    n, nc = result.anchors, result.contract.num_classes
    if result.contract.output_format == RTDETR:
        return f"output0 [K={n}, 4 + {nc}] (RT-DETR: cx cy w h in 0..1, scores; no NMS)"
    return f"boxes [N={n}, 4] xyxy px and scores [N, {nc}]"


def format_report(result: ExportResult) -> str:
    c = result.contract
    shape = ", ".join(str(d) for d in result.input_shape)
    if result.input == "uint8":
        given = f"uint8 NHWC BGR (cast and {c.color} {c.layout} 0..255 inside the graph)"
    else:
        given = f"float32 {c.layout} {c.color} 0..255"
    lines = [
        f"{result.source.name}: {result.converter}, opset {result.opset}; input images "
        f"[{shape}] {given}; outputs {_outputs(result)}; classes {', '.join(c.names)}",
        f"verified against Keras on {result.images}, letterboxed as `edge run` does"
        if result.verified
        else f"NOT verified (--no-verify); measured on {result.images}",
        "",
    ]
    rows = [HEADER]
    if result.keras_metrics is not None:
        rows.append(("keras", result.source.name, *[""] * 6, *_maps(result.keras_metrics)))
    rows += [_row(v, c.imgsz) for v in result.variants]
    if not any(r[MAP] for r in rows[1:]):  # no dataset, no mAP columns
        rows = [r[:MAP] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += [_join(r, widths) for r in rows]
    lines.append("")
    if result.verified:
        lines.append(
            "paired: the detections `edge run` keeps (score >= 0.25, NMS) from Keras and from the "
            "file, paired by class and IoU >= 0.5; Δ over the pairs. fp32 must also match Keras "
            "on every output row (limit: rows max), fp16 and int8 on the rows' mean."
        )
    lines.append("CPU ms: ONNX Runtime CPUExecutionProvider, batch 1, median after warm-up.")
    if any(v.precision == "fp16" for v in result.variants):
        lines.append(
            "fp16 targets GPUs (CUDA/TensorRT); on a CPU its speed depends on fp16 kernels."
        )
    if result.trt:
        lines.append(f"TensorRT: {result.trt}")
    written = ", ".join(str(v.path) for v in result.variants)
    lines.append(f"wrote {written} in {result.seconds:.1f} s")
    return "\n".join(lines)


def _join(cells: tuple[str, ...], widths: list[int]) -> str:
    """Names left-aligned, numbers right-aligned."""
    pairs = enumerate(zip(cells, widths, strict=True))
    padded = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs]
    return "  ".join(padded).rstrip()


def _row(v: VariantReport, imgsz: tuple[int, int]) -> tuple[str, ...]:
    k, t = (v.parity.kept if v.parity else None), v.tolerance
    if t.agree is None:
        limit = f"rows {t.statistic} {t.box_pixels(imgsz):.2g} / {t.scores:g}"
    else:
        limit = (
            f"{t.kept_statistic} {t.box_pixels(imgsz):.2g} / {t.paired_scores:g}, "
            f">= {t.agree:.0%} paired"
        )
    return (
        v.precision,
        v.path.name,
        _size(v.size_bytes),
        "-" if v.latency_ms is None else f"{v.latency_ms:.3g}",
        "-" if k is None else f"{k.paired}/{k.seen}",
        "-" if k is None else f"{k.max_box:.2g}/{k.mean_box:.2g}",
        "-" if k is None else f"{k.max_score:.2g}/{k.mean_score:.2g}",
        limit,
        *_maps(v.metrics),
    )


def _maps(metrics: Any) -> tuple[str, str]:
    if metrics is None:
        return ("", "")
    a, b = (f"{m:.4f}" if math.isfinite(m) else "-" for m in (metrics.map50_95, metrics.map50))
    return (a, b)


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"
