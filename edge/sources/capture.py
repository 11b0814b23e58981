"""OpenCV capture: video files, cameras and stream URLs as sources."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np

from edge.errors import SourceError
from edge.sources.base import Reader, SequentialSource, Source, SourceOptions
from edge.sources.latest import LatestFrameSource

log = logging.getLogger(__name__)

# A dead stream can block cv2's open/read for 30 s (OpenCV's default); fail sooner and reconnect.
STREAM_TIMEOUT_MS = 5000


def timeout_ms(seconds: float | None) -> int:
    """A timeout flag's seconds as OpenCV's milliseconds; None: STREAM_TIMEOUT_MS."""
    return STREAM_TIMEOUT_MS if seconds is None else max(int(seconds * 1000), 1)


# A video read that fails this many times in a row is at its end; fewer failures followed by a good
# frame are corrupt frames, skipped and counted.
MAX_BAD_RUN = 50

# The frame rates a container's header may state; outside them it is wrong, and taken literally
# it would pace --realtime at one frame per 100 s (0.01 FPS) or as fast as the reads go.
FPS_RANGE = (1.0, 1000.0)


class Capture:
    """cv2.VideoCapture with the options applied and clear errors."""

    def __init__(self, target: int | str, options: SourceOptions, what: str) -> None:
        self.target, self.options, self.what = target, options, what
        self.cap: cv2.VideoCapture | None = None
        self._fps_said = False  # the warning for a header's nonsense FPS is given once

    def open(self) -> None:
        # OpenCV prints each backend it tries to stderr; we report the outcome in one line instead.
        quiet = not log.isEnabledFor(logging.DEBUG)
        previous = cv2.utils.logging.getLogLevel() if quiet else None
        if quiet:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            if isinstance(self.target, int):
                cap = cv2.VideoCapture(self.target)
            else:
                o = self.options
                timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms(o.open_timeout_s)]
                timeouts += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms(o.read_timeout_s)]
                cap = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, timeouts)
        finally:
            if previous is not None:
                cv2.utils.logging.setLogLevel(previous)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.what} could not be opened")
        o = self.options
        if isinstance(self.target, int):
            if o.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, o.width)
            if o.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, o.height)
            if o.fps:
                cap.set(cv2.CAP_PROP_FPS, o.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a camera's own queue adds latency
        self.cap = cap

    def read(self) -> np.ndarray | None:
        if self.cap is None:
            return None
        ok, img = self.cap.read()
        return img if ok and img is not None and img.size else None

    def fps(self) -> float | None:
        """The stated frame rate, clamped to FPS_RANGE (with one warning); None if none is stated."""
        if self.cap is None:
            return None
        stated = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(stated) or stated <= 0:
            return None
        used = min(max(stated, FPS_RANGE[0]), FPS_RANGE[1])
        if used != stated and not self._fps_said:
            self._fps_said = True
            log.warning(
                "%s: its header says %g FPS, not a real frame rate; using %g",
                self.what,
                stated,
                used,
            )
        return used

    def frame_count(self) -> int:
        return int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.cap is not None else 0

    def release(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def video_file(path: Path, options: SourceOptions) -> Source:
    cap = Capture(str(path), options, f"video {path}")
    try:
        cap.open()
    except SourceError:
        raise SourceError(
            f"video {path}: could not be opened (corrupt or unsupported format?)"
        ) from None
    first = cap.read()
    if first is None:
        cap.release()
        raise SourceError(f"video {path}: no readable frames (empty or corrupt file)")
    fps = cap.fps()
    total = cap.frame_count()  # from the header: a truncated file has fewer
    pending = [first]

    def read() -> tuple[np.ndarray, None] | None:
        if pending:
            return pending.pop(), None
        for failed in range(MAX_BAD_RUN + 1):
            img = cap.read()
            if img is not None:
                if failed:
                    src.stats.bad += failed
                    log.warning("video %s: %d corrupt frame(s) skipped", path, failed)
                return img, None
        missing = total - src.stats.read - src.stats.bad
        if missing > 0:
            src.stats.bad += missing
            log.warning(
                "video %s: ended after %d of the %d frames its header announces "
                "(truncated or corrupt file); %d counted as bad",
                *(path, src.stats.read, total, missing),
            )
        return None

    if options.realtime:
        src: Source = LatestFrameSource(
            f"video {path.name}",
            lambda: read,
            options,
            pace=1.0 / (fps or 30.0),
            reconnect=False,
            close_reader=cap.release,
        )
    else:
        src = SequentialSource(f"video {path.name}", read, fps, close=cap.release)
    src.fps = fps
    src.total = total or None
    return src


def live_capture(target: int | str, what: str, options: SourceOptions) -> Source:
    cap = Capture(target, options, what)

    def open_reader() -> Reader:
        cap.open()
        if isinstance(target, int):
            # Some drivers open an index that has no device and only fail at the first read.
            probe = cap.read()
            if probe is None:
                cap.release()
                raise SourceError(f"{what} opened but delivers no frames")
            pending = [probe]
        else:
            pending = []

        def read() -> tuple[np.ndarray, None] | None:
            img = pending.pop() if pending else cap.read()
            return None if img is None else (img, None)

        return read

    try:
        src = LatestFrameSource(
            what,
            open_reader,
            options,
            reconnect=options.reconnect_attempts > 0,
            close_reader=cap.release,
        )
    except SourceError as exc:
        hint = " (does that camera exist? try `edge info`)" if isinstance(target, int) else ""
        raise SourceError(f"{exc}{hint}") from None
    src.fps = cap.fps() or options.fps
    return src
