"""Every file edge reads is a regular file of a sane size, checked before it is read
(edge.errors.read_bounded / check_regular): a FIFO, a device, a folder or a file far larger than
its kind is refused in one line naming it (exit 2), never read until memory or patience runs out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from data_builders import TINY, write_coco, write_voc, write_yolo

from edge.errors import (
    ANNOTATION_BYTES,
    CONFIG_BYTES,
    LARGE_BYTES,
    LIST_BYTES,
    EdgeError,
    check_regular,
    read_bounded,
)

REPO = Path(__file__).resolve().parents[1]
HANG_GUARD_S = 120  # before the checks a FIFO blocked the read for ever
ONE = TINY[:1]  # one image: a bad file leaves nothing usable, so the run stops (exit 2)


def _yolo_list(root: Path) -> None:
    write_yolo(root, ONE)
    (root / "data.yaml").write_text("train: train.txt\nval: train.txt\nnames: [cat, dog]\n")


def _coco(work: Path) -> None:
    write_coco(work / "coco", ONE)
    (work / "coco" / "annotations.json").rename(work / "coco.json")


def _resume(work: Path) -> None:
    (work / "run").mkdir()


# reader: (command after `edge`, the file it reads, how to build what surrounds it, its limit)
READERS = {
    "site config": ("run --config {f}", "site.yaml", None, CONFIG_BYTES),
    "--sources list": ("run --model tiny.onnx --sources {f}", "cams.txt", None, CONFIG_BYTES),
    "run model": ("run --model {f}", "m.onnx", None, None),
    "--source image": ("run --model tiny.onnx --source {f}", "photo.jpg", None, None),
    "bench model": ("bench --model {f}", "m.onnx", None, None),
    "eval model": (
        "eval --model {f} --data yolo",
        "m.onnx",
        lambda w: write_yolo(w / "yolo"),
        None,
    ),
    "export Keras model": ("export {f} --output out.onnx", "m.keras", None, None),
    "Triton export model": ("export {f} --triton repo", "m.onnx", None, None),
    "telemetry plot": ("telemetry plot {f}", "t.jsonl", None, LARGE_BYTES),
    "YOLO data.yaml": (
        "eval --model tiny.onnx --data yolo",
        "yolo/data.yaml",
        lambda w: write_yolo(w / "yolo", ONE),
        ANNOTATION_BYTES,
    ),
    "YOLO image list": (
        "eval --model tiny.onnx --data yolo",
        "yolo/train.txt",
        lambda w: _yolo_list(w / "yolo"),
        LIST_BYTES,
    ),
    "YOLO class names": (
        "eval --model tiny.onnx --data yolo",
        "yolo/classes.txt",
        lambda w: write_yolo(w / "yolo", ONE, data_yaml=False),
        CONFIG_BYTES,
    ),
    "YOLO label file": (
        "eval --model tiny.onnx --data yolo",
        "yolo/labels/a.txt",
        lambda w: write_yolo(w / "yolo", ONE),
        ANNOTATION_BYTES,
    ),
    "COCO JSON": ("eval --model tiny.onnx --data {f}", "coco.json", _coco, LARGE_BYTES),
    "VOC XML": (
        "eval --model tiny.onnx --data voc",
        "voc/annotations/a.xml",
        lambda w: write_voc(w / "voc", ONE),
        ANNOTATION_BYTES,
    ),
    "VOC class names": (
        "eval --model tiny.onnx --data voc",
        "voc/classes.txt",
        lambda w: write_voc(w / "voc", ONE),
        CONFIG_BYTES,
    ),
    "--resume options.json": (
        "train --out run --resume",
        "run/options.json",
        _resume,
        CONFIG_BYTES,
    ),
}
# what each bad file is, and what the one line says of it
BAD = {
    "FIFO": "is a FIFO (named pipe), not a regular file",
    "device": "is a device, not a regular file",
    "folder": "is a folder, not a regular file",
    "too large": "more than the",
    "not UTF-8": "not UTF-8 text (byte 3)",
    "unreadable": "cannot read it (Input/output error)",
}
# Read as text (VOC XML is bytes: its parser reads the encoding the file declares); every file
# with a limit is read by edge (a model is only stat'ed: ONNX Runtime or Keras reads it).
BINARY = {"VOC XML"}
# A folder of those names is a dataset (or a folder of images); a model's limit (16 GB) is not a
# test file.
FOLDERS_THAT_ARE_DATA = {"COCO JSON", "YOLO image list", "--source image"}
CASES = [
    (reader, bad)
    for reader, (_, _, _, limit) in READERS.items()
    for bad in BAD
    if not (bad == "folder" and reader in FOLDERS_THAT_ARE_DATA)
    and not (bad in ("too large", "unreadable") and not limit)
    and not (bad == "not UTF-8" and (not limit or reader in BINARY))
]


def _make_bad(path: Path, bad: str, limit: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    if bad == "FIFO":
        os.mkfifo(path)
    elif bad == "device":
        os.symlink("/dev/zero", path)  # endless bytes: read whole, it fills memory
    elif bad == "folder":
        path.mkdir()
    elif bad == "not UTF-8":
        path.write_bytes(b"a: \xff\xfe\n")  # Latin-1 or UTF-16 saved where UTF-8 is read
    elif bad == "unreadable":
        # a regular file whose read fails (EIO), whoever runs the test: root reads past any
        # permission bits. /proc/self is the reader itself, whose address 0 is not mapped.
        os.symlink("/proc/self/mem", path)
    else:
        with open(path, "wb") as f:  # sparse: its size says too large, no disk is spent
            f.truncate(limit + 1)


@pytest.mark.parametrize(("reader", "bad"), CASES, ids=[f"{r}: {b}" for r, b in CASES])
def test_a_bad_input_file_is_one_line_and_exit_2(tmp_path, tiny_model, reader, bad) -> None:
    command, name, build, limit = READERS[reader]
    if build is not None:
        build(tmp_path)
    _make_bad(tmp_path / name, bad, limit)
    r = subprocess.run(
        [sys.executable, "-m", "edge", *command.format(f=name).split()],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "DISPLAY": ""},
        timeout=HANG_GUARD_S,  # a hang guard: before the fix a FIFO never returned
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert name in lines[0] and BAD[bad] in lines[0], lines[0]


def test_a_fifo_or_device_in_an_image_glob_is_skipped_not_read(tmp_path, tiny_model) -> None:
    # Before: the FIFO blocked the read for ever (SIGTERM too), /dev/zero filled memory.
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "img0.png"), np.zeros((20, 30, 3), np.uint8))
    os.mkfifo(tmp_path / "img1.png")
    os.symlink("/dev/zero", tmp_path / "img2.jpg")
    r = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--model", "tiny.onnx", "--source", "img*"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "DISPLAY": ""},
        timeout=HANG_GUARD_S,  # a hang guard
    )
    assert r.returncode == 0, r.stderr
    assert "frames: 1 " in r.stdout and "skipped: 2 " in r.stdout, r.stdout


def test_a_file_that_says_it_is_small_is_still_read_only_to_its_limit(tmp_path) -> None:
    # /proc files report size 0 and hold more: the read itself is bounded, not only the stat.
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        pytest.skip("no /proc")
    with pytest.raises(EdgeError, match=r"maps: more than the"):
        read_bounded(maps, 16)
    assert b"\n" in read_bounded(maps, 1 << 24)


def test_a_regular_file_reads_whole_and_its_size_is_known_without_reading(tmp_path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"a": 1}))
    assert read_bounded(path, 100) == b'{"a": 1}'
    assert check_regular(path) == 8
    with pytest.raises(ValueError, match=r"^--flag a.json: 8 bytes, more than the 7 bytes"):
        read_bounded(path, 7, "--flag a.json", ValueError)
    with pytest.raises(FileNotFoundError):
        read_bounded(tmp_path / "missing", 100)


@pytest.mark.parametrize(
    ("command", "what"),
    [
        ("eval --model tiny.onnx --data yolo --split train", "cannot read image"),
        ("export {bundled} --output out.onnx --calib-data yolo", "--calib-data: cannot read image"),
        ("train --data yolo --out run --model tiny --epochs 1 --imgsz 32", "cannot read image"),
    ],
    ids=["eval", "export calibration", "train"],
)
def test_a_jpeg_cut_short_is_named_and_libjpeg_prints_nothing(tmp_path, tiny_model, command, what):
    """A JPEG whose copy stopped: libjpeg would decode it padded with grey and print "Premature
    end of JPEG file" on stderr, past any logging. Every image edge decodes goes through one
    reader (edge.sources.images.read_image) that names the file instead."""
    write_yolo(tmp_path / "yolo", ONE)
    image = tmp_path / "yolo" / "images" / "a.jpg"
    import cv2
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)
    data = cv2.imencode(".jpg", noise)[1].tobytes()
    image.write_bytes(data[: len(data) * 2 // 3])  # the header whole, the scan cut
    command = command.format(bundled=REPO / "models" / "default.keras")
    r = subprocess.run(
        [sys.executable, "-m", "edge", *command.split()],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "DISPLAY": ""},
        timeout=600,
    )
    assert r.returncode == 2, r.stderr
    assert "Premature end" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]  # after the progress lines
    assert what in last and "a.jpg" in last and "cut short" in last, r.stderr
