"""Per-frame stage statistics of a run: rolling FPS/latency for overlays, every frame's stage times
in compact arrays, and the end-of-run summary table and outage lines.

All times come from `time.perf_counter_ns()` (monotonic); a frame's latency is measured from the
moment its source captured it, not from when the loop noticed it.
"""

from __future__ import annotations

import math
import time
from array import array
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edge.runtime.timing import PARTS, SPANS, STAGES, FrameRecord


class Rolling:
    """FPS and latency over the last second or so, for the on-screen overlay."""

    def __init__(self, window_s: float = 1.0) -> None:
        self.window_ns = int(window_s * 1e9)
        self._ends: deque[int] = deque()
        self._lat: deque[float] = deque(maxlen=30)

    def add(self, end_ns: int, latency_ms: float) -> None:
        self._ends.append(end_ns)
        while self._ends and end_ns - self._ends[0] > self.window_ns:
            self._ends.popleft()
        self._lat.append(latency_ms)

    @property
    def fps(self) -> float:
        if len(self._ends) < 2:
            return 0.0
        span = (self._ends[-1] - self._ends[0]) / 1e9
        return (len(self._ends) - 1) / span if span > 0 else 0.0

    @property
    def latency_ms(self) -> float:
        return float(np.mean(self._lat)) if self._lat else 0.0


@dataclass(frozen=True)
class StageStats:
    count: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: float


class Collector:
    """Keeps every frame's stage times in compact arrays (flat memory on long runs) for the summary."""

    COLUMNS = tuple(f"{name}_ms" for name in (*STAGES, *PARTS, *SPANS))

    def __init__(self) -> None:
        self._cols = {c: array("f") for c in self.COLUMNS}
        self.frames = 0
        self.dropped = 0
        self.detections = 0
        self.started_ns = time.perf_counter_ns()
        self.ended_ns = self.started_ns

    def add(self, record: FrameRecord) -> None:
        for c in self.COLUMNS:
            self._cols[c].append(getattr(record, c))
        self.frames += 1
        self.dropped = record.dropped
        self.detections += record.detections
        self.ended_ns = time.perf_counter_ns()

    def column(self, name: str) -> np.ndarray:
        return np.frombuffer(self._cols[name], dtype=np.float32)

    def stats(self, name: str, last: int | None = None, first: int | None = None) -> StageStats:
        v = self.column(name).astype(np.float64)
        if first is not None:
            v = v[:first]
        if last is not None:
            v = v[-last:]
        if v.size == 0:
            return StageStats(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        p50, p95, p99 = np.percentile(v, [50, 95, 99])
        return StageStats(
            int(v.size), float(v.mean()), float(p50), float(p95), float(p99), float(v.max())
        )

    @property
    def wall_s(self) -> float:
        return (self.ended_ns - self.started_ns) / 1e9

    @property
    def throughput(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


def describe_outages(events: Sequence[Mapping[str, object]]) -> list[str]:
    """One line per outage of a live source, from the event rows the loop wrote."""
    lines = []
    ends = [e for e in events if e["event"] in ("reconnected", "gave_up")]
    # A reopen that did not last is part of the outage it did not end: its last event tells it.
    last = {e.get("outage_start_ms"): e for e in ends}
    for e in events:
        if e["event"] == "lost" and e is events[-1]:
            lines.append(f"from {float(e['outage_start_ms']) / 1000:.2f} s to the end of the run")
        if e["event"] not in ("reconnected", "gave_up") or last[e.get("outage_start_ms")] is not e:
            continue
        start, length = float(e["outage_start_ms"]) / 1000, float(e["outage_ms"]) / 1000
        how = (
            f"reconnected after {e['attempts']} attempt(s)"
            if e["event"] == "reconnected"
            else f"gave up after {e['attempts']} attempt(s)"
        )
        lost = f", ~{e['frames_lost']} frames lost" if e.get("frames_lost") is not None else ""
        lines.append(f"from {start:.2f} s to {start + length:.2f} s ({length:.2f} s), {how}{lost}")
    return lines


def format_summary(c: Collector, header: dict[str, str]) -> str:
    """A plain-text table: per-stage count/mean/p50/p95/p99/max, then throughput, drops and more."""
    lines = [f"{k}: {v}" for k, v in header.items()]
    lines.append(
        f"{'stage (ms)':<14}{'count':>7}{'mean':>9}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}"
    )
    # A part of a stage follows it, indented; one that never happened (a local model) is left out.
    order = [n for stage in STAGES for n in (stage, *(p for p in PARTS if stage == "inference"))]
    for name in (*order, *SPANS):
        s = c.stats(f"{name}_ms")
        if name in PARTS and not s.max:
            continue
        label = f"  {name}" if name in PARTS else name
        lines.append(
            f"{label:<14}{s.count:>7}{s.mean:>9.2f}{s.p50:>9.2f}{s.p95:>9.2f}{s.p99:>9.2f}{s.max:>9.2f}"
        )
    lines.append(
        f"frames: {c.frames}  wall: {c.wall_s:.2f} s  throughput: {c.throughput:.1f} FPS  "
        f"dropped: {c.dropped}  detections: {c.detections}"
    )
    return "\n".join(lines)
