"""Where results go: a window, a video file, a JSONL file. Each is a context manager with `write`.

Files follow the output policy of `edge.outputs.files`: written under a temporary name, checked on close
(the video re-opened and its frames counted, every JSONL line parsed) and only then renamed into
place, so an interrupted run leaves a complete file and a failed one (disk full) leaves none.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.outputs import files
from edge.outputs.group import OutputGroup
from edge.runtime.abort import finishing
from edge.runtime.observe import FrameResult, Observer
from edge.types import Detections, Frame


class Sink(Observer):
    """An observer that writes frames: `write(frame, detections, annotated)`; False asks to stop.

    Its time is counted in the frame's "sink" stage (`needs_timing` False).
    """

    needs_image = True

    def on_frame(self, result: FrameResult) -> bool | None:
        return self.write(result.frame, result.detections, result.image)

    def write(self, frame: Frame, detections: Detections, annotated: np.ndarray | None) -> bool:
        raise NotImplementedError

    def __enter__(self) -> Sink:
        return self


# Opens and closes one window; a display that is gone (or none, or a headless OpenCV) makes
# OpenCV's Qt abort the whole process, so this runs in a child process first.
_WINDOW_PROBE = (
    "import cv2, sys\n"
    "try:\n"
    "    cv2.namedWindow('edge', cv2.WINDOW_NORMAL); cv2.waitKey(1)\n"
    "    cv2.destroyAllWindows(); cv2.waitKey(1)\n"
    "except cv2.error as exc:\n"
    "    print(exc.msg.strip().splitlines()[-1], file=sys.stderr); sys.exit(3)\n"
)


@functools.lru_cache(maxsize=1)
def window_problem(timeout_s: float = 20.0) -> str:
    """'' when an OpenCV window really opens here, else why not, in a few words. Asked once per
    process, in a child process: where OpenCV cannot reach a display it aborts the process."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _WINDOW_PROBE],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"opening a window did not finish in {timeout_s:g} s"
    except OSError as exc:
        return f"no probe process ({exc.strerror})"
    if done.returncode == 0:
        return ""
    said = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
    first = re.sub(r"^qt\.[\w.]+: ", "", said[0])[:120] if said else ""  # Qt's log category
    how = "aborted" if done.returncode < 0 else f"exited with code {done.returncode}"
    if done.returncode == 3 and first:
        return first  # OpenCV's own words (a build without a GUI)
    return f"OpenCV's window system {how}" + (f": {first}" if first else "")


class Display(Sink):
    """An OpenCV window; q or Esc stops the run. Refused (EdgeError) where no window opens."""

    needs_image = True

    def __init__(self, title: str = "edge") -> None:
        self.title = title
        problem = window_problem()
        if problem:
            raise EdgeError(
                f"--show: cannot open a window ({problem}); run headless with --no-show"
            )
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise EdgeError(
                f"--show: cannot open a window ({exc.msg.strip()}); run headless with --no-show"
            ) from None

    def write(self, frame: Frame, detections: Detections, annotated: np.ndarray | None) -> bool:
        cv2.imshow(self.title, annotated if annotated is not None else frame.image)
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27)

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass


class VideoFile(Sink):
    """Annotated frames to a video file (mp4v for .mp4, MJPG for .avi), opened at the first frame."""

    needs_image = True

    def __init__(
        self, path: str | Path, fps: float | None, group: OutputGroup | None = None
    ) -> None:
        self.path, self.group = Path(path), group  # with a group: committed with its other files
        if self.path.suffix.lower() not in (".mp4", ".avi", ".mkv", ".mov"):
            raise ValueError(f"--save {path}: use a .mp4, .avi, .mkv or .mov file name")
        files.check_target("--save", self.path)
        self.fps = fps if fps and fps > 0 else 30.0
        self._tmp: Path | None = None
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, frame: Frame, detections: Detections, annotated: np.ndarray | None) -> bool:
        img = annotated if annotated is not None else frame.image
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(
                *("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v")
            )
            h, w = img.shape[:2]
            try:
                self._tmp = files.temp_path(self.path)
            except OSError as exc:
                raise files.os_error("--save", self.path, exc) from None
            self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                self.discard()
                raise EdgeError(f"--save {self.path}: cannot write video (codec unavailable?)")
            self._size = (w, h)
        if (img.shape[1], img.shape[0]) != self._size:
            img = cv2.resize(img, self._size)
        self._writer.write(img)
        self.frames += 1
        return True

    def close(self) -> None:
        """Finish the video; it is renamed into place only if every frame reads back."""
        if self._writer is None:
            return
        with finishing():  # an abort (a second Ctrl-C) waits for the index to be written
            self._writer.release()
            self._writer = None
            tmp, self._tmp = self._tmp, None
            if self.group is not None:
                self.group.adopt(tmp, self.path, "--save", files.video_check(self.frames))
            else:
                files.commit(tmp, self.path, "--save", files.video_check(self.frames))

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        files.discard(self._tmp)
        self._tmp = None


class JsonlDetections(Sink):
    """One JSON line per frame: index, capture time and each detection (box, score, class, name).

    `-` writes the lines to stdout (flushed per frame) for a pipe.
    """

    needs_image = False

    def __init__(self, path: str | Path, names: Sequence[str], stdout: object = None) -> None:
        self.path = Path(path)
        files.check_target("--jsonl", path, stdout_ok=True)
        self.names = list(names)
        self._tmp: Path | None = None
        if str(path) == files.STDOUT:
            self._fh = stdout or sys.stdout
        else:
            try:
                self._tmp = files.temp_path(self.path)
                self._fh = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                files.discard(self._tmp)
                raise files.os_error("--jsonl", self.path, exc) from None
        self._t0: int | None = None

    def write(self, frame: Frame, detections: Detections, annotated: np.ndarray | None) -> bool:
        if self._t0 is None:
            self._t0 = frame.captured_ns
        dets = [
            {
                "box": [round(float(v), 1) for v in box],
                "score": round(float(s), 4),
                "class_id": int(c),
                "class": self.names[c] if 0 <= c < len(self.names) else str(c),
                **({"track_id": int(t)} if t >= 0 else {}),
            }
            for box, s, c, t in zip(
                detections.xyxy,
                detections.score,
                detections.class_id,
                detections.track_id,
                strict=True,
            )
        ]
        row = {
            "frame": frame.index,
            "source": frame.source_id,
            **({"name": frame.name} if frame.name else {}),
            "t_ms": round((frame.captured_ns - self._t0) / 1e6, 3),
            "detections": dets,
        }
        try:
            self._fh.write(json.dumps(row, separators=(",", ":")) + "\n")
            if self._tmp is None:
                self._fh.flush()  # a pipe reader wants each frame as it comes
        except OSError as exc:
            self.discard()
            raise files.os_error("--jsonl", self.path, exc) from None
        return True

    def close(self) -> None:
        """Flush, check every line and rename into place (stdout: just flush)."""
        if self._tmp is None:
            if not self._fh.closed:
                self._fh.flush()
            return
        if self._fh.closed:
            return
        try:
            self._fh.close()
        except OSError as exc:
            self.discard()
            raise files.os_error("--jsonl", self.path, exc) from None
        tmp, self._tmp = self._tmp, None
        files.commit(tmp, self.path, "--jsonl", files.check_jsonl)

    def discard(self) -> None:
        if self._tmp is None:
            return
        with contextlib.suppress(OSError):  # the disk already failed
            self._fh.close()
        files.discard(self._tmp)
        self._tmp = None
