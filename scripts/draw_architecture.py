"""Draw docs/architecture.png: edge's layers, and one frame's path from source to sink.

    python scripts/draw_architecture.py [--out docs/architecture.png]

Paths are under edge/ (README "How it fits together" has the same in text); the layers are those
of tests/test_layering.py, which also checks that every path drawn here exists.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
W, H = 16.0, 15.1  # drawing units; the figure is W x H inches at 100 dpi

BUILD = "#fde9d9"  # training side (TensorFlow / Keras)
RUNTIME = "#dcebf7"  # runtime (numpy, OpenCV, ONNX Runtime)
CLI = "#e8e8e8"
CHIP = "white"
THREADS = ("#eef5e9", "#fff6db", "#f3e8f7")

# (band label, colour, rows of (path under edge/, what it is)); tests/test_layering.py checks that
# every path named here exists, so the picture cannot name a module the tree lost.
LAYERS = [
    (
        "9  cli",
        CLI,
        [
            [
                (
                    "cli/",
                    "run · train · eval · export · data · bench · info · telemetry:"
                    " argv -> options, an error -> one line and exit 2; nothing imports it",
                ),
            ]
        ],
    ),
    (
        "8  training,\n    export",
        BUILD,
        [
            [
                ("training/", "fit.py: fit, resume, checkpoints"),
                ("export/", "Keras -> ONNX, verify, benchmark"),
            ]
        ],
    ),
    ("7  evaluation", BUILD, [[("evaluation/", "COCO mAP of .onnx or .keras, plots")]]),
    (
        "6  data, model",
        BUILD,
        [
            [
                ("data/", "YOLO · COCO · VOC, batches.py"),
                ("model/", "keras_detector.py, backbones.py"),
            ]
        ],
    ),
    (
        "5  api",
        RUNTIME,
        [[("api/detector.py", "edge.Detector"), ("api/streaming.py", "edge.stream")]],
    ),
    ("4  analytics", RUNTIME, [[("analytics/", "lines, zones, counts, events")]]),
    (
        "3  outputs",
        RUNTIME,
        [
            [
                ("outputs/sinks.py", "window, video, JSONL"),
                ("outputs/telemetry_file.py", "stage times"),
                ("outputs/trace.py", "Chrome trace"),
                ("outputs/serve.py", "live page"),
                ("outputs/files.py", "safe file writes"),
            ]
        ],
    ),
    (
        "2  runtime",
        RUNTIME,
        [
            [
                ("runtime/loop.py", "one loop, N streams"),
                ("runtime/feed.py", "frames in"),
                ("runtime/stream_state.py", "per-stream state"),
                ("runtime/observe.py", "FrameResult, Observer"),
                ("runtime/timing.py", "stages, FrameTiming"),
                ("runtime/stats.py", "FPS, summary"),
            ],
            [
                ("runtime/session.py", "ONNX Runtime"),
                ("runtime/contract.py", "model metadata"),
                ("runtime/gate.py", "refuse at load"),
                ("runtime/preprocess.py", "letterbox"),
                ("runtime/postprocess.py", "decode, NMS"),
                ("runtime/tracking.py", "track ids"),
            ],
        ],
    ),
    (
        "1  sources",
        RUNTIME,
        [
            [
                ("sources/", "camera, file, URL, images"),
                ("sources/synthetic.py", "scene with truth"),
                ("sources/labels.py", "YOLO label lines"),
            ]
        ],
    ),
    (
        "0  vocabulary",
        RUNTIME,
        [[("types.py", "Frame, Detections"), ("errors.py", "EdgeError family")]],
    ),
]


def chip(ax, x: float, y: float, w: float, h: float, name: str, what: str, colour=CHIP) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            fc=colour,
            ec="#555555",
            lw=0.8,
        )
    )
    ax.text(
        x + w / 2,
        y + h * 0.64,
        name,
        ha="center",
        va="center",
        fontsize=9.5 if len(name) > 20 else 10.5,
        weight="bold",
        family="monospace",
    )
    ax.text(x + w / 2, y + h * 0.26, what, ha="center", va="center", fontsize=8.5, color="#333333")


def arrow(ax, start: tuple[float, float], end: tuple[float, float], **style) -> None:
    style = {"arrowstyle": "-|>", "mutation_scale": 13, "lw": 1.3, "color": "#333333", **style}
    ax.add_patch(FancyArrowPatch(start, end, **style))


def draw_layers(ax, top: float) -> float:
    """The layers, top (CLI) to bottom (runtime); returns the y where they end."""
    ax.text(
        0.2,
        top,
        "Layers: each imports only the ones below it (tests/test_layering.py); blue ones never import TensorFlow/Keras",
        fontsize=13,
        weight="bold",
        va="bottom",
    )
    y = top - 0.15
    left, label_w, right = 0.2, 1.75, W - 0.2
    row_h, gap = 0.62, 0.1
    for label, colour, rows in LAYERS:
        band_h = len(rows) * (row_h + gap) + gap
        y -= band_h
        ax.add_patch(
            FancyBboxPatch(
                (left, y),
                right - left,
                band_h,
                boxstyle="round,pad=0,rounding_size=0.12",
                fc=colour,
                ec="#888888",
                lw=1,
            )
        )
        ax.text(
            left + 0.12,
            y + band_h / 2,
            label,
            fontsize=10,
            va="center",
            weight="bold",
            color="#333333",
        )
        for i, row in enumerate(rows):
            ry = y + band_h - gap - (i + 1) * (row_h + gap) + gap
            x0 = left + label_w
            avail = right - 0.12 - x0
            width = (avail - (len(row) - 1) * 0.12) / len(row) if len(row) > 1 else avail
            if len(row) < 3 and "cli" not in label:
                width = (avail - 2 * 0.12) / 3
            for j, (name, what) in enumerate(row):
                chip(ax, x0 + j * (width + 0.12), ry, width, row_h, name, what)
        y -= 0.08
    return y


def draw_frame_path(ax, top: float) -> None:
    ax.text(
        0.2,
        top,
        "One frame's path (edge run, edge.stream): runtime/loop.py overlaps three threads",
        fontsize=13,
        weight="bold",
        va="bottom",
    )
    lane_top, lane_h = top - 0.2, 2.6
    lanes = [
        (0.2, 4.3, "reader thread per stream (runtime/feed.py)"),
        (4.5, 6.5, "inference"),
        (6.7, W - 0.2, "finishing thread"),
    ]
    for (x0, x1, name), colour in zip(lanes, THREADS, strict=True):
        ax.add_patch(
            FancyBboxPatch(
                (x0, lane_top - lane_h),
                x1 - x0,
                lane_h,
                boxstyle="round,pad=0,rounding_size=0.12",
                fc=colour,
                ec="#aaaaaa",
                lw=0.8,
            )
        )
        ax.text(
            x0 + 0.1, lane_top - 0.08, name, fontsize=9, va="top", style="italic", color="#555555"
        )
    h = 1.0
    y = lane_top - lane_h / 2 - h / 2 - 0.1
    steps = [
        (0.4, 1.55, "sources/", "camera, file, URL,\nimages; newest frame"),
        (2.45, 1.6, "preprocess.py", "runtime/: letterbox\n(Letterbox kept)"),
        (4.72, 1.56, "session.py", "runtime/: ONNX\nRuntime, contract"),
        (6.85, 1.45, "postprocess.py", "runtime/: decode,\nNMS, unletterbox"),
        (9.05, 1.15, "tracking.py", "runtime/:\ntrack ids"),
        (10.55, 1.2, "analytics/", "zones, lines,\nevents"),
        (12.1, 1.15, "annotate.py", "runtime/:\nboxes, overlay"),
    ]
    labels = ["Frame", "tensor", "outputs", "Detections", "", ""]
    for x, w, name, what in steps:
        chip(ax, x, y, w, h, name, what)
    for (x, w, *_), (nx, *_), label in zip(steps[:-1], steps[1:], labels, strict=True):
        arrow(ax, (x + w + 0.02, y + h / 2), (nx - 0.02, y + h / 2))
        ax.text(
            (x + w + nx) / 2,
            y + h / 2 + 0.08,
            label,
            ha="center",
            va="bottom",
            fontsize=8,
            style="italic",
        )
    # observers: one protocol; each receives every finished frame
    obs = [
        ("sinks.py", "window, video, JSONL"),
        ("telemetry_file.py", "CSV/JSONL"),
        ("trace.py", "Chrome trace"),
        ("serve.py", "live page, /metrics"),
    ]
    ox, ow, oh = 13.9, 1.8, 0.5
    oy = lane_top - 0.36
    ax.text(
        ox + ow / 2,
        oy + 0.04,
        "observers (outputs/)",
        ha="center",
        va="bottom",
        fontsize=8.5,
        weight="bold",
    )
    last_x, last_w = steps[-1][0], steps[-1][1]
    for i, (name, what) in enumerate(obs):
        by = oy - (i + 1) * (oh + 0.05)
        chip(ax, ox, by, ow, oh, name, what)
        arrow(
            ax,
            (last_x + last_w + 0.02, y + h / 2),
            (ox - 0.02, by + oh / 2),
            lw=0.9,
            mutation_scale=10,
        )
    notes = [
        "Processors (analytics/) run after tracking and before drawing: they may attach events and"
        " overlay. Every observer receives each finished frame, a FrameResult (runtime/observe.py)"
        " with its runtime/timing.py marks, through one method.",
        "Live sources keep only the newest frame; files are read ahead. Where threads would not pay,"
        " runtime/loop.py reads inline just before inference. Files go through outputs/files.py.",
    ]
    for i, note in enumerate(notes):
        ax.text(
            0.2, lane_top - lane_h - 0.12 - i * 0.3, note, fontsize=9, va="top", color="#333333"
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "docs" / "architecture.png")
    args = p.parse_args()
    fig = plt.figure(figsize=(W, H), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, W)
    ax.set_ylim(0, H)
    ax.axis("off")
    bottom = draw_layers(ax, H - 0.45)
    draw_frame_path(ax, bottom - 0.45)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.stem}.partial.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
