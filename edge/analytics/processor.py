"""`Analytics`: the per-frame processor of a run. Counts each stream's lines and zones, writes and
delivers the events, draws the counts, and reports them (table, Prometheus, error against truth)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence

import numpy as np

from edge.analytics.count_report import prometheus, summary_table
from edge.analytics.counting import RegionOptions, StreamCounter
from edge.analytics.events import Event, EventLog
from edge.analytics.overlay import draw_regions, draw_regions_into
from edge.types import Detections, Frame

log = logging.getLogger(__name__)


class Analytics:
    """Lines and zones per stream: `regions[stream_id]`, else `default` (None: the stream has none).

    `outputs` are the event receivers (EventLog, Webhook, Mqtt: anything with `send(events,
    occupancy)` or `write(events)`, and `close()`); `snapshots` crops each event's object.
    With `score_truth`, frames that carry truth with identities (the synthetic scene) are counted
    a second time from the true objects, and the summary states the counting error.
    """

    def __init__(
        self,
        regions: Mapping[str, RegionOptions] | None = None,
        default: RegionOptions | None = None,
        names: Sequence[str] = (),
        outputs: Sequence[object] = (),
        snapshots: object | None = None,
        score_truth: bool = True,
        fps: Mapping[str, float] | None = None,
    ) -> None:
        self.regions, self.default = dict(regions or {}), default
        self.names, self.outputs, self.snapshots = tuple(names), list(outputs), snapshots
        self.score_truth = score_truth
        self.fps = dict(fps or {})
        self.counters: dict[str, StreamCounter] = {}
        self.truth: dict[str, StreamCounter] = {}
        self.events = 0
        self._warned = False
        # The loop's finishing thread counts while the web server's threads read (/metrics).
        self._lock = threading.RLock()

    def counter(self, stream: str) -> StreamCounter | None:
        c = self.counters.get(stream)
        if c is None:
            options = self.regions.get(stream, self.default)
            if options is None:
                return None
            c = self.counters[stream] = StreamCounter(options, stream, self.names)
        return c

    def process(self, result: object) -> None:
        """The loop's processor hook: count a `FrameResult`, attach its events (as dicts with
        "event" set to the kind) and the drawing of the stream's regions and counts."""
        stream = result.stream  # type: ignore[attr-defined]
        dets = result.detections  # type: ignore[attr-defined]
        if not self._warned and len(dets) and not (dets.track_id >= 0).any():
            self._warned = True
            log.warning("lines and zones count tracked objects: turn tracking on (--track)")
        events = self.update(result.frame, result.detections, stream=stream)  # type: ignore[attr-defined]
        result.events.extend({"event": e.kind, **e.to_dict()} for e in events)  # type: ignore[attr-defined]
        c = self.counters.get(stream)
        if c is not None:
            result.overlay.append(lambda image, c=c: self._draw_into(image, c))  # type: ignore[attr-defined]

    def update(
        self,
        frame: Frame,
        detections: Detections,
        t: float | None = None,
        stream: str | None = None,
    ) -> list[Event]:
        """This frame's events (delivered and written already). `t` is the stream's clock in
        seconds: by default the frame index over the stream's `fps` when known (a file, the
        synthetic scene: dwell in video time), else the capture time. `stream` defaults to the
        frame's source id."""
        with self._lock:
            return self._update(frame, detections, t, frame.source_id if stream is None else stream)

    def _update(
        self, frame: Frame, detections: Detections, t: float | None, stream: str
    ) -> list[Event]:
        c = self.counter(stream)
        if c is None:
            return []
        if t is None:
            fps = self.fps.get(stream)
            t = frame.index / fps if fps else frame.captured_ns / 1e9
        h, w = frame.image.shape[:2]
        events = c.update(detections, frame.index, t, (w, h))
        if self.score_truth and frame.truth is not None and np.all(frame.truth.track_id >= 0):
            if stream not in self.truth:
                self.truth[stream] = StreamCounter(c.options, c.stream, self.names)
            self.truth[stream].update(frame.truth, frame.index, t, (w, h))
        if not events:
            return events
        if self.snapshots is not None:
            events = self.snapshots.take(frame.image, events)  # type: ignore[attr-defined]
        self.events += len(events)
        occupancy = {
            (c.stream, zone): {_cls(c, cid): n for cid, n in by.items()}
            for zone, by in c.occupancy.items()
        }
        for out in self.outputs:
            if hasattr(out, "send"):
                out.send(events, occupancy)
            else:
                out.write(events)  # type: ignore[attr-defined]
        return events

    def _draw_into(self, image: np.ndarray, c: StreamCounter) -> None:
        with self._lock:
            draw_regions_into(image, c)

    def draw(self, image: np.ndarray, stream: str) -> np.ndarray:
        """A new image with the stream's lines, zones and counts (the image itself when none)."""
        c = self.counter(stream)
        return image if c is None else draw_regions(image, c)

    def delivery(self) -> dict[str, object]:
        named = {type(o).__name__.lower(): o for o in [*self.outputs, self.snapshots] if o}
        return {k: o.stats for k, o in named.items() if hasattr(o, "stats")}  # type: ignore[attr-defined]

    def metrics(self) -> str:
        with self._lock:
            return prometheus(self.counters, self.delivery())

    def summary(self) -> str:
        with self._lock:
            lines = [summary_table(self.counters, self.truth or None)]
        for sink, s in self.delivery().items():
            lines.append(s.line(sink))  # type: ignore[attr-defined]
        return "\n".join(lines)

    def close(self) -> None:
        """Flush and close every output (the event file is renamed into place)."""
        for out in [self.snapshots, *self.outputs]:
            if out is not None:
                out.close()  # type: ignore[attr-defined]

    def __enter__(self) -> Analytics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cls(c: StreamCounter, cid: int) -> str:
    return c.names[cid] if 0 <= cid < len(c.names) else str(cid)


__all__ = ["Analytics", "EventLog", "RegionOptions"]
