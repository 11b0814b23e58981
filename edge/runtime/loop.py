"""The detection loop for one or many sources: read -> preprocess -> infer -> finish, every stage timed.

Inference runs in the calling thread. Frames come in through a feed (edge/runtime/feed.py): reader
threads that prepare the next frames while the model runs, or reading inline just before
inference. With several streams and a model whose batch dimension is dynamic, one frame of each
stream is run in one call (waiting at most `batch_wait_ms` for the others). A finishing thread
(or the calling thread, without overlap) post-processes, tracks, runs the processors, draws and
hands each `FrameResult` to the observers, with its own stream's state (tracker, rolling FPS,
live accuracy, overlay). Queues are short and bounded: memory stays flat and a slow observer slows
the loop instead of piling up frames. One source is simply N = 1.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.errors import ServerLost
from edge.runtime.abort import finishing
from edge.runtime.accuracy import LiveScore
from edge.runtime.annotate import draw
from edge.runtime.feed import InlineFeed, Prepared, StreamReader, ThreadedFeed
from edge.runtime.loop_plan import PROBE_FRAMES, Plan, Tuner
from edge.runtime.machine import usable_cores
from edge.runtime.observe import FrameResult, Observer, Processor
from edge.runtime.postprocess import PostprocessOptions, postprocess
from edge.runtime.preprocess import prepare
from edge.runtime.session import Call, ModelSession
from edge.runtime.stats import Collector
from edge.runtime.stream_state import (
    LoopResult,
    StreamState,
    batch_capacity,
    event_row,
    stream_ids,
)
from edge.runtime.timing import FrameRecord, FrameTiming
from edge.runtime.tracking import IdentityScore, Tracker, TrackerOptions
from edge.runtime.workers import Workers
from edge.sources import Source

log = logging.getLogger(__name__)

_END = object()  # queue sentinel
SERVER = "server"  # the source name of a model server's outage events
MAX_WARM = 64  # frames in the warm-up batch of a model with a dynamic batch, at most

__all__ = ["Loop", "LoopOptions", "LoopResult", "StreamState", "batch_capacity", "stream_ids"]


@dataclass(frozen=True)
class LoopOptions:
    """When to stop, what to draw and how to run. `max_frames` (per stream)/`duration` of None:
    no limit.

    `overlap` runs reading/pre-processing and finishing in threads beside inference; None
    decides from the machine's cores and the first frames' stage times (see `Loop.run`). `batch`
    lets several streams share one inference call when the model's batch dimension is dynamic;
    `batch_wait_ms` bounds how long a frame waits for the other streams' frames.
    """

    max_frames: int | None = None
    duration: float | None = None
    imgsz: tuple[int, int] | None = None
    post: PostprocessOptions = field(default_factory=PostprocessOptions)
    overlay: bool = True
    overlap: bool | None = None
    track: TrackerOptions | None = None  # give objects stable ids across frames
    batch: bool = True
    batch_wait_ms: float = 5.0

    def __post_init__(self) -> None:
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"--max-frames must be at least 1, got {self.max_frames}")
        if self.duration is not None and self.duration <= 0:
            raise ValueError(f"--duration must be positive seconds, got {self.duration}")
        if self.imgsz is not None and (len(self.imgsz) != 2 or min(self.imgsz) < 1):
            raise ValueError(f"--imgsz must be positive, got {self.imgsz}")
        if self.batch_wait_ms < 0:
            raise ValueError(f"--batch-wait-ms must be >= 0, got {self.batch_wait_ms}")


@dataclass
class _Inferred:
    item: Prepared
    call: Call  # the inference call this frame was in: outputs, start, end, network part
    batch_index: int = 0  # this frame's row in batched outputs
    batch: int = 1


class Loop:
    """Runs one model over one or more sources into observers; see the module docstring.

    `sources` is one Source or a sequence of them. `observers` receive every finished frame (see
    edge/runtime/observe.py); `processors` run on each frame before drawing, in order. `stop` (a
    threading.Event) ends the loop after the frames in flight: set it from a signal handler and
    every observer still closes properly. The loop never changes the sources it is given.
    """

    def __init__(
        self,
        session: ModelSession,
        sources: Source | Sequence[Source],
        observers: Sequence[Observer] = (),
        options: LoopOptions | None = None,
        stop: threading.Event | None = None,
        processors: Sequence[Processor] = (),
        ids: Sequence[str] | None = None,
    ) -> None:
        sources = [sources] if isinstance(sources, Source) else list(sources)
        if not sources:
            raise ValueError("Loop needs at least one source")
        self.session, self.sources = session, sources
        self.observers = list(observers)
        self.processors = list(processors)
        self.options = o = options or LoopOptions()
        self.stop = stop or threading.Event()
        self.ids = list(ids or stream_ids([s.name for s in sources]))
        if len(self.ids) != len(sources) or len(set(self.ids)) != len(self.ids):
            raise ValueError(f"stream ids must be unique, one per source, got {self.ids}")
        self.imgsz = session.input_size(o.imgsz)
        self.capacity = batch_capacity(session)
        self.batched = o.batch and self.capacity != 1 and len(sources) > 1
        self.most = min(self.capacity or len(sources), session.max_batch or len(sources))
        if not self.batched:  # one frame a call; calls in flight together (a server): all streams
            self.most = len(sources) if session.concurrent else 1
        self.streams = {
            sid: StreamState(sid, src, tracker=Tracker(o.track) if o.track else None)
            for sid, src in zip(self.ids, sources, strict=True)
        }
        self.overlap = bool(o.overlap)  # what the run uses; an automatic choice updates it
        self.tuner: Tuner | None = None  # times the first frames when the loop chooses itself
        self.plan: Plan | None = None  # what it chose (edge/runtime/loop_plan.py)
        self._probing, self._infer_cpu_ns = False, 0
        self._halt = threading.Event()  # tells waiting readers the run is over
        self._runner: int | None = None  # the thread running the loop
        self._untimed = [ob for ob in self.observers if not ob.needs_timing]
        self._timed = [ob for ob in self.observers if ob.needs_timing]
        self._collector = Collector()
        self._batches: Counter = Counter()
        self._observer_stop = threading.Event()
        self._events_lock = threading.Lock()
        self._t0: int | None = None
        self._started_ns = time.perf_counter_ns()
        self._deadline: int | None = None
        self._server_events: list[dict[str, object]] = []  # a model server's outages, as rows

    def _frames_left(self) -> int | None:
        """The frames this run will take, where known: a file's frame count, --max-frames."""
        known = [n for n in (getattr(self.sources[0], "total", None), self.options.max_frames) if n]
        return min(known) if known else None

    def describe_plan(self) -> str:
        """How the run went: threads beside inference or not, ONNX Runtime's threads, chosen?"""
        how = "reader and finishing threads beside inference" if self.overlap else "one thread"
        chosen = f", chosen from {PROBE_FRAMES} timed frames" if self.plan else ""
        threads = self.session.intra_threads  # 0: the model runs on a server
        return f"{how}, {threads or 'no local'} ONNX Runtime thread(s){chosen}"

    def warm_up(self) -> None:
        """Run a full batch of zeros once, so the first timed batch pays no shape set-up."""
        if not self.batched:
            return
        n = min(self.capacity or len(self.sources), self.session.max_batch or MAX_WARM)
        h, w = self.imgsz
        shape = (n, 3, h, w) if self.session.contract.layout == "NCHW" else (n, h, w, 3)
        self.session.run(np.zeros(shape, np.float32))

    # --- frames in ------------------------------------------------------------------------------

    def _prepare(self, image: np.ndarray) -> tuple:
        return prepare(image, self.session.contract, self.imgsz)

    def _late(self) -> bool:
        return self._deadline is not None and time.perf_counter_ns() >= self._deadline

    def _stalled(self) -> bool:
        """Asked by a live source while it waits out an outage: True tells it to stop waiting."""
        if threading.get_ident() == self._runner:  # the loop itself waits: report the outage now
            self._source_events()
        return self.stop.is_set() or self._halt.is_set() or self._late()

    def _readers(self) -> list[StreamReader]:
        return [
            StreamReader(i, sid, src, self._prepare, self.options.max_frames, self._stalled)
            for i, (sid, src) in enumerate(zip(self.ids, self.sources, strict=True))
        ]

    def _threaded(self) -> bool:
        """Reader threads pay for files (the next frame is prepared during inference) and for
        several streams; one live source is read just before inference (a prefetched live frame
        would only be older)."""
        return self.overlap and (len(self.sources) > 1 or not self.sources[0].live)

    # --- inference: the calling thread ----------------------------------------------------------

    def _infer(self, items: list[Prepared]) -> list[_Inferred]:
        if not self.batched:  # one call per frame (in flight together on a server)
            cpu = time.process_time_ns() if self._probing else 0
            calls = self.session.run_many([item.tensor for item in items], self._stalled)
            if self._probing:  # the CPU time of all of ORT's threads, for the plan
                self._infer_cpu_ns += time.process_time_ns() - cpu
            self._batches[1] += len(items)
            return [_Inferred(item, c) for item, c in zip(items, calls, strict=True)]
        batch = np.concatenate([item.tensor for item in items], axis=0)
        if self.capacity is not None and len(items) < self.capacity:  # a fixed batch size: pad
            pad = np.zeros((self.capacity - len(items), *batch.shape[1:]), batch.dtype)
            batch = np.concatenate([batch, pad], axis=0)
        (c,) = self.session.run_many([batch], self._stalled)
        self._batches[len(items)] += 1
        return [_Inferred(it, c, k, len(items)) for k, it in enumerate(items)]

    # --- finishing: post-process, track, process, draw, observe ---------------------------------

    def _finish(self, done: _Inferred) -> bool:
        o, contract = self.options, self.session.contract
        item, frame = done.item, done.item.frame
        state = self.streams[self.ids[item.stream]]
        t_post = time.perf_counter_ns()
        dets = postprocess(done.call.outputs, contract, item.letterbox, o.post, done.batch_index)
        if state.tracker is not None:
            dets = state.tracker.update(dets)
        result = FrameResult(state.id, frame, dets)
        for processor in self.processors:
            processor.process(result)
        post_end = time.perf_counter_ns()
        if frame.truth is not None:
            state.score = state.score or LiveScore()
            state.score.add(dets, frame.truth)
            if state.tracker is not None:
                state.identity = state.identity or IdentityScore()
                state.identity.add(dets, frame.truth)
        if result.events:
            self._publish_events(state.id, frame.index, result.events)
        if any(ob.needs_image for ob in self.observers):  # asked per frame: a page may not want it
            lines = self._overlay(state, done.batch) if o.overlay else ()
            image = draw(frame.image, dets, contract.names, lines)
            for overlay in result.overlay:
                overlay(image)
            result.image = image
        render_end = time.perf_counter_ns()
        keep_going = all([ob.on_frame(result) is not False for ob in self._untimed])
        end = time.perf_counter_ns()
        self._t0 = frame.captured_ns if self._t0 is None else self._t0
        result.timing = FrameTiming(
            state.id,
            frame.index,
            frame.captured_ns,
            item.wait_start_ns,
            item.prep_start_ns,
            item.prep_end_ns,
            done.call.start_ns,
            done.call.end_ns,
            t_post,
            post_end,
            render_end,
            end,
            done.batch,
            network_ns=done.call.network_ns,
        )
        result.record = FrameRecord.of(
            result.timing, self._t0, state.source.stats.dropped, len(dets)
        )
        self._collector.add(result.record)
        state.collector.add(result.record)
        state.rolling.add(end, result.record.latency_ms)
        return all([ob.on_frame(result) is not False for ob in self._timed]) and keep_going

    def _finisher(self, inbox: queue.Queue) -> None:
        while (done := inbox.get()) is not _END:
            if not self._finish(done):
                self._observer_stop.set()

    def _overlay(self, state: StreamState, batch: int) -> list[str]:
        r = state.rolling
        head = f"{r.fps:5.1f} FPS  {r.latency_ms:5.1f} ms  {self.session.device}"
        if len(self.sources) > 1:
            head = f"{state.id}  {head}  batch {batch}"
        lines = [head]
        if state.source.stats.dropped:
            lines.append(f"dropped {state.source.stats.dropped}")
        if state.score is not None and state.score.frames:
            lines.append(f"P {state.score.precision:.2f}  R {state.score.recall:.2f}")
        return lines

    # --- events ---------------------------------------------------------------------------------

    def _source_events(self) -> None:
        """New source events (outages; a model server's too) as rows: to the observers and the
        stream's state (the server's: `_server_events`)."""
        with self._events_lock:
            t0 = self._t0 if self._t0 is not None else self._started_ns
            for state in self.streams.values():
                for event in state.source.stats.events[len(state.events) :]:
                    state.events.append(event_row(event, t0, state.id))
                    for ob in self.observers:
                        ob.on_event(state.events[-1])
            for event in list(self.session.events)[len(self._server_events) :]:
                self._server_events.append(event_row(event, t0, SERVER))
                for ob in self.observers:
                    ob.on_event(self._server_events[-1])

    def _publish_events(self, sid: str, index: int, events: list[dict[str, object]]) -> None:
        with self._events_lock:
            for event in events:
                row = {"source": sid, "frame": index, **event}
                for ob in self.observers:
                    ob.on_event(row)

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> LoopResult:
        """Run until the sources end, a limit is reached, `stop` is set or an observer says stop.

        With `options.overlap` None and one source the first frames run serially, timed; their
        stage times then decide (edge/runtime/loop_plan.py) whether reader and finishing threads
        join for the rest of the run and with how many ONNX Runtime threads: on a CPU they take
        their cores from inference, so they must hide more than they cost. `self.session` may
        then be a new session with fewer threads (the one given is left as it was). While those
        threads run beside inference on the CPU, OpenCV runs single-threaded (process-wide, as
        `cv2.setNumThreads` is); its thread count is restored when the run ends.
        """
        o = self.options
        self._runner = threading.get_ident()
        now = time.perf_counter_ns()
        self._deadline = None if o.duration is None else now + int(o.duration * 1e9)
        self._collector = Collector()
        # Several streams always get reader threads: one stream's wait must not hold up the others.
        auto = o.overlap is None and len(self.sources) == 1
        tuner = (
            Tuner(self.session, self.imgsz, self._frames_left(), usable_cores()) if auto else None
        )
        self.tuner, self.plan, self._probing, self._infer_cpu_ns = tuner, None, auto, 0
        self.overlap = bool(o.overlap) or (o.overlap is None and not auto)
        readers = self._readers()
        feed: InlineFeed | ThreadedFeed = InlineFeed(readers)
        workers = Workers()
        finish_q: queue.Queue | None = None
        threads: list[threading.Thread] = []

        cv_threads = cv2.getNumThreads()

        def go_parallel() -> None:
            nonlocal feed, finish_q
            if self.session.device == "cpu":
                # OpenCV's own thread pool (resize, colour conversion, drawing) in the reader
                # and finisher would fight ONNX Runtime's threads for the same cores: measured
                # 8-10% fewer frames per second on 2 cores. Restored when the run ends.
                cv2.setNumThreads(1)
            if self._threaded():
                feed = ThreadedFeed(readers)
                threads.extend(feed.start())
            finish_q = queue.Queue(maxsize=2 * len(self.sources))
            workers.spawn("finish", lambda: self._finisher(finish_q))

        if self.overlap:
            go_parallel()
        stopped_by, turn = "end", 0
        try:
            while True:
                taken = feed.take(self.most, o.batch_wait_ms / 1000, turn)
                if taken is None:
                    stopped_by = "max_frames" if all(r.hit_limit for r in readers) else "end"
                    break
                if taken:
                    turn = (taken[-1].stream + 1) % len(self.sources)
                    try:
                        inferred = self._infer(taken)
                    except ServerLost as exc:  # the model server is gone for good
                        log.error("%s", exc)
                        stopped_by = "server lost"
                        break
                    for done in inferred:
                        if finish_q is not None:
                            self._put(finish_q, done, workers)
                        elif not self._finish(done):
                            self._observer_stop.set()
                    if tuner is not None and self.plan is None:
                        live = all(s.live for s in self.sources)
                        session = tuner.frame(self._collector, self._infer_cpu_ns, live)
                        self.session = session or self.session
                        self.plan = tuner.plan
                        self._probing = self.plan is None
                        if self.plan is not None and self.plan.overlap:
                            self.overlap = True
                            go_parallel()
                if self._observer_stop.is_set():
                    stopped_by = "sink"
                elif self.stop.is_set():
                    stopped_by = "signal"
                elif self._late():
                    stopped_by = "duration"
                self._source_events()
                workers.raise_first()
                if stopped_by != "end":
                    break
            if stopped_by in ("end", "server lost"):  # or a wait (a source, the server) was stopped
                if self.stop.is_set():
                    stopped_by = "signal"
                elif self._late():
                    stopped_by = "duration"
        finally:
            with finishing():  # an abort waits: threads still writing would race the outputs
                self._halt.set()
                feed.halt()
                # A finisher that died on an error leaves its queue full: a plain put() would hang.
                while finish_q is not None and workers.threads[-1].is_alive():
                    with contextlib.suppress(queue.Full):
                        finish_q.put(_END, timeout=0.1)
                        break
                for t in (*threads, *workers.threads):
                    t.join(timeout=30)
                cv2.setNumThreads(cv_threads)
                self._source_events()
        workers.raise_first()
        if isinstance(feed, ThreadedFeed) and feed.errors:
            raise feed.errors[0]
        if stopped_by == "end" and any(s.source.gave_up for s in self.streams.values()):
            stopped_by = "source lost"
        self._collector.dropped = sum(s.source.stats.dropped for s in self.streams.values())
        return LoopResult(
            self._collector, self.streams, stopped_by, self._batches, self._server_events
        )

    def _put(self, q: queue.Queue, item: object, workers: Workers) -> None:
        while True:
            try:
                q.put(item, timeout=0.5)
                return
            except queue.Full:
                workers.raise_first()
