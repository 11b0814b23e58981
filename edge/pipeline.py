"""The detection loop: source -> preprocess -> session -> postprocess -> sinks, every stage timed.

Inference runs in the calling thread; everything else overlaps with it. For files and folders a
reader thread decodes and letterboxes the next frames while the model runs. For live sources the
frame is taken and prepared just before inference (a prefetched live frame would only be older).
A finishing thread post-processes, draws and writes the previous frame. Queues are short and
bounded, so memory stays flat and a slow sink slows the loop instead of piling up frames.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from edge.accuracy import LiveScore
from edge.annotate import draw
from edge.postprocess import PostprocessOptions, postprocess
from edge.preprocess import Letterbox, prepare
from edge.session import ModelSession
from edge.sinks import Sink
from edge.sources import Source, SourceEvent
from edge.telemetry import Collector, FrameRecord, Rolling, TelemetryWriter
from edge.trace import FrameObserver, FrameSpans
from edge.tracking import IdentityScore, Tracker, TrackerOptions
from edge.types import Frame

log = logging.getLogger(__name__)

_END = object()  # queue sentinel


@dataclass(frozen=True)
class LoopOptions:
    """When to stop and what to draw. `max_frames`/`duration` of None mean no limit.

    `overlap` runs reading/pre-processing and post-processing/sinks in threads beside inference.
    """

    max_frames: int | None = None
    duration: float | None = None
    imgsz: tuple[int, int] | None = None
    post: PostprocessOptions = field(default_factory=PostprocessOptions)
    overlay: bool = True
    overlap: bool = True
    track: TrackerOptions | None = None  # give objects stable ids across frames

    def __post_init__(self) -> None:
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"--max-frames must be at least 1, got {self.max_frames}")
        if self.duration is not None and self.duration <= 0:
            raise ValueError(f"--duration must be positive seconds, got {self.duration}")
        if self.imgsz is not None and (len(self.imgsz) != 2 or min(self.imgsz) < 1):
            raise ValueError(f"--imgsz must be positive, got {self.imgsz}")


@dataclass
class LoopResult:
    collector: Collector
    score: LiveScore | None
    stopped_by: str  # "end", "max_frames", "duration", "signal", "sink"
    events: list[dict[str, object]] = field(default_factory=list)  # source outages, as telemetry
    identity: IdentityScore | None = None  # id switches, when tracking a source with truth


@dataclass
class _Prepared:
    frame: Frame
    tensor: np.ndarray
    letterbox: Letterbox
    wait_ns: int
    prep_ns: int
    ready_ns: int = 0
    start_ns: int = 0  # when the wait for the frame began


@dataclass
class _Inferred:
    item: _Prepared
    outputs: list[np.ndarray]
    inf_start: int
    inf_end: int
    batch_index: int = 0  # this frame's row in batched outputs
    batch: int = 1


def _ms(ns: int) -> float:
    return ns / 1e6


def _event_row(e: SourceEvent, t0: int) -> dict[str, object]:
    """A source event as a telemetry line; times in ms since the run's first capture."""
    row: dict[str, object] = {"event": e.kind, "t_ms": round(_ms(e.at_ns - t0), 3)}
    if e.since_ns is not None:
        row["outage_start_ms"] = round(_ms(e.since_ns - t0), 3)
        if e.kind != "lost":
            row["outage_ms"] = round(_ms(e.at_ns - e.since_ns), 3)
    if e.kind != "lost":
        row.update(attempts=e.attempts, frames_lost=e.frames_lost)
    row["detail"] = e.detail
    return row


def _spans(
    done: _Inferred, post_start: int, post_end: int, render_end: int, end: int
) -> FrameSpans:
    item = done.item
    got = item.start_ns + item.wait_ns
    return FrameSpans(
        item.frame.source_id,
        item.frame.index,
        item.frame.captured_ns,
        item.start_ns,
        got,
        got + item.prep_ns,
        done.inf_start,
        done.inf_end,
        post_start,
        post_end,
        render_end,
        end,
        done.batch,
    )


def frame_record(
    done: _Inferred, t0: int, marks: tuple[int, int, int, int], dropped: int, detections: int
) -> FrameRecord:
    """The telemetry of one finished frame; `marks` are the post-processing start, its end, the
    render end and the sink end (perf_counter_ns). Post-processing starts when the finishing
    thread picks the frame up: the queue wait before it counts in the latency a user sees."""
    item, frame = done.item, done.item.frame
    t_post, post_end, render_end, end = marks
    return FrameRecord(
        frame=frame.index,
        source=frame.source_id,
        t_ms=_ms(frame.captured_ns - t0),
        wait_ms=_ms(item.wait_ns),
        preprocess_ms=_ms(item.prep_ns),
        inference_ms=_ms(done.inf_end - done.inf_start),
        postprocess_ms=_ms(post_end - t_post),
        render_ms=_ms(render_end - post_end),
        sink_ms=_ms(end - render_end),
        age_ms=_ms(done.inf_start - frame.captured_ns),
        latency_ms=_ms(post_end - frame.captured_ns),
        total_ms=_ms(end - frame.captured_ns),
        dropped=dropped,
        detections=detections,
    )


def publish(
    record: FrameRecord,
    done: _Inferred,
    marks: tuple[int, int, int, int],
    telemetry: TelemetryWriter | None,
    observers: Sequence[FrameObserver],
) -> None:
    """Hand a finished frame's record to the telemetry file and its spans to the observers."""
    if telemetry is not None:
        telemetry.write(record)
    if observers:
        spans = _spans(done, *marks)
        for observer in observers:
            observer.observe(record, spans)


class _Worker(threading.Thread):
    """A thread whose exception is handed to the loop instead of being lost."""

    def __init__(self, name: str, target: object) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()  # type: ignore[operator]
        except BaseException as exc:
            self.error = exc


class Loop:
    """Runs a model over a source into sinks, recording a FrameRecord per frame.

    `stop` (a threading.Event) ends the loop after the frames in flight: set it from a signal
    handler and every sink still closes properly.
    """

    def __init__(
        self,
        session: ModelSession,
        source: Source,
        sinks: Sequence[Sink] = (),
        options: LoopOptions | None = None,
        telemetry: TelemetryWriter | None = None,
        stop: threading.Event | None = None,
        observers: Sequence[FrameObserver] = (),
    ) -> None:
        self.session, self.source, self.sinks = session, source, list(sinks)
        self.options = options or LoopOptions()
        self.telemetry = telemetry
        self.stop = stop or threading.Event()
        self.imgsz = session.input_size(self.options.imgsz)
        self.rolling = Rolling()
        self.observers = list(observers)
        self._tracker = Tracker(self.options.track) if self.options.track else None
        self._identity: IdentityScore | None = None
        self._collector = Collector()
        self._score: LiveScore | None = None
        self._t0: int | None = None
        self._sink_stop = threading.Event()
        self._halt = threading.Event()  # tells the prefetcher to quit
        self._events: list[dict[str, object]] = []
        self._events_lock = threading.Lock()
        self._started_ns = time.perf_counter_ns()

    # --- stage 1: frames in, tensors out -------------------------------------------------------

    def _prepared(self) -> Iterator[_Prepared]:
        contract = self.session.contract
        frames = iter(self.source)
        while True:
            wait_start = time.perf_counter_ns()
            frame = next(frames, None)
            if frame is None:
                return
            got = time.perf_counter_ns()
            tensor, lb = prepare(frame.image, contract, self.imgsz)
            prep_ns = time.perf_counter_ns() - got
            yield _Prepared(frame, tensor, lb, got - wait_start, prep_ns, start_ns=wait_start)

    def _prefetch(self, out: queue.Queue) -> None:
        try:
            for item in self._prepared():
                item.ready_ns = time.perf_counter_ns()
                while not self._halt.is_set():
                    try:
                        out.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._halt.is_set():
                    return
        finally:
            with contextlib.suppress(queue.Full):  # full: the loop has stopped reading
                out.put(_END, timeout=1)

    # --- stage 3: outputs in, results out ------------------------------------------------------

    def _finish(self, done: _Inferred) -> bool:
        o, contract = self.options, self.session.contract
        item, frame = done.item, done.item.frame
        t_post = time.perf_counter_ns()
        dets = postprocess(done.outputs, contract, item.letterbox, o.post, done.batch_index)
        if self._tracker is not None:
            dets = self._tracker.update(dets)
            if frame.truth is not None:
                self._identity = self._identity or IdentityScore()
                self._identity.add(dets, frame.truth)
        post_end = time.perf_counter_ns()
        if frame.truth is not None:
            self._score = self._score or LiveScore()
            self._score.add(dets, frame.truth)
        annotated = None
        if self._needs_image():
            overlay = self._overlay() if o.overlay else ()
            annotated = draw(frame.image, dets, contract.names, overlay)
        render_end = time.perf_counter_ns()
        keep_going = all([sink.write(frame, dets, annotated) for sink in self.sinks])
        end = time.perf_counter_ns()
        if self._t0 is None:
            self._t0 = frame.captured_ns
        record = frame_record(
            done,
            self._t0,
            (t_post, post_end, render_end, end),
            self.source.stats.dropped,
            len(dets),
        )
        self._collector.add(record)
        self.rolling.add(end, record.latency_ms)
        publish(record, done, (t_post, post_end, render_end, end), self.telemetry, self.observers)
        return keep_going

    def _finisher(self, inbox: queue.Queue) -> None:
        while True:
            done = inbox.get()
            if done is _END:
                return
            if not self._finish(done):
                self._sink_stop.set()

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> LoopResult:
        o = self.options
        deadline = None if o.duration is None else time.perf_counter_ns() + int(o.duration * 1e9)
        workers: list[_Worker] = []
        if o.overlap and not self.source.live:
            ready: queue.Queue = queue.Queue(maxsize=2)
            workers.append(_Worker("prefetch", lambda: self._prefetch(ready)))
            items = iter(ready.get, _END)
        else:
            items = self._prepared()
        finish_q: queue.Queue | None = queue.Queue(maxsize=2) if o.overlap else None
        if finish_q is not None:
            workers.append(_Worker("finish", lambda: self._finisher(finish_q)))
        for w in workers:
            w.start()
        submitted = 0
        stopped_by = "end"

        def stalled() -> bool:  # a live source has had no frame for a while (an outage)
            self._source_events()
            late = deadline is not None and time.perf_counter_ns() >= deadline
            return self.stop.is_set() or late

        self.source.on_stall = stalled
        try:
            for item in items:
                inf_start = time.perf_counter_ns()
                outputs = self.session.run(item.tensor)
                done = _Inferred(item, outputs, inf_start, time.perf_counter_ns())
                submitted += 1
                if finish_q is not None:
                    self._put(finish_q, done, workers)
                elif not self._finish(done):
                    self._sink_stop.set()
                if self._sink_stop.is_set():
                    stopped_by = "sink"
                elif self.stop.is_set():
                    stopped_by = "signal"
                elif o.max_frames is not None and submitted >= o.max_frames:
                    stopped_by = "max_frames"
                elif deadline is not None and time.perf_counter_ns() >= deadline:
                    stopped_by = "duration"
                self._source_events()
                if stopped_by != "end":
                    break
            else:  # the source ended, or a stalled live source was told to stop waiting
                if self.stop.is_set():
                    stopped_by = "signal"
                elif deadline is not None and time.perf_counter_ns() >= deadline:
                    stopped_by = "duration"
        finally:
            self._halt.set()
            # A finisher that died on an error leaves its queue full: a plain put() would hang.
            while finish_q is not None and workers[-1].is_alive():
                with contextlib.suppress(queue.Full):
                    finish_q.put(_END, timeout=0.1)
                    break
            for w in workers:
                w.join(timeout=30)
            self._drain(workers)
            self._source_events()
        return LoopResult(self._collector, self._score, stopped_by, self._events, self._identity)

    def _source_events(self) -> None:
        """New source events (outages) as rows: into the telemetry file and the result."""
        with self._events_lock:
            t0 = self._t0 if self._t0 is not None else self._started_ns
            for event in self.source.stats.events[len(self._events) :]:
                self._events.append(_event_row(event, t0))
                if self.telemetry is not None:
                    self.telemetry.write_event(self._events[-1])

    def _needs_image(self) -> bool:
        # Asked per frame: a sink may want images only at times (a web page with a viewer).
        return any(getattr(s, "needs_image", True) for s in self.sinks)

    def _put(self, q: queue.Queue, item: object, workers: list[_Worker]) -> None:
        while True:
            try:
                q.put(item, timeout=0.5)
                return
            except queue.Full:
                self._drain(workers)

    @staticmethod
    def _drain(workers: list[_Worker]) -> None:
        for w in workers:
            if w.error is not None:
                raise w.error

    def _overlay(self) -> list[str]:
        lines = [
            f"{self.rolling.fps:5.1f} FPS  {self.rolling.latency_ms:5.1f} ms  {self.session.device}"
        ]
        if self.source.stats.dropped:
            lines.append(f"dropped {self.source.stats.dropped}")
        score = self._score
        if score is not None and score.frames:
            lines.append(f"P {score.precision:.2f}  R {score.recall:.2f}")
        return lines
