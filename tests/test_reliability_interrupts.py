"""Inputs that used to hang or half-finish: a FIFO source with no writer, a synth job killed by
SIGTERM, a dataset folder without its manifest; and every numeric flag's range in --help."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import build_parser
from edge.data.inspect import inspect_dataset
from edge.errors import SourceError
from edge.sources import SourceOptions, open_source

ENV = {**os.environ, "DISPLAY": "", "WAYLAND_DISPLAY": "", "PYTHONUNBUFFERED": "1"}


def _clip(path: Path, frames: int = 6) -> bytes:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    return path.read_bytes()


def test_a_fifo_with_no_writer_fails_within_the_open_timeout(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            open_source(str(fifo), SourceOptions(open_timeout_s=0.3))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    opener = threading.Thread(target=open_it, daemon=True)
    opener.start()
    opener.join(timeout=30)  # a hang guard: without the open timeout it would wait forever
    assert not opener.is_alive(), "open_source still waits for the FIFO's writer"
    assert len(errors) == 1 and isinstance(errors[0], SourceError)
    assert re.search(r"--source .*fifo: FIFO with no data after 0.3 s", str(errors[0]))


def test_a_fifo_whose_writer_already_finished_is_read_to_its_end(tmp_path):
    data = _clip(tmp_path / "c.avi")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as f:  # blocks until the source opens its reader
            f.write(data)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    with open_source(str(fifo), SourceOptions(open_timeout_s=10)) as src:
        frames = sum(1 for _ in src)
    writer.join(5)
    assert frames == 6


def test_a_device_that_is_not_a_camera_is_refused(tmp_path):
    link = tmp_path / "zero"
    os.symlink("/dev/zero", link)  # stat() sees /dev/zero, a character device
    with pytest.raises(SourceError, match="a device or socket, not a video, camera or FIFO"):
        open_source(str(link))


def test_sigterm_during_synth_leaves_no_dataset(tmp_path):
    out = tmp_path / "ds"
    p = subprocess.Popen(
        [sys.executable, "-m", "edge", "data", "synth", "--out", str(out), "--images", "5000",
         "--imgsz", "64"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not any(len(list(d.rglob("*.jpg"))) >= 20 for d in tmp_path.glob(".ds.*")):
        assert time.monotonic() < deadline and p.poll() is None, "synth never started writing"
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    assert list(tmp_path.iterdir()) == []  # neither the dataset nor its hidden build folder


def test_a_yolo_folder_without_its_manifest_is_a_problem(tmp_path):
    from edge.data.synth import write_synthetic

    write_synthetic(tmp_path / "ds", images=3, imgsz=64)
    assert inspect_dataset(tmp_path / "ds").problems == ()
    (tmp_path / "ds" / "data.yaml").unlink()  # what a synth killed before the end would leave
    (problem,) = inspect_dataset(tmp_path / "ds").problems
    assert "no data.yaml" in problem and "incomplete" in problem


def _numeric_actions():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # noqa: SLF001
    seen = set()
    stack = list(sub.choices.items())
    while stack:
        name, p = stack.pop()
        for a in p._actions:  # noqa: SLF001
            if hasattr(a, "choices") and isinstance(a.choices, dict) and a.dest != "help":
                stack += [(f"{name} {k}", c) for k, c in a.choices.items()]
            elif a.option_strings and a.type is not None and (name, a.dest) not in seen:
                seen.add((name, a.dest))
                yield name, a


def test_every_numeric_flag_has_a_range_shown_in_help():
    unbounded = []
    for command, action in _numeric_actions():
        if action.type in (int, float):
            unbounded.append(f"{command} {action.option_strings[-1]}")
        text = getattr(action.type, "range_text", None)
        if text:
            assert text in action.help, (command, action.option_strings)
    # --opset is checked against the converter's own range in `edge export`.
    assert unbounded == ["export --opset"]


def test_an_error_raised_because_of_an_interrupt_is_an_interrupt(monkeypatch, capsys):
    # A signal that lands in `import onnxruntime` comes out as ImportError("initialization
    # failed") raised from the KeyboardInterrupt: still an interrupt (130), not a traceback.
    import edge.cli.info
    from edge.cli import main

    def interrupted_import(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise ImportError("initialization failed") from exc

    monkeypatch.setattr(edge.cli.info, "main", interrupted_import)
    assert main(["info"]) == 130
    assert capsys.readouterr().err == "edge info: interrupted\n"
