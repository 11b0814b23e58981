"""Per-frame, per-stage timing: records, writers (JSONL/CSV), rolling stats and the end summary.

All times come from `time.perf_counter_ns()` (monotonic); a frame's latency is measured from the
moment its source captured it, not from when the loop noticed it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import threading
import time
from array import array
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from edge import outputs
from edge.observe import FrameResult, Observer
from edge.timing import SPANS, STAGES
from edge.timing import FrameRecord as FrameRecord  # where it was defined before timing.py

RECORD_FIELDS = tuple(f.name for f in fields(FrameRecord))
_NUMERIC = tuple(n for n in RECORD_FIELDS if n.endswith("_ms"))


class TelemetryWriter(Observer):
    """Streams records to JSONL or CSV (chosen by extension); flushed every second and on close.

    The file is written under a temporary name and renamed on close, so a reader never sees a
    half-written file; on an interrupted run whatever was flushed is still renamed into place.
    Source events (`{"event": "lost" | "reconnected" | "gave_up", "t_ms": ...}`) go between the
    JSONL records, or for CSV into `<name>.events.jsonl` beside it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in (".jsonl", ".json", ".csv"):
            raise ValueError(f"--telemetry {path}: use a .jsonl or .csv file name")
        outputs.check_target("--telemetry", self.path)
        self._csv = ext == ".csv"
        self._tmp: Path | None = None
        self._events_tmp: Path | None = None
        try:
            self._tmp = outputs.temp_path(self.path)
            self._fh: io.TextIOWrapper | None = open(self._tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115
            self._writer = csv.DictWriter(self._fh, fieldnames=RECORD_FIELDS) if self._csv else None
            if self._writer is not None:
                self._writer.writeheader()
        except OSError as exc:
            outputs.discard(self._tmp)
            raise outputs.os_error("--telemetry", self.path, exc) from None
        self._last_flush = time.monotonic()
        self._events: io.TextIOWrapper | None = None  # the CSV's sidecar, opened on first event
        self._lock = threading.Lock()  # events come from the loop, rows from its finishing thread

    needs_timing = True

    def on_frame(self, result: FrameResult) -> bool:
        if result.record is not None:
            self.write(result.record)
        return True

    def on_event(self, event: Mapping[str, object]) -> None:
        self.write_event(event)

    def write_event(self, event: Mapping[str, object]) -> None:
        with self._lock:
            if self._fh is None:
                return
            try:
                if self._csv and self._events is None:
                    self._events_tmp = outputs.temp_path(events_path(self.path))
                    self._events = open(self._events_tmp, "w", encoding="utf-8")  # noqa: SIM115
                fh = self._events or self._fh
                fh.write(json.dumps(dict(event), separators=(",", ":")) + "\n")
                fh.flush()  # rare, and worth keeping if the run is killed
            except OSError as exc:
                self._discard()
                raise outputs.os_error("--telemetry", self.path, exc) from None

    def write(self, record: FrameRecord) -> None:
        row = asdict(record)
        for k in _NUMERIC:
            row[k] = round(row[k], 3)
        with self._lock:
            if self._fh is None:
                return
            try:
                if self._writer is not None:
                    self._writer.writerow(row)
                else:
                    self._fh.write(json.dumps(row, separators=(",", ":")) + "\n")
                if time.monotonic() - self._last_flush > 1.0:
                    self._fh.flush()
                    self._last_flush = time.monotonic()
            except OSError as exc:
                self._discard()
                raise outputs.os_error("--telemetry", self.path, exc) from None

    def close(self) -> None:
        """Flush, check and rename the file (and the CSV's events file) into place."""
        with self._lock:
            if self._fh is None:
                return
            try:
                self._fh.close()
                if self._events is not None:
                    self._events.close()
            except OSError as exc:
                self._discard()
                raise outputs.os_error("--telemetry", self.path, exc) from None
            self._fh = None
            check = outputs.check_nonempty if self._csv else outputs.check_jsonl
            tmp, self._tmp = self._tmp, None
            if self._events_tmp is not None:
                try:
                    outputs.check_jsonl(self._events_tmp)
                except outputs.OutputError:
                    outputs.discard(tmp)
                    raise
            outputs.commit(tmp, self.path, "--telemetry", check)
            if self._events_tmp is not None:
                events, self._events_tmp = self._events_tmp, None
                outputs.commit(events, events_path(self.path), "--telemetry", outputs.check_jsonl)

    def _discard(self) -> None:
        for fh in (self._fh, self._events):
            if fh is not None:
                with contextlib.suppress(OSError):  # the disk already failed
                    fh.close()
        self._fh = self._events = None
        outputs.discard(self._tmp)
        outputs.discard(self._events_tmp)
        self._tmp = self._events_tmp = None

    def __enter__(self) -> TelemetryWriter:
        return self

    def discard(self) -> None:
        with self._lock:
            self._discard()


def events_path(path: Path) -> Path:
    """Where the source events of a CSV telemetry file go: `t.csv` -> `t.events.jsonl`."""
    return path.with_suffix(".events.jsonl")


def read_events(path: str | Path) -> list[dict[str, object]]:
    """The source events of a telemetry file (JSONL lines with "event", or a CSV's sidecar)."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        p = events_path(p)
        if not p.is_file():
            return []
    lines = p.read_text(encoding="utf-8").splitlines()
    return [e for e in (json.loads(x) for x in lines if '"event"' in x) if "event" in e]


def read_records(path: str | Path) -> list[dict[str, float | str]]:
    """Read the frame records of a telemetry file written by TelemetryWriter (JSONL or CSV)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"telemetry file {p}: no such file")
    text = p.read_text(encoding="utf-8")
    rows: list[dict[str, float | str]] = []
    try:
        if p.suffix.lower() == ".csv":
            for row in csv.DictReader(io.StringIO(text)):
                rows.append({k: (v if k == "source" else float(v)) for k, v in row.items()})
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            rows = [r for r in rows if "event" not in r]  # source events are not frames
    except (ValueError, TypeError) as exc:
        raise ValueError(f"telemetry file {p}: not edge telemetry ({exc})") from None
    if not rows or "inference_ms" not in rows[0]:
        raise ValueError(f"telemetry file {p}: no frame records")
    return rows


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

    COLUMNS = tuple(f"{name}_ms" for name in (*STAGES, *SPANS))

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
    for e in events:
        if e["event"] == "lost" and e is events[-1]:
            lines.append(f"from {float(e['outage_start_ms']) / 1000:.2f} s to the end of the run")
        if e["event"] not in ("reconnected", "gave_up"):
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
    for col in Collector.COLUMNS:
        s = c.stats(col)
        label = col[:-3]
        lines.append(
            f"{label:<14}{s.count:>7}{s.mean:>9.2f}{s.p50:>9.2f}{s.p95:>9.2f}{s.p99:>9.2f}{s.max:>9.2f}"
        )
    lines.append(
        f"frames: {c.frames}  wall: {c.wall_s:.2f} s  throughput: {c.throughput:.1f} FPS  "
        f"dropped: {c.dropped}  detections: {c.detections}"
    )
    return "\n".join(lines)
