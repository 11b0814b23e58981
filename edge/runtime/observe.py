"""What a finished frame is (`FrameResult`) and the two ways code receives it.

`Processor`s run first, in order, in the loop's finishing thread, after post-processing and
tracking and before drawing: each may attach events to the result and add to its drawing. Then
every `Observer` (video/JSONL/window sinks, the telemetry file, the trace, the live page) receives
the result through one method, `on_frame`. What an observer needs is declared on it:

    needs_image   it wants `result.image`, the drawn frame (asked per frame: a page draws only
                  while someone watches)
    needs_timing  it is called after the sink stage with `result.timing` and `result.record`
                  complete (telemetry, trace, live charts); otherwise it is called inside the
                  sink stage and its own time is counted there (video, JSONL, window)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.runtime.abort import finishing
from edge.runtime.timing import FrameRecord, FrameTiming
from edge.types import Detections, Frame

# Draws onto the annotated image in place (it is the loop's own copy of the frame).
Overlay = Callable[[np.ndarray], None]


@dataclass
class FrameResult:
    """One finished frame of one stream.

    `timing` and `record` are set once the frame is written (observers with `needs_timing` see
    them); `image` is the drawn frame when an observer asked for one; `events` are what
    processors attached (dicts with at least "event"); `overlay` what they add to the drawing.
    """

    stream: str
    frame: Frame
    detections: Detections
    events: list[dict[str, object]] = field(default_factory=list)
    overlay: list[Overlay] = field(default_factory=list)
    image: np.ndarray | None = None
    timing: FrameTiming | None = None
    record: FrameRecord | None = None


class Processor(Protocol):
    """Per-frame work between tracking and drawing (zone and line counting, for example).

    `process` runs in the finishing thread, one frame at a time in each stream's order, in the
    order the processors were given. It may append events to `result.events` (they reach every
    observer's `on_event` and the telemetry file with the stream's name added) and callables to
    `result.overlay` (drawn on the annotated image after the boxes). It must not replace
    `result.frame` or modify the frame's image.
    """

    def process(self, result: FrameResult) -> None: ...


class Observer:
    """Receives finished frames; see the module docstring for `needs_image`/`needs_timing`.

    `on_frame` returning False asks the run to stop (q in a window). Observers are context
    managers; `close` finishes their files and is safe to call twice.
    """

    needs_image: bool = False
    needs_timing: bool = False

    def on_frame(self, result: FrameResult) -> bool | None:
        return True

    def on_event(self, event: Mapping[str, object]) -> None:
        """A stream event: a source outage or reconnect, or one a processor attached."""

    def close(self) -> None:
        pass

    def discard(self) -> None:
        """Give the output up after a failed run: a file output leaves nothing under its name.
        The default closes."""
        self.close()

    def __enter__(self) -> Observer:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # A failed run (an Exception) leaves nothing; a clean stop or Ctrl-C keeps what was written
        # (an abort meanwhile waits for it).
        with finishing():
            if isinstance(exc_type, type) and issubclass(exc_type, Exception):
                self.discard()
            else:
                self.close()


class PerStream(Observer):
    """Routes each frame to its own stream's observer (a video file or a window per stream)."""

    def __init__(self, observers: Mapping[str, Observer]) -> None:
        self.observers = dict(observers)
        self.needs_timing = any(o.needs_timing for o in self.observers.values())

    @property
    def needs_image(self) -> bool:  # type: ignore[override]
        return any(o.needs_image for o in self.observers.values())

    def on_frame(self, result: FrameResult) -> bool | None:
        observer = self.observers.get(result.stream)
        return True if observer is None else observer.on_frame(result)

    def close(self) -> None:
        for observer in self.observers.values():
            observer.close()


def per_stream_path(path: Path, index: int) -> Path:
    """out.mp4 -> out.0.mp4: the file of stream `index` when one file per stream is written."""
    return path.with_name(f"{path.stem}.{index}{path.suffix}")
