"""Progress on long work: `edge run` draws one updating line on a terminal and nothing otherwise."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.outputs.progress import Progress, expected_frames, terminal_progress

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Live:
    live = True


class Finite:
    live = False


def test_line_shows_done_total_fps_and_eta():
    p = Progress(total=100, stream=Tty())
    p.done = 50
    line = p.line(p._start + 2_000_000_000)  # two seconds in, on the clock the test gives it
    assert line.startswith("frames 50/100   50%")
    fps = float(line.split("%")[1].split("FPS")[0])
    assert fps == 25.0
    assert line.endswith("ETA 0:02")
    unknown = Progress(total=None, stream=Tty())
    unknown.done = 3
    assert unknown.line().startswith("frames 3  ")


def test_redraws_one_line_in_place_and_ends_it():
    out = Tty()
    with Progress(total=3, stream=out, every_s=0) as p:
        for _ in range(3):
            p.tick()
    text = out.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert "frames 3/3  100%" in text


@pytest.mark.parametrize(
    ("stream", "quiet", "source", "max_frames", "expected"),
    [
        (io.StringIO(), False, Finite(), 10, None),  # not a terminal
        (Tty(), True, Finite(), 10, None),  # --quiet
        (Tty(), False, Live(), None, None),  # live, no end
        (Tty(), False, Live(), 50, 50),  # live with --max-frames: a known end
        (Tty(), False, Finite(), 7, 7),
    ],
)
def test_terminal_progress_only_on_a_terminal(stream, quiet, source, max_frames, expected):
    p = terminal_progress(source, "synthetic", max_frames, quiet, stream)
    assert (p.total if p else None) == expected


def test_expected_frames_counts_readable_images_and_video_frames(tmp_path):
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    assert expected_frames(Finite(), str(tmp_path), None) == 5
    assert expected_frames(Finite(), str(tmp_path), 3) == 3
    video = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    for _ in range(12):
        w.write(np.zeros((32, 32, 3), np.uint8))
    w.release()
    assert expected_frames(Finite(), str(video), None) == 12


def _images(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:02d}.png"), np.full((32, 32, 3), 9 * i, np.uint8))
    return folder


def test_edge_run_on_a_terminal_draws_progress(tmp_path, tiny_model):
    images = _images(tmp_path / "imgs", 12)
    master, slave = pty.openpty()
    cmd = [sys.executable, "-m", "edge", "run", "--model", str(tiny_model), "--source", str(images)]
    proc = subprocess.Popen(
        [*cmd, "--no-show", "--device", "cpu"], stdout=subprocess.DEVNULL, stderr=slave, env=ENV
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=120) == 0
    os.close(master)
    text = b"".join(chunks).decode()
    assert "\rframes 12/12  100%" in text, text


def test_edge_run_piped_or_quiet_draws_no_progress(tmp_path, tiny_model):
    images = _images(tmp_path / "imgs", 4)
    r = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--model", str(tiny_model), "--source", str(images),
         "--no-show", "--device", "cpu"],
        capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "frames 4/4" not in r.stderr and "\r" not in r.stderr


def test_eval_bar_only_on_a_terminal(monkeypatch):
    pytest.importorskip("tqdm")  # the train extra, which `edge eval` needs anyway
    from edge.cli.eval import _bar

    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert list(_bar([1, 2, 3])) == [1, 2, 3]
    assert "eval:" in tty.getvalue() and "/3 [" in tty.getvalue()  # a bar over 3 images
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    assert list(_bar([1, 2])) == [1, 2] and piped.getvalue() == ""
