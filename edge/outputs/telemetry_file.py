"""The telemetry file: every frame's stage times written as JSONL or CSV (and a CSV's events sidecar),
and read back.

All times come from `time.perf_counter_ns()` (monotonic); a frame's latency is measured from the
moment its source captured it, not from when the loop noticed it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path

from edge.errors import LARGE_BYTES, read_text_bounded
from edge.outputs import files
from edge.runtime.observe import FrameResult, Observer
from edge.runtime.timing import FrameRecord

log = logging.getLogger(__name__)

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
        files.check_target("--telemetry", self.path)
        self._csv = ext == ".csv"
        self._tmp: Path | None = None
        self._events_tmp: Path | None = None
        try:
            self._tmp = files.temp_path(self.path)
            self._fh: io.TextIOWrapper | None = open(self._tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115
            self._writer = csv.DictWriter(self._fh, fieldnames=RECORD_FIELDS) if self._csv else None
            if self._writer is not None:
                self._writer.writeheader()
        except OSError as exc:
            files.discard(self._tmp)
            raise files.os_error("--telemetry", self.path, exc) from None
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
                    self._events_tmp = files.temp_path(events_path(self.path))
                    self._events = open(self._events_tmp, "w", encoding="utf-8")  # noqa: SIM115
                fh = self._events or self._fh
                fh.write(json.dumps(dict(event), separators=(",", ":")) + "\n")
                fh.flush()  # rare, and worth keeping if the run is killed
            except OSError as exc:
                self._discard()
                raise files.os_error("--telemetry", self.path, exc) from None

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
                raise files.os_error("--telemetry", self.path, exc) from None

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
                raise files.os_error("--telemetry", self.path, exc) from None
            self._fh = None
            check = files.check_nonempty if self._csv else files.check_jsonl
            tmp, self._tmp = self._tmp, None
            if self._events_tmp is not None:
                try:
                    files.check_jsonl(self._events_tmp)
                except files.OutputError:
                    files.discard(tmp)
                    raise
            files.commit(tmp, self.path, "--telemetry", check)
            if self._events_tmp is not None:
                events, self._events_tmp = self._events_tmp, None
                files.commit(events, events_path(self.path), "--telemetry", files.check_jsonl)

    def _discard(self) -> None:
        for fh in (self._fh, self._events):
            if fh is not None:
                with contextlib.suppress(OSError):  # the disk already failed
                    fh.close()
        self._fh = self._events = None
        files.discard(self._tmp)
        files.discard(self._events_tmp)
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
    lines = read_text_bounded(p, LARGE_BYTES, f"telemetry events {p}", ValueError).splitlines()
    return [e for e in (json.loads(x) for x in lines if '"event"' in x) if "event" in e]


def read_records(
    path: str | Path, required: tuple[str, ...] = ("inference_ms",)
) -> list[dict[str, float | str]]:
    """Read the frame records of a telemetry file written by TelemetryWriter (JSONL or CSV).

    Every record must hold the `required` fields as numbers. A last line with no line end is what
    a run killed mid-write leaves: it is skipped with a warning, the records before it are kept.

    Raises:
        ValueError: naming the file (and the line) when it is not edge telemetry.
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"telemetry file {p}: no such file")
    text = read_text_bounded(p, LARGE_BYTES, f"telemetry file {p}", ValueError)
    lines = [line + "\n" for line in text.split("\n")]
    if lines.pop() != "\n":  # text after the last line end
        log.warning(
            "telemetry file %s: line %d was cut off (the run stopped mid-write); skipped",
            *(p, len(lines) + 1),
        )
    csv_file = p.suffix.lower() == ".csv"
    rows = _csv_records(lines, p, required) if csv_file else _jsonl_records(lines, p, required)
    if not rows:
        raise ValueError(f"telemetry file {p}: no frame records")
    return rows


def _csv_records(
    lines: list[str], p: Path, required: tuple[str, ...]
) -> list[dict[str, float | str]]:
    reader = csv.DictReader(lines)
    header = reader.fieldnames or []
    missing = [k for k in required if k not in header]
    if header and missing:
        raise ValueError(
            f"telemetry file {p}: not edge telemetry (no {', '.join(missing)} "
            f"column{'s' if len(missing) > 1 else ''})"
        )
    rows: list[dict[str, float | str]] = []
    for row in reader:
        try:
            if None in row or None in row.values():
                raise ValueError(f"{len(header)} fields expected")
            rows.append({k: (v if k == "source" else float(v)) for k, v in row.items()})
        except ValueError as exc:
            raise ValueError(
                f"telemetry file {p}:{reader.line_num}: not edge telemetry ({exc})"
            ) from None
    return rows


def _jsonl_records(
    lines: list[str], p: Path, required: tuple[str, ...]
) -> list[dict[str, float | str]]:
    rows: list[dict[str, float | str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"telemetry file {p}:{number}: not edge telemetry ({exc})") from None
        if isinstance(record, dict) and "event" in record:
            continue  # source events are not frames
        bad = [
            k
            for k in required
            if not isinstance(record, dict)
            or not isinstance(record.get(k), (int, float))
            or isinstance(record.get(k), bool)
        ]
        if bad:
            raise ValueError(
                f"telemetry file {p}:{number}: not edge telemetry (no number for {', '.join(bad)})"
            )
        rows.append(record)
    return rows
