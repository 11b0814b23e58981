"""Line crossings and zone visits of tracked objects in one stream, with hysteresis.

Each object is followed by its track id. Its anchor point is on one side of a line only once it
is more than `band` pixels from it (and over the segment, not beside it), so a box jittering on the
line counts once; likewise it is in a zone once it is `band` pixels inside the outline and out once
it is `band` pixels outside. When the tracker gives an object a new id (a lost and re-found track),
the new id takes over the state of a same-class track lost near its predicted place, so an id
switch neither counts a crossing twice nor makes an exit and an entry.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge.analytics.events import Event
from edge.analytics.geometry import Line, Zone, anchor_points, check_anchor
from edge.types import Detections


@dataclass(frozen=True)
class RegionOptions:
    """The lines and zones of one stream and how objects are followed through them."""

    lines: tuple[Line, ...] = ()
    zones: tuple[Zone, ...] = ()
    anchor: str = "bottom-center"
    band: float = 0.02  # hysteresis half-width, as a fraction of the frame's shorter side
    dwell_alert_s: float | None = None  # a "dwell" event once an object stays this long in a zone
    lost_s: float = 1.0  # an object unseen this long has left (its zones get an exit)
    handover: float = (
        0.5  # a new id takes over a lost track this close (x its box diagonal); 0: off
    )

    def __post_init__(self) -> None:
        check_anchor(self.anchor)
        names = [r.name for r in (*self.lines, *self.zones)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"region names must be unique per stream: {', '.join(dup)}")
        if not 0.0 <= self.band < 0.5:
            raise ValueError(f"band must be in [0, 0.5), got {self.band}")
        if self.dwell_alert_s is not None and not self.dwell_alert_s > 0:
            raise ValueError(f"--dwell-alert must be positive, got {self.dwell_alert_s}")
        if not self.lost_s > 0:
            raise ValueError(f"lost_s must be positive, got {self.lost_s}")
        if self.handover < 0:
            raise ValueError(f"handover must be >= 0, got {self.handover}")


@dataclass
class _Track:
    track_id: int
    class_id: int
    score: float
    box: np.ndarray
    anchor: np.ndarray
    t: float
    frame: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    sides: dict[str, int] = field(
        default_factory=dict
    )  # line -> -1 out side, +1 in side, 0 unknown
    inside: dict[str, bool] = field(default_factory=dict)  # zone -> membership (absent: unknown)
    entered: dict[str, float] = field(default_factory=dict)  # zone -> t of entry
    alerted: set[str] = field(default_factory=set)

    @property
    def diagonal(self) -> float:
        return float(np.hypot(*(self.box[2:] - self.box[:2])))


@dataclass
class LineCount:
    """Crossings of one line by class id: [in, out]."""

    by_class: dict[int, list[int]] = field(default_factory=dict)

    def add(self, class_id: int, inward: bool) -> None:
        self.by_class.setdefault(class_id, [0, 0])[0 if inward else 1] += 1

    @property
    def total(self) -> tuple[int, int]:
        return sum(v[0] for v in self.by_class.values()), sum(v[1] for v in self.by_class.values())


@dataclass
class ZoneCount:
    """Visits of one zone by class id: entries, exits, dwell alerts, occupancy now and at most."""

    entries: dict[int, int] = field(default_factory=dict)
    exits: dict[int, int] = field(default_factory=dict)
    dwells: dict[int, int] = field(default_factory=dict)
    occupancy: dict[int, int] = field(default_factory=dict)
    peak: int = 0

    @property
    def occupied(self) -> int:
        return sum(self.occupancy.values())


class StreamCounter:
    """Counts one stream; call `update` once per frame, in order, with tracked detections."""

    def __init__(self, options: RegionOptions, stream: str = "", names: Sequence[str] = ()) -> None:
        self.options, self.stream, self.names = options, stream, tuple(names)
        self.lines: tuple[Line, ...] = options.lines
        self.zones: tuple[Zone, ...] = options.zones
        self.line_counts = {ln.name: LineCount() for ln in options.lines}
        self.zone_counts = {z.name: ZoneCount() for z in options.zones}
        self.handovers = 0
        self._tracks: dict[int, _Track] = {}
        self._band = 0.0
        self._size: tuple[int, int] | None = None

    def resolve(self, width: int, height: int) -> None:
        """Regions given as fractions in pixels of frames of this size."""
        if self._size != (width, height):
            self._size = (width, height)
            self.lines = tuple(ln.resolve(width, height) for ln in self.options.lines)
            self.zones = tuple(z.resolve(width, height) for z in self.options.zones)
            self._band = self.options.band * min(width, height)

    def update(
        self,
        detections: Detections,
        frame: int,
        t: float,
        size: tuple[int, int],
        wall: float | None = None,
    ) -> list[Event]:
        """Events of this frame. `t` is the stream's clock in seconds, `size` (width, height)."""
        self.resolve(*size)
        wall = time.time() if wall is None else wall
        keep = np.flatnonzero(detections.track_id >= 0)
        anchors = anchor_points(detections.xyxy[keep], self.options.anchor)
        events: list[Event] = []
        seen: set[int] = set()
        fresh = [i for i, k in enumerate(keep) if int(detections.track_id[k]) not in self._tracks]
        self._hand_over(detections, keep[fresh], anchors[fresh], t)
        for k, anchor in zip(keep, anchors, strict=True):
            tid = int(detections.track_id[k])
            if tid in seen:
                continue  # one box per id and frame
            seen.add(tid)
            track = self._tracks.get(tid)
            box = detections.xyxy[k].astype(np.float64)
            cls, score = int(detections.class_id[k]), float(detections.score[k])
            if track is None:
                track = self._tracks[tid] = _Track(tid, cls, score, box, anchor, t, frame)
            elif t > track.t:
                track.velocity = (anchor - track.anchor) / (t - track.t)
            track.class_id, track.score, track.box, track.anchor = cls, score, box, anchor
            track.t, track.frame = t, frame
            events += self._cross(track, wall)
            events += self._visit(track, wall)
        events += self._expire(t, frame, wall)
        return events

    # --- per track ------------------------------------------------------------------------------

    def _event(self, kind: str, track: _Track, wall: float, **where: object) -> Event:
        name = self.names[track.class_id] if 0 <= track.class_id < len(self.names) else ""
        return Event(
            kind, self.stream, track.frame, track.t, wall, track.track_id, track.class_id,
            name or str(track.class_id), track.score, tuple(float(v) for v in track.box), **where,
        )  # fmt: skip

    def _cross(self, track: _Track, wall: float) -> list[Event]:
        events = []
        for line in self.lines:
            signed, along = line.side(track.anchor)
            before = track.sides.get(line.name, 0)
            if not 0.0 <= along[0] <= 1.0:
                now = 0  # beside the segment: walking round its end is no crossing
            elif abs(signed[0]) > self._band:
                now = 1 if signed[0] > 0 else -1
            else:
                now = before  # in the band: keep the side it was on
            track.sides[line.name] = now
            if before and now and before != now:
                self.line_counts[line.name].add(track.class_id, now > 0)
                kind = "cross-in" if now > 0 else "cross-out"
                events.append(self._event(kind, track, wall, line=line.name))
        return events

    def _visit(self, track: _Track, wall: float) -> list[Event]:
        events = []
        for zone in self.zones:
            depth = float(zone.depth(track.anchor)[0])
            before = track.inside.get(zone.name)
            now = before if abs(depth) <= self._band else depth > 0
            if now is None:
                continue
            track.inside[zone.name] = now
            if now and not before:
                events.append(self._enter(zone.name, track, wall))
            elif before and not now:
                events.append(self._leave(zone.name, track, wall, lost=False))
            elif now and self.options.dwell_alert_s is not None and zone.name not in track.alerted:
                dwell = track.t - track.entered[zone.name]
                if dwell >= self.options.dwell_alert_s:
                    track.alerted.add(zone.name)
                    c = self.zone_counts[zone.name]
                    c.dwells[track.class_id] = c.dwells.get(track.class_id, 0) + 1
                    events.append(self._event("dwell", track, wall, zone=zone.name, dwell_s=dwell))
        return events

    def _enter(self, zone: str, track: _Track, wall: float) -> Event:
        c = self.zone_counts[zone]
        c.entries[track.class_id] = c.entries.get(track.class_id, 0) + 1
        c.occupancy[track.class_id] = c.occupancy.get(track.class_id, 0) + 1
        c.peak = max(c.peak, c.occupied)
        track.entered[zone] = track.t
        track.alerted.discard(zone)
        return self._event("enter", track, wall, zone=zone)

    def _leave(self, zone: str, track: _Track, wall: float, lost: bool) -> Event:
        c = self.zone_counts[zone]
        c.exits[track.class_id] = c.exits.get(track.class_id, 0) + 1
        c.occupancy[track.class_id] -= 1
        dwell = track.t - track.entered.pop(zone)  # to when it was seen out, or last seen if lost
        return self._event("exit", track, wall, zone=zone, dwell_s=dwell, lost=lost)

    # --- tracks that come and go ----------------------------------------------------------------

    def _hand_over(
        self, detections: Detections, rows: np.ndarray, anchors: np.ndarray, t: float
    ) -> None:
        """New ids near where a same-class track was lost take over its state."""
        if self.options.handover <= 0 or not len(rows):
            return
        now_ids = {int(i) for i in detections.track_id}
        lost = [tr for tid, tr in self._tracks.items() if tid not in now_ids and tr.t < t]
        for k, anchor in zip(rows, anchors, strict=True):
            cls = int(detections.class_id[k])
            box = detections.xyxy[k]
            diag = float(np.hypot(box[2] - box[0], box[3] - box[1]))
            best, best_d = None, np.inf
            for tr in lost:
                if tr.class_id != cls:
                    continue
                d = float(np.hypot(*(tr.anchor + tr.velocity * (t - tr.t) - anchor)))
                if d <= self.options.handover * max(diag, tr.diagonal) and d < best_d:
                    best, best_d = tr, d
            if best is not None:
                lost.remove(best)
                del self._tracks[best.track_id]
                best.track_id = int(detections.track_id[k])
                self._tracks[best.track_id] = best
                self.handovers += 1

    def _expire(self, t: float, frame: int, wall: float) -> list[Event]:
        events = []
        for tid in [tid for tid, tr in self._tracks.items() if t - tr.t > self.options.lost_s]:
            track = self._tracks.pop(tid)
            for zone in [z for z, inside in track.inside.items() if inside]:
                exit_ = self._leave(zone, track, wall, lost=True)
                events.append(dataclasses.replace(exit_, frame=frame, t=t))  # noticed now
        return events

    def anchors(self) -> list[tuple[float, float]]:
        """Anchor points of the objects seen in the latest frame."""
        last = max((tr.frame for tr in self._tracks.values()), default=None)
        return [
            (float(tr.anchor[0]), float(tr.anchor[1]))
            for tr in self._tracks.values()
            if tr.frame == last
        ]

    @property
    def occupancy(self) -> dict[str, dict[int, int]]:
        return {name: dict(c.occupancy) for name, c in self.zone_counts.items()}
