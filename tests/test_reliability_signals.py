"""SIGINT and SIGTERM during `edge run --save --jsonl --telemetry`: every output complete and in step.

A stop signal finishes the frames in flight; the video is playable and holds exactly the frames
that the telemetry and the detections file list. A second signal aborts (exit 130), and still
leaves parseable files behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from onnx_models import fixed_detector

from edge.outputs.telemetry_file import read_records

ENV = {**os.environ, "DISPLAY": "", "WAYLAND_DISPLAY": "", "PYTHONUNBUFFERED": "1"}


def _start(tmp_path: Path, save: str) -> tuple[subprocess.Popen, dict[str, Path]]:
    model = fixed_detector(tmp_path / "slow.onnx", slow=6)
    out = {"video": tmp_path / save, "tele": tmp_path / "t.jsonl", "dets": tmp_path / "d.jsonl"}
    p = subprocess.Popen(
        [
            *(sys.executable, "-m", "edge", "run", "--model", str(model)),
            *("--max-frames", "100000", "--width", "160", "--height", "120"),
            *("--save", str(out["video"]), "--telemetry", str(out["tele"])),
            *("--jsonl", str(out["dets"])),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    deadline = time.monotonic() + 60
    while not any(p.read_text().count("\n") >= 5 for p in tmp_path.glob(".t.*partial*")):
        assert time.monotonic() < deadline and p.poll() is None, "edge run wrote no telemetry"
        time.sleep(0.1)
    return p, out


def _frames(video: Path) -> int:
    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened(), video
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.mark.parametrize(
    ("sig", "save"),
    [(signal.SIGINT, "out.mp4"), (signal.SIGTERM, "out.mp4"), (signal.SIGTERM, "out.avi")],
)
def test_stop_signal_leaves_complete_outputs(tmp_path, sig, save):
    p, out = _start(tmp_path, save)
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    assert "stopped by signal" in stdout and "Traceback" not in stderr
    rows = read_records(out["tele"])
    dets = [json.loads(x) for x in out["dets"].read_text().splitlines()]
    assert _frames(out["video"]) == len(rows) == len(dets) >= 5
    assert [r["frame"] for r in rows] == [d["frame"] for d in dets]
    assert not list(tmp_path.glob(".*partial*"))  # every file renamed into place


def test_second_signal_aborts_and_leaves_parseable_files(tmp_path):
    p, out = _start(tmp_path, "out.mp4")
    p.send_signal(signal.SIGTERM)
    time.sleep(0.005)  # two signals sent at once may arrive as one
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode in (0, 130), stderr  # 0 when the first stop won the race
    assert "Traceback" not in stderr
    if p.returncode == 130:
        assert stderr.strip().splitlines()[-1] == "edge run: interrupted"
    assert out["tele"].exists(), (p.returncode, stderr, sorted(x.name for x in tmp_path.iterdir()))
    rows = read_records(out["tele"])
    assert len(rows) >= 5
    for line in out["dets"].read_text().splitlines():
        json.loads(line)
    # The video too, whenever the abort lands: one during its finishing (index, check, rename)
    # waits for it (edge.outputs.files.finishing).
    assert out["video"].exists(), (p.returncode, stderr, sorted(x.name for x in tmp_path.iterdir()))
    assert _frames(out["video"]) >= 5, (p.returncode, stderr, out["video"].stat().st_size)
    assert not list(tmp_path.glob(".*partial*"))


def test_an_abort_while_files_are_finished_waits_for_them() -> None:
    """abort() (what `edge run`'s second signal calls) inside `finishing` blocks raises
    KeyboardInterrupt only when the outermost block ends; asked twice, at once; outside, at once."""
    from edge.runtime import abort

    with pytest.raises(KeyboardInterrupt):
        abort.abort()
    done = []
    with pytest.raises(KeyboardInterrupt), abort.finishing():
        with abort.finishing():
            abort.abort()
            done.append("inner")  # the abort waits: the work goes on
        done.append("outer")
    assert done == ["inner", "outer"]
    with pytest.raises(KeyboardInterrupt), abort.finishing():
        abort.abort()
        abort.abort()  # again: now
        done.append("never")
    assert "never" not in done
    with abort.finishing():  # nothing left pending from before
        done.append("clean")
    assert done[-1] == "clean"
