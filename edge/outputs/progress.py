"""Progress on a terminal for work with a known end: frames done / total, FPS and ETA, one line
redrawn in place on stderr (`edge run` on a file or an image folder).

`Progress` is an observer of finished frames; it draws at most four times a second and only on a
terminal (callers switch it off with --quiet or when stderr is not a TTY).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

from edge.runtime.observe import FrameResult, Observer


class Progress(Observer):
    """One updating line: `frames 120/300  40%  24.8 FPS  ETA 0:07`; a context manager."""

    needs_image = False
    needs_timing = False

    def __init__(
        self, total: int | None, stream: TextIO | None = None, every_s: float = 0.25
    ) -> None:
        self.total = total if total and total > 0 else None
        self.stream = stream or sys.stderr
        self.every_ns = int(every_s * 1e9)
        self.done = 0
        self._start = time.perf_counter_ns()
        self._drawn = 0  # when the line was last drawn (0: never)
        self._width = 0

    def tick(self) -> None:
        """One more frame finished."""
        self.done += 1
        now = time.perf_counter_ns()
        if now - self._drawn >= self.every_ns:
            self._draw(now)

    def on_frame(self, result: FrameResult) -> bool:
        self.tick()
        return True

    def line(self, now_ns: int | None = None) -> str:
        elapsed = ((now_ns or time.perf_counter_ns()) - self._start) / 1e9
        fps = self.done / elapsed if elapsed > 0 else 0.0
        if self.total is None:
            return f"frames {self.done}  {fps:.1f} FPS"
        left = max(self.total - self.done, 0)
        eta = _clock(left / fps) if fps > 0 else "?"
        pct = 100 * min(self.done, self.total) / self.total
        return f"frames {self.done}/{self.total}  {pct:3.0f}%  {fps:.1f} FPS  ETA {eta}"

    def _draw(self, now_ns: int) -> None:
        text = self.line(now_ns)
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)
        self._drawn = now_ns

    def close(self) -> None:
        """Draw the final count and end the line (nothing when nothing was drawn)."""
        if self._drawn:
            self._draw(time.perf_counter_ns())
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def expected_frames(source: Any, spec: str, max_frames: int | None) -> int | None:
    """How many frames a run will take, where that is known: a video file's frame count, the
    images OpenCV can read in a folder, capped by --max-frames; None for live sources."""
    if getattr(source, "live", False):
        return max_frames
    total = getattr(source, "total", None)
    if total is None:
        total = _count(spec)
    if total is None:
        return max_frames
    return min(total, max_frames) if max_frames is not None else total


def _count(spec: str) -> int | None:
    import cv2

    path = Path(spec)
    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.is_file() and cv2.haveImageReader(str(p)))
    if path.is_file():
        if cv2.haveImageReader(str(path)):
            return 1
        cap = cv2.VideoCapture(str(path))
        try:
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        finally:
            cap.release()
        return n or None
    return None


def terminal_progress(
    source: Any, spec: str, max_frames: int | None, quiet: bool, stream: TextIO | None = None
) -> Progress | None:
    """A `Progress` for a run on a terminal with a known end; None when quiet, when the output is
    not a terminal, or for a live source with no frame limit."""
    stream = stream or sys.stderr
    if quiet or not stream.isatty():
        return None
    total = expected_frames(source, spec, max_frames)
    if total is None and getattr(source, "live", False):
        return None
    return Progress(total, stream)
