"""Several sources in one run: a capture thread per source, their frames batched into one call.

Each source has a reader thread that takes its frames and letterboxes them into a short per-stream
queue (one frame for live sources, whose own reader keeps only the newest; two for files, read in
order without drops). The calling thread collects at most one frame per stream: when the model's
batch dimension is dynamic it waits up to `batch_wait_ms` after the first frame for the other
streams, then runs them all in one inference call; otherwise it runs one frame per call, taking
the streams in turn. A finishing thread post-processes, tracks, draws and writes each frame with
its own stream's state (rolling FPS, live accuracy, tracker, overlay) and telemetry record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.accuracy import LiveScore
from edge.annotate import draw
from edge.pipeline import (
    _END,
    LoopOptions,
    _Inferred,
    _Prepared,
    _Worker,
    frame_record,
    publish,
)
from edge.postprocess import postprocess
from edge.preprocess import prepare
from edge.session import ModelSession
from edge.sinks import Sink
from edge.sources import Source
from edge.telemetry import Collector, Rolling, TelemetryWriter
from edge.trace import FrameObserver
from edge.tracking import IdentityScore, Tracker
from edge.types import Detections, Frame


def batch_capacity(session: ModelSession) -> int | None:
    """Frames one inference call takes: None when the batch dimension is dynamic."""
    dim = session.input_shape[0] if session.input_shape else 1
    return dim if isinstance(dim, int) and dim > 0 else None


def stream_ids(names: Sequence[str]) -> list[str]:
    """Unique stream names: a name given more than once gets ' #<index>' on every use."""
    seen = Counter(names)
    return [f"{n} #{i}" if seen[n] > 1 else n for i, n in enumerate(names)]


def per_source_path(path: Path, index: int) -> Path:
    """out.mp4 -> out.0.mp4: the file of stream `index` when one file per stream is written."""
    return path.with_name(f"{path.stem}.{index}{path.suffix}")


class PerSource(Sink):
    """Routes each frame to its own stream's sink (a video file or a window per stream)."""

    def __init__(self, sinks: dict[str, Sink]) -> None:
        self.sinks = dict(sinks)

    @property
    def needs_image(self) -> bool:
        return any(getattr(s, "needs_image", True) for s in self.sinks.values())

    def write(self, frame: Frame, detections: Detections, annotated: np.ndarray | None) -> bool:
        sink = self.sinks.get(frame.source_id)
        return True if sink is None else sink.write(frame, detections, annotated)

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.close()


@dataclass
class StreamResult:
    """One stream's share of a run."""

    source: Source
    collector: Collector = field(default_factory=Collector)
    score: LiveScore | None = None
    identity: IdentityScore | None = None
    rolling: Rolling = field(default_factory=Rolling)
    tracker: Tracker | None = None
    frames_read: int = 0
    hit_limit: bool = False


@dataclass
class MultiResult:
    collector: Collector  # every stream's frames together
    streams: dict[str, StreamResult]
    stopped_by: str  # "end", "max_frames" (every stream reached it), "duration", "signal", "sink"
    batch_sizes: Counter = field(default_factory=Counter)  # frames per inference call -> calls


class _Inbox:
    """Per-stream bounded queues under one condition: readers put, the batcher takes."""

    def __init__(self, capacities: Sequence[int]) -> None:
        self._cond = threading.Condition()
        self._queues: list[deque[_Prepared]] = [deque() for _ in capacities]
        self._caps = list(capacities)
        self._open = [True] * len(capacities)
        self._halted = False
        self._last = [0.0] * len(capacities)  # when each stream last delivered (monotonic s)
        self._gap = [0.0] * len(capacities)  # its smoothed time between frames; 0: unknown

    def put(self, i: int, item: _Prepared) -> bool:
        """Blocks while stream i's queue is full; False once halted."""
        with self._cond:
            while len(self._queues[i]) >= self._caps[i] and not self._halted:
                self._cond.wait(0.1)
            if self._halted:
                return False
            now = time.monotonic()
            if self._last[i]:
                gap = now - self._last[i]
                self._gap[i] = 0.8 * self._gap[i] + 0.2 * gap if self._gap[i] else gap
            self._last[i] = now
            self._queues[i].append(item)
            self._cond.notify_all()
            return True

    def finish(self, i: int) -> None:
        with self._cond:
            self._open[i] = False
            self._cond.notify_all()

    @property
    def halted(self) -> bool:
        return self._halted

    def halt(self) -> None:
        with self._cond:
            self._halted = True
            self._cond.notify_all()

    def take(self, most: int, wait_s: float, start: int, poll_s: float = 0.1) -> list | None:
        """[(stream, item)]: up to `most` items, one per stream that has one, from stream `start` on.

        With `most` > 1, after the first item it waits up to `wait_s` for the other open streams
        whose next frame is due by then (a batch); a stream out of step with the others is not
        waited for. [] when nothing came within `poll_s`; None when every stream has ended.
        """
        n = len(self._queues)
        with self._cond:
            if not any(self._queues):
                if not any(self._open):
                    return None
                self._cond.wait(poll_s)
                if not any(self._queues):
                    return None if not any(self._open) else []
            if most > 1:
                deadline = time.monotonic() + wait_s
                while self._due(deadline):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            order = [(start + k) % n for k in range(n)]
            ready = [i for i in order if self._queues[i]]
            taken = [(i, self._queues[i].popleft()) for i in ready[:most]]
            self._cond.notify_all()
            return taken

    def _due(self, deadline: float) -> list[int]:
        """Open streams with nothing queued whose next frame should come before `deadline`."""
        return [
            i
            for i, (is_open, q) in enumerate(zip(self._open, self._queues, strict=True))
            if is_open and not q and (not self._gap[i] or self._last[i] + self._gap[i] <= deadline)
        ]


class MultiLoop:
    """Runs one model over several sources into shared sinks; see the module docstring.

    `options.max_frames` counts per stream. `batch_wait_ms` bounds how long a frame waits for the
    other streams' frames before its batch runs without them.
    """

    def __init__(
        self,
        session: ModelSession,
        sources: Sequence[Source],
        sinks: Sequence[Sink] = (),
        options: LoopOptions | None = None,
        telemetry: TelemetryWriter | None = None,
        stop: threading.Event | None = None,
        observers: Sequence[FrameObserver] = (),
        batch_wait_ms: float = 5.0,
        ids: Sequence[str] | None = None,
        batch: bool = True,
    ) -> None:
        if not sources:
            raise ValueError("MultiLoop needs at least one source")
        if batch_wait_ms < 0:
            raise ValueError(f"--batch-wait-ms must be >= 0, got {batch_wait_ms}")
        self.session, self.sinks = session, list(sinks)
        self.options = options or LoopOptions()
        self.telemetry, self.observers = telemetry, list(observers)
        self.stop = stop or threading.Event()
        self.batch_wait_s = batch_wait_ms / 1000
        self.ids = list(ids or stream_ids([s.name for s in sources]))
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"stream ids must be unique, got {self.ids}")
        self.sources = list(sources)
        self.imgsz = session.input_size(self.options.imgsz)
        self.capacity = batch_capacity(session)
        self.batched = batch and self.capacity != 1
        self.most = (self.capacity or len(self.sources)) if self.batched else 1
        track = self.options.track
        self.streams = {
            sid: StreamResult(src, tracker=Tracker(track) if track else None)
            for sid, src in zip(self.ids, self.sources, strict=True)
        }
        self._inbox = _Inbox([1 if s.live else 2 for s in self.sources])
        self._collector = Collector()
        self._batches: Counter = Counter()
        self._sink_stop = threading.Event()
        self._t0: int | None = None

    def warm_up(self) -> None:
        """Run a full batch of zeros once, so the first timed batch pays no shape set-up."""
        if not self.batched:
            return
        n = self.capacity or len(self.sources)
        h, w = self.imgsz
        shape = (n, 3, h, w) if self.session.contract.layout == "NCHW" else (n, h, w, 3)
        self.session.run(np.zeros(shape, np.float32))

    # --- readers: one thread per source ---------------------------------------------------------

    def _read(self, i: int) -> None:
        sid, source = self.ids[i], self.sources[i]
        state = self.streams[sid]
        limit = self.options.max_frames
        # A live source in an outage must not hold up a stop.
        source.on_stall = lambda: self.stop.is_set() or self._inbox.halted
        contract = self.session.contract
        frames = iter(source)
        try:
            while not self._inbox.halted:
                wait_start = time.perf_counter_ns()
                frame = next(frames, None)
                if frame is None:
                    return
                got = time.perf_counter_ns()
                frame = dataclasses.replace(frame, source_id=sid)
                tensor, lb = prepare(frame.image, contract, self.imgsz)
                prep = time.perf_counter_ns() - got
                item = _Prepared(frame, tensor, lb, got - wait_start, prep, start_ns=wait_start)
                if not self._inbox.put(i, item):
                    return
                state.frames_read += 1
                if limit is not None and state.frames_read >= limit:
                    state.hit_limit = True
                    return
        finally:
            self._inbox.finish(i)

    # --- inference: the calling thread ----------------------------------------------------------

    def _infer(self, taken: list[tuple[int, _Prepared]], out: queue.Queue, workers: list) -> None:
        items = [item for _, item in taken]
        if not self.batched:
            for item in items:
                start = time.perf_counter_ns()
                outputs = self.session.run(item.tensor)
                self._submit(_Inferred(item, outputs, start, time.perf_counter_ns()), out, workers)
            self._batches[1] += len(items)
            return
        batch = np.concatenate([item.tensor for item in items], axis=0)
        if self.capacity is not None and len(items) < self.capacity:  # a fixed batch size: pad
            pad = np.zeros((self.capacity - len(items), *batch.shape[1:]), batch.dtype)
            batch = np.concatenate([batch, pad], axis=0)
        start = time.perf_counter_ns()
        outputs = self.session.run(batch)
        end = time.perf_counter_ns()
        self._batches[len(items)] += 1
        for k, item in enumerate(items):
            self._submit(_Inferred(item, outputs, start, end, k, len(items)), out, workers)

    def _submit(self, done: _Inferred, out: queue.Queue, workers: list) -> None:
        while True:
            try:
                out.put(done, timeout=0.5)
                return
            except queue.Full:
                _drain(workers)

    # --- finishing: post-process, track, draw, write --------------------------------------------

    def _finish(self, done: _Inferred) -> bool:
        o, contract = self.options, self.session.contract
        item, frame = done.item, done.item.frame
        state = self.streams[frame.source_id]
        t_post = time.perf_counter_ns()
        dets = postprocess(done.outputs, contract, item.letterbox, o.post, done.batch_index)
        if state.tracker is not None:
            dets = state.tracker.update(dets)
        post_end = time.perf_counter_ns()
        if frame.truth is not None:
            state.score = state.score or LiveScore()
            state.score.add(dets, frame.truth)
            if state.tracker is not None:
                state.identity = state.identity or IdentityScore()
                state.identity.add(dets, frame.truth)
        annotated = None
        if any(getattr(s, "needs_image", True) for s in self.sinks):
            overlay = self._overlay(frame.source_id, state, done.batch) if o.overlay else ()
            annotated = draw(frame.image, dets, contract.names, overlay)
        render_end = time.perf_counter_ns()
        keep_going = all([sink.write(frame, dets, annotated) for sink in self.sinks])
        end = time.perf_counter_ns()
        self._t0 = frame.captured_ns if self._t0 is None else self._t0
        record = frame_record(
            done,
            self._t0,
            (t_post, post_end, render_end, end),
            state.source.stats.dropped,
            len(dets),
        )
        self._collector.add(record)
        state.collector.add(record)
        state.rolling.add(end, record.latency_ms)
        publish(record, done, (t_post, post_end, render_end, end), self.telemetry, self.observers)
        return keep_going

    def _finisher(self, inbox: queue.Queue) -> None:
        while (done := inbox.get()) is not _END:
            if not self._finish(done):
                self._sink_stop.set()

    def _overlay(self, sid: str, state: StreamResult, batch: int) -> list[str]:
        r = state.rolling
        lines = [f"{sid}  {r.fps:5.1f} FPS  {r.latency_ms:5.1f} ms  batch {batch}"]
        if state.source.stats.dropped:
            lines.append(f"dropped {state.source.stats.dropped}")
        if state.score is not None and state.score.frames:
            lines.append(f"P {state.score.precision:.2f}  R {state.score.recall:.2f}")
        return lines

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> MultiResult:
        o = self.options
        deadline = None if o.duration is None else time.perf_counter_ns() + int(o.duration * 1e9)
        finish_q: queue.Queue = queue.Queue(maxsize=2 * len(self.sources))
        workers = [
            _Worker(f"read:{sid}", lambda i=i: self._read(i)) for i, sid in enumerate(self.ids)
        ]
        workers.append(_Worker("finish", lambda: self._finisher(finish_q)))
        self._collector = Collector()
        for state in self.streams.values():
            state.collector = Collector()
        for w in workers:
            w.start()
        stopped_by, turn = "end", 0
        try:
            while True:
                taken = self._inbox.take(self.most, self.batch_wait_s, turn)
                if taken is None:
                    limits = [s.hit_limit for s in self.streams.values()]
                    stopped_by = "max_frames" if all(limits) else "end"
                    break
                if taken:
                    turn = (taken[-1][0] + 1) % len(self.sources)
                    self._infer(taken, finish_q, workers)
                if self._sink_stop.is_set():
                    stopped_by = "sink"
                elif self.stop.is_set():
                    stopped_by = "signal"
                elif deadline is not None and time.perf_counter_ns() >= deadline:
                    stopped_by = "duration"
                _drain(workers)
                if stopped_by != "end":
                    break
        finally:
            self._inbox.halt()
            while workers[-1].is_alive():  # the finisher: let it end after the frames in hand
                with contextlib.suppress(queue.Full):
                    finish_q.put(_END, timeout=0.5)
                    break
            for w in workers:
                w.join(timeout=30)
            _drain(workers)
        self._collector.dropped = sum(s.source.stats.dropped for s in self.streams.values())
        return MultiResult(self._collector, self.streams, stopped_by, self._batches)


def _drain(workers: list[_Worker]) -> None:
    for w in workers:
        if w.error is not None:
            raise w.error
