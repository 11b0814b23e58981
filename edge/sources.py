"""Frame sources: camera, video file, stream URL, images and the synthetic scene.

`open_source(spec, options)` picks the kind from the spec. Live sources (camera, stream, and any
source paced with `realtime`) are read by a capture thread that keeps only the newest frame, so
inference never works on a stale frame; frames overwritten this way are counted as dropped. A lost
live source is reopened with bounded exponential backoff.
"""

from __future__ import annotations

import glob
import logging
import os
import select
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.errors import SourceError
from edge.types import Detections, Frame

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTS = (
    ".mp4",
    ".avi",
    ".mkv",
    ".mov",
    ".webm",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".ts",
)
URL_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
# A dead stream can block cv2's open/read for 30 s (OpenCV's default); fail sooner and reconnect.
STREAM_TIMEOUT_MS = 5000
# A video read that fails this many times in a row is at its end; fewer failures followed by a good
# frame are corrupt frames, skipped and counted.
MAX_BAD_RUN = 50


@dataclass(frozen=True)
class SourceOptions:
    """What users ask of a source: size/FPS requests for cameras, pacing and reconnects."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    realtime: bool = False  # pace files at native FPS and drop like a live source
    reconnect_attempts: int = 10  # per outage; 0 disables reconnecting
    reconnect_backoff: tuple[float, float] = (0.5, 8.0)  # first and longest wait, seconds
    synthetic_seed: int = 0
    # Streams, FIFOs: longest wait to open / for one frame, seconds (None: STREAM_TIMEOUT_MS).
    open_timeout_s: float | None = None
    read_timeout_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("open_timeout", "read_timeout"):
            v = getattr(self, f"{name}_s")
            if v is not None and not 0 < v <= 3600:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be in (0, 3600] seconds, got {v}"
                )
        for name in ("width", "height"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"--{name} must be positive, got {v}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"--fps must be positive, got {self.fps}")
        if self.reconnect_attempts < 0:
            raise ValueError(f"--reconnect must be >= 0, got {self.reconnect_attempts}")


@dataclass
class SourceEvent:
    """Something that happened to a source: an outage, a reconnect, a skipped bad frame."""

    kind: str  # "lost", "reconnected", "gave_up", "bad_frame"
    at_ns: int
    detail: str = ""
    since_ns: int | None = None  # outage start: the last frame read before it was lost
    attempts: int = 0  # reconnect attempts made in this outage
    frames_lost: int | None = None  # estimate: outage length x the read rate before it


@dataclass
class SourceStats:
    read: int = 0
    delivered: int = 0
    dropped: int = 0
    bad: int = 0
    reconnects: int = 0
    events: list[SourceEvent] = field(default_factory=list)


class Source:
    """Base class: iterate for frames; use as a context manager so threads and devices are released."""

    name: str = "source"
    live: bool = False
    fps: float | None = None

    def __init__(self) -> None:
        self.stats = SourceStats()
        # Live sources call this every ~0.25 s while no frame arrives; True ends the iteration
        # (the consumer's Ctrl-C or deadline must not wait for a reconnect to finish).
        self.on_stall: Callable[[], bool] = lambda: False

    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def close(self) -> None:
        """Release the device/thread. Safe to call twice."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- readers: a function returning the next (image, truth) or None at the end ---------------------

Reader = Callable[[], "tuple[np.ndarray, Detections | None] | None"]


class _Capture:
    """cv2.VideoCapture with the options applied and clear errors."""

    def __init__(self, target: int | str, options: SourceOptions, what: str) -> None:
        self.target, self.options, self.what = target, options, what
        self.cap: cv2.VideoCapture | None = None

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
                timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, _ms(o.open_timeout_s)]
                timeouts += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, _ms(o.read_timeout_s)]
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
        if self.cap is None:
            return None
        v = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        return v if 0 < v < 1000 else None

    def frame_count(self) -> int:
        return int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.cap is not None else 0

    def release(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class LatestFrameSource(Source):
    """Reads in a thread and keeps only the newest frame (counting overwritten ones as dropped).

    `open_reader()` opens the underlying device and returns a Reader; `pace` (seconds between
    frames) makes a file behave like a live source. When a read fails on a live source the device is
    reopened with exponential backoff, up to `reconnect_attempts` times per outage.
    """

    live = True

    def __init__(
        self,
        name: str,
        open_reader: Callable[[], Reader],
        options: SourceOptions,
        pace: float | None = None,
        reconnect: bool = True,
        close_reader: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.name, self.options, self.pace = name, options, pace
        self._open_reader, self._close_reader = open_reader, close_reader or (lambda: None)
        self._reconnect = reconnect
        self._cond = threading.Condition()
        self._slot: tuple[np.ndarray, Detections | None, int, int] | None = (
            None  # img, truth, ns, seq
        )
        self._seq_taken = -1
        self._finished = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._reads: deque[int] = deque(maxlen=30)  # recent read times: frames-lost estimate
        self._reader = open_reader()  # fails here, in the caller, if the device cannot be opened
        self._thread = threading.Thread(target=self._run, name=f"capture:{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seq = 0
        next_due = time.perf_counter()
        try:
            while not self._stop.is_set():
                item = self._reader()
                if item is None:
                    if self._reconnect and self._reopen():
                        continue
                    break
                if self.pace is not None:
                    next_due += self.pace
                    delay = next_due - time.perf_counter()
                    if delay > 0:
                        self._stop.wait(delay)
                    else:
                        next_due = time.perf_counter()  # behind: do not try to catch up in a burst
                img, truth = item
                now = time.perf_counter_ns()
                with self._cond:
                    if self._slot is not None and self._slot[3] > self._seq_taken:
                        self.stats.dropped += 1
                    self._slot = (img, truth, now, seq)
                    self.stats.read += 1
                    self._reads.append(now)
                    self._cond.notify_all()
                seq += 1
        except BaseException as exc:  # handed to the consumer instead of dying silently
            self._error = exc
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    def _reopen(self) -> bool:
        first, longest = self.options.reconnect_backoff
        attempts = self.options.reconnect_attempts
        lost_at = time.perf_counter_ns()
        since = self._reads[-1] if self._reads else lost_at
        self.stats.events.append(SourceEvent("lost", lost_at, self.name, since_ns=since))
        log.warning("%s: lost; reconnecting (up to %d attempts)", self.name, attempts)
        wait = first
        for attempt in range(1, attempts + 1):
            if self._stop.wait(wait):
                return False
            try:
                self._close_reader()
                self._reader = self._open_reader()
            except SourceError as exc:
                log.warning("%s: reconnect %d/%d failed: %s", self.name, attempt, attempts, exc)
                wait = min(wait * 2, longest)
                continue
            self.stats.reconnects += 1
            now = time.perf_counter_ns()
            outage_ms = (now - since) / 1e6
            lost = self._frames_in(since, now)
            self.stats.events.append(
                SourceEvent("reconnected", now, f"after {outage_ms:.0f} ms", since, attempt, lost)
            )
            self._reads.clear()
            log.warning("%s: reconnected after %.1f s", self.name, outage_ms / 1000)
            return True
        now = time.perf_counter_ns()
        self.stats.events.append(
            SourceEvent("gave_up", now, f"after {attempts} attempts", since, attempts, None)
        )
        log.error("%s: gave up after %d reconnect attempts", self.name, attempts)
        return False

    def _frames_in(self, start_ns: int, end_ns: int) -> int | None:
        """Frames the source would have delivered in a gap, at the rate it was read before it."""
        r = self._reads
        if len(r) >= 2 and r[-1] > r[0]:
            rate = (len(r) - 1) / ((r[-1] - r[0]) / 1e9)
        elif self.fps:
            rate = self.fps
        else:
            return None
        return int((end_ns - start_ns) / 1e9 * rate)

    def frames(self) -> Iterator[Frame]:
        while True:
            with self._cond:
                while not self._finished and (
                    self._slot is None or self._slot[3] <= self._seq_taken
                ):
                    if not self._cond.wait(0.25) and self.on_stall():
                        return
                if self._error is not None:
                    raise SourceError(
                        f"{self.name}: capture failed: {self._error}"
                    ) from self._error
                if self._slot is None or self._slot[3] <= self._seq_taken:
                    return  # finished and nothing new
                img, truth, ns, seq = self._slot
                dropped = seq - self._seq_taken - 1
                self._seq_taken = seq
                self.stats.delivered += 1
            yield Frame(img, seq, ns, self.name, truth=truth, dropped_before=max(dropped, 0))

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=STREAM_TIMEOUT_MS / 1000 + 2)
        if self._thread.is_alive():  # stuck in a driver call: releasing under it could crash
            log.warning("%s: capture thread did not stop; device left to process exit", self.name)
            return
        self._close_reader()


class SequentialSource(Source):
    """Reads frames in order on demand: no drops, no thread (files and folders by default)."""

    live = False

    def __init__(
        self, name: str, reader: Reader, fps: float | None, close: Callable[[], None] | None = None
    ) -> None:
        super().__init__()
        self.name, self.fps, self._reader, self._close = name, fps, reader, close or (lambda: None)

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            item = self._reader()
            if item is None:
                return
            img, truth = item
            self.stats.read += 1
            self.stats.delivered += 1
            yield Frame(img, index, time.perf_counter_ns(), self.name, truth=truth)
            index += 1

    def close(self) -> None:
        self._close()


# --- kinds ---------------------------------------------------------------------------------------


def _synthetic(spec: str, options: SourceOptions) -> Source:
    from edge.synthetic import SyntheticScene

    w, h = options.width or 640, options.height or 480
    fps = options.fps or 30.0
    scene = SyntheticScene(w, h, seed=options.synthetic_seed, fps=fps)
    counter = iter(range(1 << 62))

    def read() -> tuple[np.ndarray, Detections | None]:
        f = scene.frame(next(counter))
        truth = Detections(f.boxes, np.ones(len(f.boxes), np.float32), f.class_ids, f.track_ids)
        return f.image, truth

    if options.realtime:
        src: Source = LatestFrameSource(
            "synthetic", lambda: read, options, pace=1.0 / fps, reconnect=False
        )
    else:
        src = SequentialSource("synthetic", read, fps)
    src.fps = fps
    return src


def _video_file(path: Path, options: SourceOptions) -> Source:
    cap = _Capture(str(path), options, f"video {path}")
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
    return src


def _live_capture(target: int | str, what: str, options: SourceOptions) -> Source:
    cap = _Capture(target, options, what)

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


def yolo_label_path(image: Path) -> Path | None:
    """The YOLO label file of an image in an `images/` folder (`.../labels/<same path>.txt`)."""
    parts = image.parts
    if "images" not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index("images")
    return Path(*parts[:i], "labels", *parts[i + 1 :]).with_suffix(".txt")


def read_yolo_truth(label: Path, width: int, height: int) -> Detections | None:
    """Ground truth from a YOLO label file (class cx cy w h, normalised); None if unreadable."""
    try:
        rows = [
            line.split() for line in label.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        vals = np.array(
            [[float(v) for v in r[:5]] for r in rows if len(r) >= 5], np.float64
        ).reshape(-1, 5)
    except (OSError, ValueError, UnicodeDecodeError):
        log.warning("%s: unreadable label file ignored", label)
        return None
    cx, cy, w, h = vals[:, 1] * width, vals[:, 2] * height, vals[:, 3] * width, vals[:, 4] * height
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return Detections(boxes, np.ones(len(vals), np.float32), vals[:, 0].astype(np.int64))


def _images(paths: list[Path], name: str) -> Source:
    it = iter(paths)

    def read() -> tuple[np.ndarray, Detections | None] | None:
        for p in it:
            img = _read_image(p)
            if img is not None and img.size:
                label = yolo_label_path(p)
                truth = None
                if label is not None and label.is_file():
                    truth = read_yolo_truth(label, img.shape[1], img.shape[0])
                return img, truth
            src.stats.bad += 1
            log.warning("%s: unreadable image skipped", p)
        return None

    src = SequentialSource(name, read, None)
    src.image_paths = paths  # type: ignore[attr-defined]
    return src


def _read_image(path: Path) -> np.ndarray | None:
    """cv2.imread, but None for a JPEG cut short, which libjpeg would decode padded with grey."""
    if path.suffix.lower() in (".jpg", ".jpeg"):
        try:
            with open(path, "rb") as fh:
                fh.seek(max(path.stat().st_size - 64, 0))
                if b"\xff\xd9" not in fh.read():  # no end-of-image marker near the end
                    return None
        except OSError:
            return None
    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def _ms(seconds: float | None) -> int:
    return STREAM_TIMEOUT_MS if seconds is None else max(int(seconds * 1000), 1)


def hold_special_file(path: Path, options: SourceOptions) -> tuple[int, ...]:
    """Refuse a device or socket that is not a camera; for a FIFO, wait at most the open timeout
    for its writer's first bytes (a plain open would block forever with no writer).

    Returns descriptors to close once the capture has opened the FIFO: a reader (the data already
    sent stays in the pipe) and a writer (the capture's blocking open returns even when the real
    writer has already finished). Empty for a regular file or a camera device.
    """
    mode = os.stat(path).st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return ()
    if stat.S_ISCHR(mode) and path.name.startswith("video"):
        return ()  # a V4L2 camera node (/dev/video0): OpenCV opens it as a camera
    if not stat.S_ISFIFO(mode) or not hasattr(select, "poll"):
        raise SourceError(
            f"--source {path}: a device or socket, not a video, camera or FIFO "
            "(give a camera index, a file, a FIFO or a URL)"
        )
    timeout = options.open_timeout_s or STREAM_TIMEOUT_MS / 1000
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # returns at once, writer or not
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if not poller.poll(int(timeout * 1000)):
        os.close(fd)
        raise SourceError(
            f"--source {path}: FIFO with no data after {timeout:g} s (is its writer running? "
            "--open-timeout waits longer)"
        )
    return (fd, os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def open_source(spec: str, options: SourceOptions | None = None) -> Source:
    """Open `spec`: "synthetic", a camera index ("0"), a URL, a video, an image, a folder or a glob.

    Raises:
        SourceError: the source does not exist or cannot be opened/read.
        ValueError: the options are invalid.
    """
    options = options or SourceOptions()
    spec = spec.strip()
    if not spec:
        raise SourceError("--source is empty")
    if spec == "synthetic":
        return _synthetic(spec, options)
    if spec.isdigit():
        return _live_capture(int(spec), f"camera {spec}", options)
    if spec.lower().startswith(URL_PREFIXES):
        return _live_capture(spec, f"stream {spec}", options)
    if any(ch in spec for ch in "*?["):
        paths = sorted(Path(p) for p in glob.glob(spec) if Path(p).suffix.lower() in IMAGE_EXTS)
        if not paths:
            raise SourceError(f"--source {spec}: no images match this pattern")
        return _images(paths, spec)
    path = Path(spec)
    if path.is_dir():
        paths = list_images(path)
        if not paths:
            raise SourceError(f"--source {spec}: folder has no images ({', '.join(IMAGE_EXTS)})")
        return _images(paths, path.name or spec)
    if not path.exists():
        raise SourceError(f"--source {spec}: no such file, folder, camera index or URL")
    if path.suffix.lower() in IMAGE_EXTS:
        if _read_image(path) is None:
            raise SourceError(f"--source {spec}: unreadable image")
        return _images([path], path.name)
    held = hold_special_file(path, options)
    try:
        return _video_file(path, options)
    finally:
        for fd in held:
            os.close(fd)
