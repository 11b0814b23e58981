"""The detection loop: source -> preprocess -> session -> postprocess -> sinks, every stage timed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from edge.accuracy import LiveScore
from edge.annotate import draw
from edge.postprocess import PostprocessOptions, postprocess
from edge.preprocess import prepare
from edge.session import ModelSession
from edge.sinks import Sink
from edge.sources import Source
from edge.telemetry import Collector, FrameRecord, Rolling, TelemetryWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopOptions:
    """When to stop and what to draw. `max_frames`/`duration` of None mean no limit."""

    max_frames: int | None = None
    duration: float | None = None
    imgsz: tuple[int, int] | None = None
    post: PostprocessOptions = field(default_factory=PostprocessOptions)
    overlay: bool = True

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


def _ms(ns: int) -> float:
    return ns / 1e6


class Loop:
    """Runs a model over a source into sinks, recording a FrameRecord per frame.

    `stop` (a threading.Event) ends the loop after the frame in hand: set it from a signal handler
    and every sink still closes properly.
    """

    def __init__(
        self,
        session: ModelSession,
        source: Source,
        sinks: Sequence[Sink] = (),
        options: LoopOptions | None = None,
        telemetry: TelemetryWriter | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.session, self.source, self.sinks = session, source, list(sinks)
        self.options = options or LoopOptions()
        self.telemetry = telemetry
        self.stop = stop or threading.Event()
        self.imgsz = session.input_size(self.options.imgsz)
        self.rolling = Rolling()

    def run(self) -> LoopResult:
        o, contract, names = self.options, self.session.contract, self.session.contract.names
        need_image = any(getattr(s, "needs_image", True) for s in self.sinks)
        collector = Collector()
        score: LiveScore | None = None
        stopped_by = "end"
        deadline = None if o.duration is None else time.perf_counter_ns() + int(o.duration * 1e9)
        t0: int | None = None
        wait_start = time.perf_counter_ns()
        for frame in self.source:
            got = time.perf_counter_ns()
            if t0 is None:
                t0 = frame.captured_ns
            tensor, lb = prepare(frame.image, contract, self.imgsz)
            inf_start = time.perf_counter_ns()
            outputs = self.session.run(tensor)
            inf_end = time.perf_counter_ns()
            dets = postprocess(outputs, contract, lb, o.post)
            post_end = time.perf_counter_ns()
            if frame.truth is not None:
                score = score or LiveScore()
                score.add(dets, frame.truth)
            annotated = None
            if need_image:
                annotated = draw(
                    frame.image, dets, names, self._overlay(score) if o.overlay else ()
                )
            render_end = time.perf_counter_ns()
            keep_going = all([sink.write(frame, dets, annotated) for sink in self.sinks])
            end = time.perf_counter_ns()
            record = FrameRecord(
                frame=frame.index,
                source=frame.source_id,
                t_ms=_ms(frame.captured_ns - t0),
                wait_ms=_ms(got - wait_start),
                preprocess_ms=_ms(inf_start - got),
                inference_ms=_ms(inf_end - inf_start),
                postprocess_ms=_ms(post_end - inf_end),
                render_ms=_ms(render_end - post_end),
                sink_ms=_ms(end - render_end),
                age_ms=_ms(inf_start - frame.captured_ns),
                latency_ms=_ms(post_end - frame.captured_ns),
                total_ms=_ms(end - frame.captured_ns),
                dropped=self.source.stats.dropped,
                detections=len(dets),
            )
            collector.add(record)
            self.rolling.add(end, record.latency_ms)
            if self.telemetry is not None:
                self.telemetry.write(record)
            if not keep_going:
                stopped_by = "sink"
                break
            if self.stop.is_set():
                stopped_by = "signal"
                break
            if o.max_frames is not None and collector.frames >= o.max_frames:
                stopped_by = "max_frames"
                break
            if deadline is not None and end >= deadline:
                stopped_by = "duration"
                break
            wait_start = time.perf_counter_ns()
        return LoopResult(collector, score, stopped_by)

    def _overlay(self, score: LiveScore | None) -> list[str]:
        lines = [
            f"{self.rolling.fps:5.1f} FPS  {self.rolling.latency_ms:5.1f} ms  {self.session.device}",
        ]
        if self.source.stats.dropped:
            lines.append(f"dropped {self.source.stats.dropped}")
        if score is not None and score.frames:
            lines.append(f"P {score.precision:.2f}  R {score.recall:.2f}")
        return lines
