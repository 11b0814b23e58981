"""`open_source(spec)`: which kind of source a spec names, opened."""

from __future__ import annotations

import glob
import os
import re
import select
import stat
from pathlib import Path

import numpy as np

from edge.errors import SourceError, check_regular
from edge.sources import capture
from edge.sources.base import SequentialSource, Source, SourceOptions
from edge.sources.capture import live_capture, video_file
from edge.sources.images import image_source, read_image
from edge.sources.labels import IMAGE_SUFFIXES, is_image, list_images
from edge.sources.latest import LatestFrameSource
from edge.types import Detections

URL_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
# Camera indexes OpenCV can take: its API takes a C int, and V4L2 numbers devices below 1024.
MAX_CAMERA_INDEX = 1023


def synthetic(spec: str, options: SourceOptions) -> Source:
    from edge.sources.synthetic import SyntheticScene

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
        return synthetic(spec, options)
    if re.fullmatch(r"[0-9]+", spec) or re.fullmatch(r"-[0-9]+", spec) and not Path(spec).exists():
        index = int(spec)
        if not 0 <= index <= MAX_CAMERA_INDEX:
            raise SourceError(
                f"--source {spec}: camera index out of range 0..{MAX_CAMERA_INDEX} "
                "(`edge info --cameras N` lists the cameras)"
            )
        return live_capture(index, f"camera {spec}", options)
    if spec.lower().startswith(URL_PREFIXES):
        return live_capture(spec, f"stream {spec}", options)
    if any(ch in spec for ch in "*?["):
        paths = sorted(Path(p) for p in glob.glob(spec) if is_image(Path(p)))
        if not paths:
            raise SourceError(f"--source {spec}: no images match this pattern")
        return image_source(paths, spec)
    path = Path(spec)
    if path.is_dir():
        paths = list_images(path)
        if not paths:
            raise SourceError(
                f"--source {spec}: folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        return image_source(paths, path.name or spec)
    if not path.exists():
        raise SourceError(f"--source {spec}: no such file, folder, camera index or URL")
    if is_image(path):
        check_regular(path, f"--source {spec}", SourceError)  # a FIFO would block the read
        if read_image(path) is None:
            raise SourceError(f"--source {spec}: unreadable image")
        return image_source([path], path.name)
    held = hold_special_file(path, options)
    try:
        return video_file(path, options)
    finally:
        for fd in held:
            os.close(fd)


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
    timeout = options.open_timeout_s or capture.STREAM_TIMEOUT_MS / 1000
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
