"""One stream's state in a run, what a run returns, stream names, batch capacity, event rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from edge.runtime.accuracy import LiveScore
from edge.runtime.session import ModelSession
from edge.runtime.stats import Collector, Rolling
from edge.runtime.tracking import IdentityScore, Tracker
from edge.sources import Source, SourceEvent


@dataclass
class StreamState:
    """One stream's share of a run: its source, tracker, scores, timings and events."""

    id: str
    source: Source
    tracker: Tracker | None = None
    collector: Collector = field(default_factory=Collector)
    score: LiveScore | None = None
    identity: IdentityScore | None = None  # id switches, when tracking a source with truth
    rolling: Rolling = field(default_factory=Rolling)
    events: list[dict[str, object]] = field(default_factory=list)  # outages, as telemetry rows

    @property
    def lost(self) -> bool:
        """The source gave up reconnecting: lost for good."""
        return self.source.gave_up


@dataclass
class LoopResult:
    collector: Collector  # every stream's frames together
    streams: dict[str, StreamState]
    stopped_by: (
        str  # "end", "max_frames", "duration", "signal", "sink", "source lost", "server lost"
    )
    batch_sizes: Counter = field(default_factory=Counter)  # frames per inference call -> calls
    server_events: list[dict[str, object]] = field(default_factory=list)  # a model server's outages

    @property
    def events(self) -> list[dict[str, object]]:
        """Every stream's source events, stream by stream."""
        return [e for s in self.streams.values() for e in s.events]

    @property
    def lost(self) -> list[str]:
        """The streams whose source was lost for good (gave up reconnecting)."""
        return [sid for sid, s in self.streams.items() if s.lost]

    @property
    def only(self) -> StreamState:
        """The stream of a one-source run."""
        if len(self.streams) != 1:
            raise ValueError(f"this run has {len(self.streams)} streams; use .streams")
        return next(iter(self.streams.values()))


def batch_capacity(session: ModelSession) -> int | None:
    """Frames one inference call takes: None when the batch dimension is dynamic."""
    dim = session.input_shape[0] if session.input_shape else 1
    return dim if isinstance(dim, int) and dim > 0 else None


def stream_ids(names: Sequence[str]) -> list[str]:
    """Unique stream names: a name given more than once gets ' #<index>' on every use."""
    seen = Counter(names)
    return [f"{n} #{i}" if seen[n] > 1 else n for i, n in enumerate(names)]


def event_row(e: SourceEvent, t0: int, sid: str) -> dict[str, object]:
    """A source event as a telemetry line; times in ms since the run's first capture."""
    row: dict[str, object] = {
        "event": e.kind,
        "source": sid,
        "t_ms": round((e.at_ns - t0) / 1e6, 3),
    }
    if e.since_ns is not None:
        row["outage_start_ms"] = round((e.since_ns - t0) / 1e6, 3)
        if e.kind != "lost":
            row["outage_ms"] = round((e.at_ns - e.since_ns) / 1e6, 3)
    if e.kind != "lost":
        row.update(attempts=e.attempts, frames_lost=e.frames_lost)
    row["detail"] = e.detail
    return row
