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


def _case(group: str, what: str, command: str) -> Case:
    return Case(group, what, tuple(command.split()))


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
    # the model gate (edge/gate.py): refused at load, before the source opens
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
    deep = {"edge.contract": "1", "names": "[" * 100_000 + "]" * 100_000, "imgsz": "[64,64]"}
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
        """Exit code 2 and exactly one line on stderr, no traceback."""
        return self.code == 2 and len(self.lines) == 1 and "Traceback" not in self.stderr


def run_case(case: Case, work: Path, timeout: float = 120) -> Outcome:
    r = subprocess.run(
        [sys.executable, "-m", "edge", *case.args],
        capture_output=True,
        text=True,
        env=ENV,
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
        "named here are the broken ones the script builds (see `prepare` in the script).",
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
    with tempfile.TemporaryDirectory(prefix="edge-bad-input-") as tmp:
        outcomes = run_all(prepare(Path(tmp)))
    bad = [o for o in outcomes if not o.clean]
    for o in bad:
        print(f"NOT CLEAN (exit {o.code}): {o.command}\n{o.stderr}", file=sys.stderr)
    if not args.check:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table(outcomes), encoding="utf-8")
        print(f"wrote {args.out}: {len(outcomes)} cases, {len(bad)} not clean")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
