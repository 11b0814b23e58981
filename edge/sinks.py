"""Where results go: a window, a video file, a JSONL file. Each is a context manager with `write`.

Files are written under a temporary name and renamed into place on close, so an interrupted run
leaves a complete, playable video and a parseable JSONL, never a half-written file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.observe import FrameResult, Observer
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


class Display(Sink):
    """An OpenCV window; q or Esc stops the run."""

    needs_image = True

    def __init__(self, title: str = "edge") -> None:
        self.title = title
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


def _partial(path: Path) -> Path:
    # Keep the real extension last: the video backend picks the container from it.
    return path.with_name(f".{path.stem}.partial{path.suffix}")


class VideoFile(Sink):
    """Annotated frames to a video file (mp4v for .mp4, MJPG for .avi), opened at the first frame."""

    needs_image = True

    def __init__(self, path: str | Path, fps: float | None) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".avi", ".mkv", ".mov"):
            raise ValueError(f"--save {path}: use a .mp4, .avi, .mkv or .mov file name")
        if not self.path.parent.exists():
            raise ValueError(f"--save {path}: folder {self.path.parent} does not exist")
        self.fps = fps if fps and fps > 0 else 30.0
        self._tmp = _partial(self.path)
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, frame: Frame, detections: Detections, annotated: np.ndarray | None) -> bool:
        img = annotated if annotated is not None else frame.image
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(
                *("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v")
            )
            h, w = img.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise EdgeError(f"--save {self.path}: cannot write video (codec unavailable?)")
            self._size = (w, h)
        if (img.shape[1], img.shape[0]) != self._size:
            img = cv2.resize(img, self._size)
        self._writer.write(img)
        self.frames += 1
        return True

    def close(self) -> None:
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        os.replace(self._tmp, self.path)


class JsonlDetections(Sink):
    """One JSON line per frame: index, capture time and each detection (box, score, class, name)."""

    needs_image = False

    def __init__(self, path: str | Path, names: Sequence[str]) -> None:
        self.path = Path(path)
        if not self.path.parent.exists():
            raise ValueError(f"--jsonl {path}: folder {self.path.parent} does not exist")
        self.names = list(names)
        self._tmp = self.path.with_name(f".{self.path.name}.partial")
        self._fh = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115
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
        self._fh.write(json.dumps(row, separators=(",", ":")) + "\n")
        return True

    def close(self) -> None:
        if self._fh.closed:
            return
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self.path)
