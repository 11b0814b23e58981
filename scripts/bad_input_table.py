"""Run every bad input we know of through the `edge` CLI and write the table in docs/bad-input.md.

    python scripts/bad_input_table.py            # regenerate docs/bad-input.md
    python scripts/bad_input_table.py --check    # exit 1 if any case is not "exit 2, one line"

Each case runs `python -m edge ...` in a scratch folder holding the bad files (built here: broken
models, videos, image folders and datasets), so the messages name short relative paths and the
table is the same on every machine. tests/test_reliability_bad_input.py runs the same cases.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "bad-input.md"
ENV = {**os.environ, "DISPLAY": "", "WAYLAND_DISPLAY": "", "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class Case:
    group: str
    what: str
    args: tuple[str, ...]  # after `edge`
    code: int = 2  # the exit code: 2 (bad input) unless the command reports problems (1)
    env: tuple[tuple[str, str], ...] = ()  # set for this case on top of ENV


def _case(group: str, what: str, command: str, code: int = 2) -> Case:
    return Case(group, what, tuple(command.split()), code)


def _argv(group: str, what: str, *args: str) -> Case:
    """A case whose arguments hold spaces or are empty (`_case` splits on spaces)."""
    return Case(group, what, args)


M = "--model tiny.onnx"
CASES = (
    _case("model", "missing model file", "run --model missing.onnx"),
    _case("model", "corrupt model (random bytes)", "run --model garbage.onnx"),
    _case("model", "truncated ONNX file", "run --model truncated.onnx"),
    _case("model", "empty model file", "run --model empty.onnx"),
    _case("model", "a folder as the model", "run --model folder"),
    _case("model", "Keras model given to run", "run --model model.keras"),
    _case("model", "PyTorch pickle given to run", "run --model model.pt"),
    _case("model", "ONNX model without detector metadata", "run --model plain.onnx"),
    _case("model", "model no decoder understands (3 names, 2 scores)", "run --model wrong.onnx"),
    _case("model", "hostile metadata (nested 100,000 deep)", "run --model deep.onnx"),
    _case("model", "model with zero std in its contract", "run --model zero-std.onnx"),
    # the model gate (edge/runtime/gate.py): refused at load, before the source opens
    _case("model", "input of type int32", "run --model int32-input.onnx"),
    _case("model", "input with no declared shape", "run --model shapeless.onnx"),
    _case("model", "3-D input", "run --model rank3.onnx"),
    _case("model", "metadata says NCHW for an NHWC input", "run --model nchw-meta.onnx"),
    _case("model", "4-channel input", "run --model four-channels.onnx"),
    _case("model", "uint8 input with scaling metadata", "run --model uint8-scaled.onnx"),
    _case("model", "fixed batch 2 whose outputs have batch 1", "run --model batch2.onnx"),
    _case("model", "model that fails when run", "run --model fails-when-run.onnx"),
    _case("model", "fixed input of 100000x100000", "run --model huge-input.onnx"),
    _case("model", "8 names, outputs for 3 classes", "run --model eight-names.onnx"),
    _case("model", "unknown device", f"run {M} --device gpu"),
    _case("model", "negative thread count", f"run {M} --threads -1"),
    _case("model", "input size a fixed model does not take", f"run {M} --imgsz 32"),
    _case("model", "zero input size", f"run {M} --imgsz 0"),
    _case("source", "camera index that does not exist", f"run {M} --source 77 --reconnect 0"),
    _case("source", "missing video file", f"run {M} --source missing.mp4"),
    _case("source", "corrupt video (random bytes)", f"run {M} --source corrupt.mp4"),
    _case("source", "empty video file", f"run {M} --source empty.mp4"),
    _case("source", "MP4 cut before its index", f"run {M} --source cut.mp4"),
    _case("source", "empty image folder", f"run {M} --source empty-folder"),
    _case("source", "glob matching no image", f"run {M} --source nothing*.jpg"),
    _case("source", "unreadable image", f"run {M} --source broken.jpg"),
    _case(
        "source",
        "stream nobody serves",
        f"run {M} --source http://127.0.0.1:9/stream.mjpg --reconnect 0",
    ),
    _case("source", "empty --source", f"run {M} --source="),
    _case("counts", "zero --max-frames", f"run {M} --max-frames 0"),
    _case("counts", "negative --max-frames", f"run {M} --max-frames -3"),
    _case("counts", "zero --duration", f"run {M} --duration 0"),
    _case("counts", "zero --max-det", f"run {M} --max-det 0"),
    _case("counts", "negative --reconnect", f"run {M} --reconnect -1"),
    _case("counts", "zero camera width", f"run {M} --width 0"),
    _case("counts", "negative camera FPS", f"run {M} --fps -5"),
    _case("counts", "negative image count for synth", "data synth --out synth --images -5"),
    _case("thresholds", "--conf above 1", f"run {M} --conf 2"),
    _case("thresholds", "negative --conf", f"run {M} --conf -0.1"),
    _case("thresholds", "--iou above 1", f"run {M} --iou 1.5"),
    _case("thresholds", "--conf not a number", f"run {M} --conf abc"),
    _case("thresholds", "eval --conf above 1", "eval --model tiny.onnx --data yolo-ok --conf 2"),
    _case("classes", "unknown class name", f"run {M} --classes zebra"),
    _case("classes", "class id the model does not have", f"run {M} --classes 7"),
    _case("outputs", "telemetry with an unknown extension", f"run {M} --telemetry t.txt"),
    _case("outputs", "video into a missing folder", f"run {M} --save nodir/out.mp4"),
    _case("outputs", "video format we do not write", f"run {M} --save out.gif"),
    _case("outputs", "detections into a missing folder", f"run {M} --jsonl nodir/d.jsonl"),
    _case("outputs", "plot of a missing telemetry file", "telemetry plot missing.jsonl"),
    _case("outputs", "plot of a file that is not telemetry", "telemetry plot notes.jsonl"),
    _case("dataset", "missing dataset", "data inspect missing-ds"),
    _case("dataset", "folder of no known format", "data inspect empty-folder"),
    _case("dataset", "empty dataset (no images)", "eval --model tiny.onnx --data yolo-empty"),
    _case("dataset", "images but no boxes", "eval --model tiny.onnx --data yolo-no-boxes"),
    _case("dataset", "malformed YOLO label line", "eval --model tiny.onnx --data yolo-malformed"),
    _case("dataset", "YOLO class id out of range", "eval --model tiny.onnx --data yolo-class"),
    _case("dataset", "VOC object of an unknown class", "eval --model tiny.onnx --data voc-class"),
    _case("dataset", "malformed VOC XML", "eval --model tiny.onnx --data voc-malformed"),
    _case("dataset", "VOC XML with entities (XXE)", "eval --model tiny.onnx --data voc-xxe"),
    _case("dataset", "COCO JSON that is not JSON", "eval --model tiny.onnx --data coco-bad.json"),
    _case("dataset", "COCO image outside the dataset", "eval --model tiny.onnx --data coco-escape"),
    # Issue 10, class 1: no output destroys an input, lands on a folder or a device, or is named twice.
    _case("outputs", "detections over the model", f"run {M} --jsonl tiny.onnx"),
    _case(
        "outputs", "video over its own source clip", f"run {M} --source clip.mp4 --save clip.mp4"
    ),
    _case(
        "outputs", "video over a symlink to the source", f"run {M} --source clip.mp4 --save sym.mp4"
    ),
    _case("outputs", "detections over a hard link to the model", f"run {M} --jsonl hard.jsonl"),
    _case(
        "outputs",
        "telemetry over the --sources list",
        f"run {M} --sources list.txt --telemetry list.txt",
    ),
    _case("outputs", "trace over the model", f"run {M} --trace tiny.onnx"),
    _case(
        "outputs",
        "detections over an image of the source folder",
        f"run {M} --source imgs --jsonl imgs/a.png",
    ),
    _case("outputs", "one file for --save and --jsonl", f"run {M} --save o.mp4 --jsonl o.mp4"),
    _case(
        "outputs",
        "one file for --telemetry and --trace",
        f"run {M} --telemetry t.json --trace t.json",
    ),
    _case(
        "outputs",
        "CSV telemetry whose events file is --jsonl",
        f"run {M} --telemetry t.csv --jsonl t.events.jsonl",
    ),
    _case("outputs", "video into an existing folder", f"run {M} --save folder.mp4"),
    _case("outputs", "detections into an existing folder", f"run {M} --jsonl folder"),
    _case("outputs", "trace into an existing folder", f"run {M} --trace folder.json"),
    _case("outputs", "telemetry into an existing folder", f"run {M} --telemetry folder.csv"),
    _case("outputs", "detections onto a character device", f"run {M} --jsonl chardev"),
    _case("outputs", "video onto a character device", f"run {M} --save chardev.mp4"),
    _case("outputs", "detections onto a FIFO", f"run {M} --jsonl fifo"),
    _case("outputs", "telemetry onto a FIFO", f"run {M} --telemetry fifo.csv"),
    _case("outputs", "video to stdout", f"run {M} --save -"),
    _case("outputs", "trace to stdout", f"run {M} --trace -"),
    _case("outputs", "telemetry to stdout", f"run {M} --telemetry -"),
    _argv("outputs", "empty --jsonl", "run", "--model", "tiny.onnx", "--jsonl="),
    _case("outputs", "output whose folder is a file", f"run {M} --jsonl notes.jsonl/d.jsonl"),
    _case("outputs", "trace into a missing folder", f"run {M} --trace nodir/t.json"),
    _case("outputs", "telemetry into a missing folder", f"run {M} --telemetry nodir/t.csv"),
    _case(
        "outputs",
        "several streams: a video per stream over a source",
        f"run {M} --source clip.0.mp4 --source clip.mp4 --save clip.mp4",
    ),
    _case(
        "outputs",
        "eval metrics over the model",
        "eval --model tiny.onnx --data yolo-ok --json tiny.onnx",
    ),
    _case(
        "outputs",
        "eval metrics over the dataset's data.yaml",
        "eval --model tiny.onnx --data yolo-ok --json yolo-ok/data.yaml",
    ),
    _case(
        "outputs",
        "eval metrics into an existing folder",
        "eval --model tiny.onnx --data yolo-ok --json folder",
    ),
    _case(
        "outputs",
        "eval plots folder that is a file",
        "eval --model tiny.onnx --data yolo-ok --plots notes.jsonl",
    ),
    _case(
        "outputs",
        "eval plots under a file",
        "eval --model tiny.onnx --data yolo-ok --plots notes.jsonl/plots",
    ),
    _case("outputs", "bench JSON over the model", f"bench {M} --json tiny.onnx"),
    _case("outputs", "bench plot into an existing folder", f"bench {M} --plot folder.png"),
    _case("outputs", "bench JSON onto a character device", f"bench {M} --json chardev"),
    _case(
        "outputs", "telemetry plot over its own input", "telemetry plot notes.jsonl -o notes.jsonl"
    ),
    _case(
        "outputs",
        "telemetry plot into an existing folder",
        "telemetry plot notes.jsonl -o folder.png",
    ),
    _case(
        "outputs",
        "inspect report over the dataset's data.yaml",
        "data inspect yolo-ok --json yolo-ok/data.yaml",
    ),
    _case(
        "outputs",
        "inspect report over a label file",
        "data inspect yolo-ok --json yolo-ok/labels/im0.txt",
    ),
    _case("outputs", "inspect report onto a FIFO", "data inspect yolo-ok --json fifo"),
    _case("outputs", "synthetic dataset into a file", "data synth --out notes.jsonl --images 2"),
    _case(
        "outputs", "synthetic dataset under a file", "data synth --out notes.jsonl/ds --images 2"
    ),
    _case(
        "outputs",
        "export over its own Keras model",
        "export model.keras --output model.keras",
    ),
    _case(
        "outputs",
        "training run folder that is a file",
        "train --data yolo-ok --out notes.jsonl --model tiny",
    ),
    _case(
        "outputs",
        "training run folder that is the dataset",
        "train --data yolo-ok --out yolo-ok --model tiny",
    ),
    # Issue 10, class 3: every numeric flag has a range.
    _case("bounds", "huge --imgsz", f"run {M} --imgsz 100000"),
    _case("bounds", "huge --imgsz HxW", f"run {M} --imgsz 64x100000"),
    _case("bounds", "huge camera width", f"run {M} --width 100000"),
    _case("bounds", "huge camera height", f"run {M} --height 100000"),
    _case("bounds", "huge --threads", f"run {M} --threads 100000"),
    _case("bounds", "negative --seed", f"run {M} --seed -1"),
    _case("bounds", "huge --seed", f"run {M} --seed 99999999999"),
    _case("bounds", "huge --fps", f"run {M} --fps 100000"),
    _case("bounds", "infinite --duration", f"run {M} --duration inf"),
    _case("bounds", "NaN --conf", f"run {M} --conf nan"),
    _case("bounds", "huge --max-det", f"run {M} --max-det 100000000"),
    _case("bounds", "huge --reconnect", f"run {M} --reconnect 100000"),
    _case("bounds", "zero --open-timeout", f"run {M} --open-timeout 0"),
    _case("bounds", "negative --read-timeout", f"run {M} --read-timeout -1"),
    _case("bounds", "huge --batch-wait-ms", f"run {M} --batch-wait-ms 1e9"),
    _case("bounds", "a million cameras to probe", "info --cameras 1000000"),
    _case("bounds", "negative cameras to probe", "info --cameras -1"),
    _case("bounds", "synth: ten million images", "data synth --out synth --images 10000000"),
    _case("bounds", "synth: tiny image side", "data synth --out synth --images 2 --imgsz 8"),
    _case("bounds", "synth: negative seed", "data synth --out synth --images 2 --seed -1"),
    _case(
        "bounds",
        "synth: val fraction above 1",
        "data synth --out synth --images 2 --val-fraction 2",
    ),
    _case("bounds", "inspect: negative val fraction", "data inspect yolo-ok --val-fraction -1"),
    _case(
        "bounds",
        "eval: huge predictions grid",
        "eval --model tiny.onnx --data yolo-ok --plot-images 100000",
    ),
    _case("bounds", "eval: huge --imgsz", "eval --model tiny.onnx --data yolo-ok --imgsz 100000"),
    _case(
        "bounds", "eval: zero --max-images", "eval --model tiny.onnx --data yolo-ok --max-images 0"
    ),
    _case("bounds", "bench: zero runs", f"bench {M} --runs 0"),
    _case("bounds", "bench: negative warm-up", f"bench {M} --warmup -1"),
    _case("bounds", "bench: huge --threads", f"bench {M} --threads 100000"),
    _case("bounds", "export: zero timed runs", "export model.keras --runs 0"),
    _case("bounds", "export: negative seed", "export model.keras --seed -1"),
    _case("bounds", "export: huge --imgsz", "export model.keras --imgsz 100000"),
    _case("bounds", "train: zero epochs", "train --data yolo-ok --out run --epochs 0"),
    _case("bounds", "train: zero batch", "train --data yolo-ok --out run --batch 0"),
    _case(
        "bounds",
        "train: input size not a multiple of 32",
        "train --data yolo-ok --out run --imgsz 33",
    ),
    _case("bounds", "train: huge input size", "train --data yolo-ok --out run --imgsz 100000"),
    _case("bounds", "train: zero learning rate", "train --data yolo-ok --out run --lr 0"),
    _case("bounds", "train: negative seed", "train --data yolo-ok --out run --seed -1"),
    _case("bounds", "train: zero workers", "train --data yolo-ok --out run --workers 0"),
    # Issue 10, class 4: sources that would block open with a timeout or are refused.
    _case("source", "FIFO with no writer", f"run {M} --source fifo --open-timeout 0.5"),
    _case("source", "character device that is not a camera", f"run {M} --source chardev"),
    # Issue 10, class 5: an interrupted dataset is a problem, not "problems: none".
    _case(
        "dataset",
        "YOLO folder without its data.yaml (interrupted synth)",
        "data inspect half-synth",
        1,
    ),
    _case(
        "dataset", "synth into a folder that is not empty", "data synth --out yolo-ok --images 2"
    ),
    # Issue 10, messages that name the file or flag, and nonsense refused.
    _case("messages", "non-UTF-8 --sources file", f"run {M} --sources nonutf.txt"),
    _case("messages", "--sources file that does not exist", f"run {M} --sources missing.txt"),
    _case("messages", "--sources file with no sources", f"run {M} --sources comments.txt"),
    _case(
        "messages", "non-UTF-8 train.txt in a dataset", "eval --model tiny.onnx --data yolo-nonutf"
    ),
    _case("messages", "damaged options.json on --resume", "train --out run-damaged --resume"),
    _case(
        "messages",
        "--weights file that does not exist",
        "train --data yolo-ok --out run --weights missing.h5",
    ),
    _case(
        "messages",
        "--weights for the tiny model (no backbone)",
        "train --data yolo-ok --out run --model tiny --weights tiny.onnx",
    ),
    _case("messages", "--classes naming nothing", f"run {M} --classes ,"),
    _argv("messages", "empty --classes", "run", "--model", "tiny.onnx", "--classes="),
    # Issue 21: a model on a Triton Inference Server (--device triton://, export --triton).
    _case("triton", "no server at the address", "run --device triton://127.0.0.1:9/default"),
    _case("triton", "address without a model name", "run --device triton://127.0.0.1:8001"),
    _case("triton", "--model with a server's model", f"run {M} --device triton://127.0.0.1:9/m"),
    _case("triton", "an ONNX model to export without --triton", "export tiny.onnx"),
    _case("triton", "--triton naming a file", "export tiny.onnx --triton tiny.onnx"),
    # Issue 18 (embed): a display that is gone (DISPLAY=:99): a window only if one really opens.
    Case(
        "display",
        "DISPLAY=:99, a display that is gone: runs headless, says so (exit 0)",
        tuple(f"run {M} --source synthetic --max-frames 5".split()),
        0,
        (("DISPLAY", ":99"),),
    ),
    Case(
        "display",
        "DISPLAY=:99, a display that is gone, with --show",
        tuple(f"run {M} --source synthetic --max-frames 5 --show".split()),
        2,
        (("DISPLAY", ":99"),),
    ),
    # Issue 18 (exits): tracebacks left, exit codes, all-or-nothing outputs.
    _case("source", "camera index beyond a C int", f"run {M} --source 99999999999999999999"),
    _case("source", "negative camera index", f"run {M} --source -1"),
    _case("dataset", "YOLO class id beyond int64", "eval --model tiny.onnx --data yolo-int64"),
    _case("dataset", "only labels with a class id nan", "data inspect yolo-nan"),
    _case("dataset", "COCO bbox beyond any float", "eval --model tiny.onnx --data coco-huge"),
    _case("dataset", "VOC image size beyond any image", "eval --model tiny.onnx --data voc-huge"),
    _case("outputs", "plot of a telemetry CSV missing a column", "telemetry plot no-latency.csv"),
    _case("outputs", "plot of an empty telemetry CSV", "telemetry plot empty-tele.csv"),
    _case("outputs", "plot of a binary telemetry file", "telemetry plot binary.jsonl"),
    _case("source", "folder whose images are all unreadable", f"run {M} --source garbage-imgs"),
    _case(
        "dataset",
        "dataset whose images are all unreadable",
        "eval --model tiny.onnx --data yolo-garbage",
    ),
    _case(
        "outputs",
        "export: a later variant's file is a folder",
        "export model.keras --precision fp32,fp16 -o v.onnx",
    ),
    # Issue 18 (inputs): every file read is a regular file of a sane size, checked before reading.
    _case("inputs", "--config naming a FIFO", "run --config fifo.yaml"),
    _case("inputs", "--config naming /dev/zero", "run --config /dev/zero"),
    _case("inputs", "--config of 2 MB", "run --config huge.yaml"),
    _case("inputs", "--config naming a folder", "run --config folder"),
    _case("inputs", "--sources naming a FIFO", f"run {M} --sources fifo"),
    _case("inputs", "--model naming a FIFO", "run --model fifo.onnx"),
    _case("inputs", "--model naming /dev/zero", "run --model /dev/zero"),
    _case("inputs", "telemetry plot of a FIFO", "telemetry plot fifo"),
    _case("inputs", "data.yaml that is a FIFO", "eval --model tiny.onnx --data yolo-fifo"),
    _case("inputs", "COCO JSON that is a FIFO", "eval --model tiny.onnx --data fifo.json"),
    _case("inputs", "Triton export of a FIFO", "export fifo.onnx --triton repo"),
    # Issue 17 (kerashub): edge export --preset, a KerasHub object-detector preset.
    _case("preset", "a folder that is not a KerasHub preset", "export --preset folder -o o.onnx"),
    _case("preset", "a file given as the preset", "export --preset tiny.onnx -o o.onnx"),
    _case("preset", "a missing preset folder", "export --preset missing/dir -o o.onnx"),
    _case("preset", "both a model and a preset", "export model.keras --preset folder -o o.onnx"),
    _case("preset", "a preset without -o", "export --preset folder"),
    # Issue 17 (resume): KerasHub D-FINE training runs on one device.
    _case(
        "preset",
        "hub training on several JAX devices",
        "train --data yolo-ok --init folder --devices 2 --backend jax --out hub-run",
    ),
    _case(
        "preset",
        "hub training on several TensorFlow devices",
        "train --data yolo-ok --init folder --devices 2 --backend tensorflow --out hub-run",
    ),
)


def prepare(work: Path) -> Path:
    """Write every bad file the cases use into `work`; returns `work`."""
    import cv2
    import numpy as np

    sys.path.insert(0, str(REPO / "tests"))
    from onnx_models import fixed_detector, gate_models

    tiny = fixed_detector(work / "tiny.onnx")
    gate_models(work)
    fixed_detector(work / "plain.onnx", metadata={})
    meta = {"edge.contract": "1", "names": '["a","b","c"]', "imgsz": "[64,64]"}
    fixed_detector(work / "wrong.onnx", metadata=meta)
    deep = {
        "edge.contract": "1",
        "names": "[" * 100_000 + "]" * 100_000,
        "imgsz": "[64,64]",
    }
    fixed_detector(work / "deep.onnx", metadata=deep)
    fixed_detector(
        work / "zero-std.onnx", metadata={**meta, "names": '["a","b"]', "std": "[0,0,0]"}
    )
    onnx_bytes = tiny.read_bytes()
    (work / "truncated.onnx").write_bytes(onnx_bytes[: len(onnx_bytes) // 2])
    (work / "garbage.onnx").write_bytes(bytes(range(256)) * 8)
    (work / "empty.onnx").write_bytes(b"")
    (work / "folder").mkdir()
    (work / "model.keras").write_bytes(b"PK\x03\x04" + bytes(200))  # a zip, as .keras files are
    (work / "model.pt").write_bytes(b"\x80\x04\x95" + bytes(200))  # a pickle header
    (work / "corrupt.mp4").write_bytes(bytes(range(256)) * 40)
    (work / "empty.mp4").write_bytes(b"")
    writer = cv2.VideoWriter(str(work / "cut.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
    for i in range(30):
        writer.write(np.full((48, 64, 3), i * 8, np.uint8))
    writer.release()
    data = (work / "cut.mp4").read_bytes()
    (work / "cut.mp4").write_bytes(data[: len(data) * 6 // 10])
    (work / "empty-folder").mkdir()
    (work / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (work / "notes.jsonl").write_text('{"note": "not telemetry"}\n')
    _issue_10_files(work, np, cv2)
    _issue_18_exits_files(work, np, cv2)
    png = cv2.imencode(".png", np.full((24, 32, 3), 99, np.uint8))[1].tobytes()
    _yolo(work / "yolo-ok", png, "0 0.5 0.5 0.5 0.5")
    _yolo(work / "yolo-empty", None, "")
    _yolo(work / "yolo-no-boxes", png, "")
    _yolo(work / "yolo-malformed", png, "0 0.5 0.5 0.5")
    _yolo(work / "yolo-class", png, "5 0.5 0.5 0.5 0.5")
    obj = "<object><name>{}</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>20</xmax>"
    obj += "<ymax>20</ymax></bndbox></object>"
    _voc(work / "voc-class", png, obj.format("a") + obj.format("zebra"))
    _voc(work / "voc-malformed", png, "<object><name>a</name>", close=False)
    xxe = '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    _voc(work / "voc-xxe", png, "<object><name>&x;</name></object>", head=xxe)
    (work / "coco-bad.json").write_text('{"images": [')
    escape = work / "coco-escape"
    escape.mkdir()
    (work / "outside.png").write_bytes(png)
    doc = {
        "images": [{"id": 1, "file_name": "../outside.png", "width": 32, "height": 24}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 9, 9]}],
        "categories": [{"id": 1, "name": "a"}],
    }
    (escape / "annotations.json").write_text(json.dumps(doc))
    return work


def _issue_10_files(work: Path, np: object, cv2: object) -> None:
    """Inputs of the output-policy, source and message cases."""
    writer = cv2.VideoWriter(str(work / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), i * 40, np.uint8))
    writer.release()
    (work / "clip.0.mp4").write_bytes((work / "clip.mp4").read_bytes())
    os.symlink("clip.mp4", work / "sym.mp4")
    os.link(work / "tiny.onnx", work / "hard.jsonl")
    # A symlink to /dev/null is a character device to stat(); if the product ever replaced it,
    # the link would go, never /dev/null itself.
    os.symlink("/dev/null", work / "chardev")
    os.symlink("/dev/null", work / "chardev.mp4")
    os.mkfifo(work / "fifo")
    os.mkfifo(work / "fifo.csv")
    for name in ("folder.mp4", "folder.json", "folder.csv", "folder.png"):
        (work / name).mkdir()
    (work / "list.txt").write_text("synthetic\n")
    (work / "comments.txt").write_text("# nothing here\n")
    (work / "nonutf.txt").write_bytes(b"synthetic\n\xff\xfeclip.mp4\n")
    (work / "imgs").mkdir()
    cv2.imwrite(str(work / "imgs" / "a.png"), np.full((24, 32, 3), 50, np.uint8))
    png = cv2.imencode(".png", np.full((24, 32, 3), 99, np.uint8))[1].tobytes()
    _yolo(work / "yolo-nonutf", png, "0 0.5 0.5 0.5 0.5")
    (work / "yolo-nonutf" / "data.yaml").write_text(
        "train: train.txt\nval: train.txt\nnames: [a, b]\n"
    )
    (work / "yolo-nonutf" / "train.txt").write_bytes(b"images/im0.png\n\xff\xfe.png\n")
    _yolo(work / "half-synth", png, "0 0.5 0.5 0.5 0.5")
    (work / "half-synth" / "data.yaml").unlink()  # what an interrupted `edge data synth` left
    _issue_18_inputs(work, png)
    (work / "run-damaged").mkdir()
    (work / "run-damaged" / "options.json").write_text('{"data": "yolo-ok", "epochs": ')


def _issue_18_exits_files(work: Path, np: object, cv2: object) -> None:
    """Inputs of the Issue 18 (exits) cases."""
    png = cv2.imencode(".png", np.full((24, 32, 3), 99, np.uint8))[1].tobytes()
    _yolo(work / "yolo-int64", png, "99999999999999999999 0.5 0.5 0.5 0.5")
    _yolo(work / "yolo-nan", png, "nan 0.5 0.5 0.5 0.5")
    (work / "coco-huge").mkdir()
    (work / "coco-huge" / "im0.png").write_bytes(png)
    doc = {
        "images": [{"id": 1, "file_name": "im0.png", "width": 32, "height": 24}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10**400, 1, 9, 9]}],
        "categories": [{"id": 1, "name": "a"}],
    }
    (work / "coco-huge" / "annotations.json").write_text(json.dumps(doc))
    size = "<size><width>99999999999999999999</width><height>24</height></size>"
    box = "<bndbox><xmin>2</xmin><ymin>2</ymin><xmax>20</xmax><ymax>20</ymax></bndbox>"
    _voc(work / "voc-huge", png, f"{size}<object><name>a</name>{box}</object>")
    (work / "no-latency.csv").write_text("frame,source,t_ms,inference_ms\n0,s,0.0,5.0\n")
    (work / "empty-tele.csv").write_text("")
    (work / "binary.jsonl").write_bytes(bytes(range(256)) * 4)
    (work / "garbage-imgs").mkdir()
    for i in range(3):
        (work / "garbage-imgs" / f"{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    _yolo(work / "yolo-garbage", b"\xff\xd8 not really a jpeg", "0 0.5 0.5 0.5 0.5")
    (work / "v_fp16.onnx").mkdir()


def _issue_18_inputs(work: Path, png: bytes) -> None:
    """FIFOs and an oversized file where edge reads an input (fifo and folder are made above)."""
    for name in ("fifo.yaml", "fifo.onnx", "fifo.json"):
        os.mkfifo(work / name)
    (work / "huge.yaml").write_text("sources:\n" + "  - synthetic\n" * 160_000)  # 2.1 MB
    _yolo(work / "yolo-fifo", png, "0 0.5 0.5 0.5 0.5")
    (work / "yolo-fifo" / "data.yaml").unlink()
    os.mkfifo(work / "yolo-fifo" / "data.yaml")


def _yolo(root: Path, png: bytes | None, label: str) -> None:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("train: images\nval: images\nnames: [a, b]\n")
    if png is not None:
        for i in range(2):
            (root / "images" / f"im{i}.png").write_bytes(png)
            (root / "labels" / f"im{i}.txt").write_text(label + "\n")


def _voc(root: Path, png: bytes, objects: str, close: bool = True, head: str = "") -> None:
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    (root / "images" / "im0.png").write_bytes(png)
    (root / "classes.txt").write_text("a\nb\n")
    xml = f"{head}<annotation><filename>im0.png</filename>{objects}"
    (root / "annotations" / "im0.xml").write_text(xml + ("</annotation>" if close else ""))


@dataclass(frozen=True)
class Outcome:
    case: Case
    code: int
    stderr: str

    @property
    def command(self) -> str:
        return " ".join(("edge", *self.case.args))

    @property
    def lines(self) -> list[str]:
        return self.stderr.strip().splitlines()

    @property
    def clean(self) -> bool:
        """The case's exit code (2: bad input) and exactly one line on stderr, no traceback."""
        return (
            self.code == self.case.code and len(self.lines) == 1 and "Traceback" not in self.stderr
        )


def run_case(case: Case, work: Path, timeout: float = 120) -> Outcome:
    r = subprocess.run(
        [sys.executable, "-m", "edge", *case.args],
        capture_output=True,
        text=True,
        env={**ENV, **dict(case.env)},
        cwd=work,
        timeout=timeout,
    )
    return Outcome(case, r.returncode, r.stderr)


def run_all(work: Path, workers: int = 2) -> list[Outcome]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda c: run_case(c, work), CASES))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "# Bad input: what `edge` says",
        "",
        "Every bad input we try, the one line `edge` prints on stderr, and its exit code. Generated",
        "by `python scripts/bad_input_table.py` (do not edit by hand); the same cases run in",
        "`tests/test_reliability_bad_input.py`, which fails when this table is out of date. Files",
        "named here are the broken ones the script builds (see `prepare` in the script). Exit 2 is",
        "bad input; `edge data inspect` exits 1 when it found problems (the line says how many);",
        "exit 0 is an input edge works around (the line says what it does instead).",
        "",
        "| input | command | message (stderr) | exit |",
        "| --- | --- | --- | --- |",
    ]
    for o in outcomes:
        message = o.lines[-1] if o.lines else ""
        lines.append(
            f"| {o.case.group}: {_cell(o.case.what)} | `{_cell(o.command)}` "
            f"| {_cell(message)} | {o.code} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--out", type=Path, default=DOC, help="markdown file (default docs/bad-input.md)"
    )
    p.add_argument("--check", action="store_true", help="only check; write nothing")
    args = p.parse_args(argv)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edge-bad-input-") as tmp:
        outcomes = run_all(prepare(Path(tmp)))
    bad = [o for o in outcomes if not o.clean]
    for o in bad:
        print(f"NOT CLEAN (exit {o.code}): {o.command}\n{o.stderr}", file=sys.stderr)
    print(f"{len(outcomes)} cases in {time.monotonic() - start:.0f} s")
    if not args.check:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table(outcomes), encoding="utf-8")
        print(f"wrote {args.out}: {len(outcomes)} cases, {len(bad)} not clean")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
