"""Per-frame, per-stage spans as a Chrome trace (JSON array of trace events).

Perfetto (ui.perfetto.dev) and chrome://tracing open the file: each source is a process, each
stage a track (wait, preprocess, inference, postprocess, render, sink), and whole frames, capture
to written, sit on "frame" tracks below them, so the time of a slow frame can be followed stage by
stage. Events are streamed to a temporary file and renamed into place on close. The array form is
used because its closing bracket is optional to both viewers: even the temporary file of a killed
run opens.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import asdict
from pathlib import Path

from edge.errors import LARGE_BYTES, read_text_bounded
from edge.outputs import files
from edge.runtime.observe import FrameResult, Observer
from edge.runtime.timing import PARTS, STAGES, FrameRecord, FrameTiming

STAGE_TRACKS = STAGES  # one track per stage, in order
PART_TRACKS = PARTS  # then one per part of a stage (network: a model on a server)
_FRAME_TID = 10  # frame lanes are tids 10, 11, ...: overlapping frames need separate tracks
FrameSpans = FrameTiming  # the name this module used before timing had its own module


class TraceWriter(Observer):
    """Writes a Chrome trace of every observed frame to `path` (.json); a context manager."""

    def __init__(self, path: str | Path, origin_ns: int | None = None) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() != ".json":
            raise ValueError(f"--trace {path}: use a .json file name")
        files.check_target("--trace", self.path)
        self._tmp: Path | None = None
        try:
            self._tmp = files.temp_path(self.path)
            self._fh = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115
            self._fh.write("[")
        except OSError as exc:
            files.discard(self._tmp)
            raise files.os_error("--trace", self.path, exc) from None
        self._t0 = time.perf_counter_ns() if origin_ns is None else origin_ns
        self._lock = threading.Lock()  # observe (finishing thread) against close (main thread)
        self._pids: dict[str, int] = {}
        self._lanes: dict[int, list[int]] = {}  # per pid: when each frame lane is free again
        self._count = 0
        self._last_flush = time.monotonic()
        self.frames = 0

    def _us(self, ns: int) -> float:
        return round((ns - self._t0) / 1000, 3)

    def _emit(self, event: dict) -> None:
        line = json.dumps(event, separators=(",", ":"))
        self._fh.write(("\n" if self._count == 0 else ",\n") + line)
        self._count += 1

    def _pid(self, source: str) -> int:
        pid = self._pids.get(source)
        if pid is None:
            pid = self._pids[source] = len(self._pids) + 1
            self._lanes[pid] = []
            meta = {"ph": "M", "pid": pid}
            self._emit({**meta, "name": "process_name", "args": {"name": source or "source"}})
            self._emit({**meta, "name": "process_sort_index", "args": {"sort_index": pid}})
            for tid, stage in enumerate((*STAGE_TRACKS, *PART_TRACKS), start=1):
                self._thread_name(pid, tid, stage)
        return pid

    def _thread_name(self, pid: int, tid: int, name: str) -> None:
        meta = {"ph": "M", "pid": pid, "tid": tid}
        self._emit({**meta, "name": "thread_name", "args": {"name": name}})
        self._emit({**meta, "name": "thread_sort_index", "args": {"sort_index": tid}})

    def _lane(self, pid: int, start_ns: int, end_ns: int) -> int:
        lanes = self._lanes[pid]
        for i, free_at in enumerate(lanes):
            if free_at <= start_ns:
                lanes[i] = end_ns
                return _FRAME_TID + i
        lanes.append(end_ns)
        tid = _FRAME_TID + len(lanes) - 1
        self._thread_name(pid, tid, f"frame (capture to written) {len(lanes)}")
        return tid

    def _span(self, pid: int, tid: int, name: str, start: int, end: int, **extra: object) -> None:
        dur = round(max(end - start, 0) / 1000, 3)
        event = {"ph": "X", "pid": pid, "tid": tid, "name": name, "ts": self._us(start), "dur": dur}
        self._emit({**event, **extra})

    needs_timing = True

    def on_frame(self, result: FrameResult) -> bool:
        if result.record is not None and result.timing is not None:
            self.observe(result.record, result.timing)
        return True

    def observe(self, record: FrameRecord, spans: FrameTiming) -> None:
        with self._lock:
            if self._fh.closed:
                return
            try:
                self._observe(record, spans)
            except OSError as exc:
                self._discard()
                raise files.os_error("--trace", self.path, exc) from None

    def _observe(self, record: FrameRecord, spans: FrameSpans) -> None:
        """One frame's spans; runs under self._lock."""
        pid = self._pid(spans.source)
        for tid, (stage, start, end) in enumerate(spans.stages(), start=1):
            args: dict[str, object] = {"frame": spans.frame}
            if stage == "inference":
                args["batch"] = spans.batch
            self._span(pid, tid, stage, start, end, cat="stage", args=args)
        for tid, (part, start, end) in enumerate(spans.parts(), start=len(STAGES) + 1):
            if end > start:  # a model on a server: the call's time outside it
                self._span(pid, tid, part, start, end, cat="stage", args={"frame": spans.frame})
        end = spans.sink_end_ns
        tid = self._lane(pid, spans.captured_ns, end)
        name = f"frame {spans.frame}"
        self._span(pid, tid, name, spans.captured_ns, end, cat="frame", args=asdict(record))
        self.frames += 1
        if time.monotonic() - self._last_flush > 1.0:
            self._fh.flush()
            self._last_flush = time.monotonic()

    def close(self) -> None:
        """Finish the array, check it parses and rename the file into place. Safe to call twice."""
        with self._lock:
            if self._fh.closed or self._tmp is None:
                return
            try:
                self._fh.write("\n]\n")
                self._fh.close()
            except OSError as exc:
                self._discard()
                raise files.os_error("--trace", self.path, exc) from None
            tmp, self._tmp = self._tmp, None
            files.commit(tmp, self.path, "--trace", files.check_json)

    def _discard(self) -> None:
        with contextlib.suppress(OSError):  # the disk already failed
            self._fh.close()
        files.discard(self._tmp)
        self._tmp = None

    def __enter__(self) -> TraceWriter:
        return self

    def discard(self) -> None:
        with self._lock:
            self._discard()


def read_trace(path: str | Path) -> list[dict]:
    """The events of a trace file, in either of Chrome's two forms (array or traceEvents)."""
    text = read_text_bounded(path, LARGE_BYTES, f"trace {path}").strip()
    if text.startswith("[") and not text.endswith("]"):
        text = text.rstrip(",\n") + "]"  # the array form may lack its closing bracket
    data = json.loads(text)
    return data["traceEvents"] if isinstance(data, dict) else data
