"""What analytics reports: one `Event` per crossing, zone entry/exit or dwell alert, and the
JSONL file they are written to (atomically: a temporary name, fsync, then rename at close)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from edge.outputs import files

KINDS = ("cross-in", "cross-out", "enter", "exit", "dwell")


@dataclass(frozen=True)
class Event:
    """One thing that happened to one tracked object at one region.

    `time` is wall-clock seconds since the epoch (for other systems); `t` the stream's own clock
    in seconds (what dwell times are measured on); `frame` the frame index in its stream.
    """

    kind: str
    stream: str
    frame: int
    t: float
    time: float
    track_id: int
    class_id: int
    class_name: str
    score: float
    box: tuple[float, float, float, float]
    line: str | None = None
    zone: str | None = None
    dwell_s: float | None = None  # dwell events and exits: time spent in the zone
    lost: bool = False  # an exit because the object was not seen for a while
    extra: dict = field(default_factory=dict)  # e.g. the snapshot's path

    @property
    def region(self) -> str:
        return self.line if self.line is not None else str(self.zone)

    def to_dict(self) -> dict:
        d: dict = {
            "time": round(self.time, 3),
            "t": round(self.t, 4),
            "stream": self.stream,
            "frame": self.frame,
            "kind": self.kind,
            "track_id": self.track_id,
            "class_id": self.class_id,
            "class": self.class_name,
            "score": round(self.score, 4),
            "box": [round(v, 1) for v in self.box],
        }
        d["line" if self.line is not None else "zone"] = self.region
        if self.dwell_s is not None:
            d["dwell_s"] = round(self.dwell_s, 3)
        if self.lost:
            d["lost"] = True
        d.update(self.extra)
        return d


class EventLog:
    """`--events FILE`: one JSON object per line, written under a temporary name and renamed into
    place by `close()`; after a crash the final name holds nothing half-written.

    Raises:
        OutputError: the file is not a regular file, or cannot be created or written.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.events = 0
        # Found at once, not after the run when the rename fails; `edge run` has already checked
        # it against its inputs and other outputs (edge.outputs.files.check_outputs).
        if self.path.is_dir() or (self.path.exists() and not self.path.is_file()):
            raise files.OutputError(f"--events {self.path}: not a regular file; give a file name")
        self._tmp: Path | None = None
        try:
            self._tmp = files.temp_path(self.path)
            self._file: TextIO | None = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            files.discard(self._tmp)
            raise files.os_error("--events", self.path, exc) from None

    def write(self, events: list[Event]) -> None:
        if self._file is None:
            raise ValueError("EventLog is closed")
        try:
            for e in events:
                self._file.write(json.dumps(e.to_dict()) + "\n")
            if events:
                self._file.flush()
        except OSError as exc:
            self._abandon()
            raise files.os_error("--events", self.path, exc) from None
        self.events += len(events)

    def close(self) -> None:
        """Check every line and rename into place (edge.outputs.files.commit). Safe to call twice."""
        if self._file is None:
            return
        f, self._file = self._file, None
        try:
            f.close()
        except OSError as exc:
            self._abandon()
            raise files.os_error("--events", self.path, exc) from None
        tmp, self._tmp = self._tmp, None
        files.commit(tmp, self.path, "--events", files.check_jsonl)

    def _abandon(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):  # the disk already failed
                self._file.close()
            self._file = None
        files.discard(self._tmp)
        self._tmp = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
