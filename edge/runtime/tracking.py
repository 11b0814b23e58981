"""Multi-object tracking: a stable id per object across frames, ByteTrack-style.

Each track keeps a box and its velocity (constant-velocity alpha-beta filter on centre and size).
Per frame: predict every track one step, then match in three stages on IoU with the predicted
boxes: (1) confirmed tracks against high-score detections, (2) tracks still unmatched that were
seen last frame against low-score detections (keeps an object through a blurred or occluded
frame without ever starting a track from a weak detection), (3) tentative tracks against the
high-score detections left. A track gets its id after `min_hits` matches (at once in the first
frame with objects), and is kept `max_lost` frames after its last match so an object that reappears near its
predicted place keeps its id. Matching uses scipy's Hungarian solver when scipy is installed,
else a greedy best-IoU-first matcher (the runtime does not depend on scipy).

Detections pass through unchanged except `track_id` (a new Detections; the input is not touched).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.runtime.accuracy import box_iou
from edge.types import Detections

# scipy's exact assignment, loaded on first use (importing scipy.optimize costs ~0.25 s of
# start-up that `edge run` without --track must not pay); None when scipy is not installed.
_UNLOADED = object()
_hungarian: object = _UNLOADED


def _solver() -> object:
    global _hungarian
    if _hungarian is _UNLOADED:
        try:
            from scipy.optimize import linear_sum_assignment

            _hungarian = linear_sum_assignment
        except ImportError:  # pragma: no cover - depends on the environment
            _hungarian = None
    return _hungarian


@dataclass(frozen=True)
class TrackerOptions:
    """Score thresholds, IoU gates (minimum IoU to match) and track lifetimes, in frames."""

    high: float = 0.5  # detections at or above this take part in stage 1 (and 3)
    low: float = 0.1  # [low, high): stage 2 only
    new_track: float = 0.6  # the least score that starts a track
    match_iou: float = 0.2
    low_match_iou: float = 0.5
    tentative_iou: float = 0.3
    min_hits: int = 2  # matches before a new track is given an id
    max_lost: int = 30  # frames a track survives without a match
    per_class: bool = True  # only match boxes of the same class
    alpha: float = 0.5  # filter gain on position/size: 1 trusts the detection fully
    beta: float = 0.15  # filter gain on velocity

    def __post_init__(self) -> None:
        for name in ("high", "low", "new_track", "match_iou", "low_match_iou", "tentative_iou"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"tracker {name} must be in [0, 1], got {v}")
        if self.low > self.high:
            raise ValueError(f"tracker low ({self.low}) must not exceed high ({self.high})")
        if self.min_hits < 1:
            raise ValueError(f"tracker min_hits must be at least 1, got {self.min_hits}")
        if self.max_lost < 0:
            raise ValueError(f"tracker max_lost must be >= 0, got {self.max_lost}")
        if not (0.0 < self.alpha <= 1.0 and 0.0 <= self.beta <= 1.0):
            raise ValueError(
                f"tracker alpha in (0, 1] and beta in [0, 1], got {self.alpha}, {self.beta}"
            )


def _to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    return np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], axis=1)


def _to_xyxy(cxcywh: np.ndarray) -> np.ndarray:
    half = np.maximum(cxcywh[:, 2:], 0.0) / 2
    return np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)


def assign(iou: np.ndarray, min_iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the matched pairs of an IoU matrix, each pair with IoU >= min_iou.

    Maximises total IoU (Hungarian, with scipy) or takes the best remaining pair first (greedy).
    """
    iou = np.asarray(iou, np.float64)
    empty = np.zeros(0, np.int64)
    if iou.size == 0:
        return empty, empty
    gated = np.where(iou >= min_iou, iou, 0.0)
    solver = _solver()
    if solver is not None:
        rows, cols = solver(gated, maximize=True)  # type: ignore[operator]
    else:
        rows, cols = _greedy(gated)
    keep = gated[rows, cols] >= max(min_iou, 1e-9)
    return np.asarray(rows, np.int64)[keep], np.asarray(cols, np.int64)[keep]


def _greedy(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-score, axis=None, kind="stable")
    used_r, used_c = set(), set()
    rows, cols = [], []
    for flat in order:
        r, c = divmod(int(flat), score.shape[1])
        if score[r, c] <= 0 or r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        rows.append(r)
        cols.append(c)
    return np.asarray(rows, np.int64), np.asarray(cols, np.int64)


class Tracker:
    """Tracks the detections of one stream; call `update` once per frame, in order."""

    def __init__(self, options: TrackerOptions | None = None) -> None:
        self.options = options or TrackerOptions()
        self.frames = 0
        self._next_id = 1
        self._box = np.zeros((0, 4))  # cx, cy, w, h (predicted, then corrected)
        self._vel = np.zeros((0, 4))
        self._id = np.zeros(0, np.int64)  # -1 while tentative
        self._cls = np.zeros(0, np.int64)
        self._hits = np.zeros(0, np.int64)
        self._lost = np.zeros(0, np.int64)  # frames since the last match

    @property
    def active(self) -> int:
        """Confirmed tracks matched in the latest frame."""
        return int(np.sum((self._id >= 0) & (self._lost == 0)))

    def update(self, detections: Detections) -> Detections:
        """The same detections with `track_id` set (-1 where no confirmed track holds one)."""
        o = self.options
        self.frames += 1
        self._box[:, :4] += self._vel  # constant-velocity prediction
        score = detections.score
        high = np.flatnonzero(score >= o.high)
        low = np.flatnonzero((score >= o.low) & (score < o.high))
        confirmed = np.flatnonzero(self._id >= 0)
        t1, d1, rest_t, rest_high = self._match(confirmed, high, detections, o.match_iou)
        seen = rest_t[self._lost[rest_t] == 0]  # only tracks seen last frame take weak boxes
        t2, d2, _, _ = self._match(seen, low, detections, o.low_match_iou)
        tentative = np.flatnonzero(self._id < 0)
        t3, d3, _, new = self._match(tentative, rest_high, detections, o.tentative_iou)
        tracks = np.concatenate([t1, t2, t3])
        dets = np.concatenate([d1, d2, d3])
        self._correct(tracks, detections.xyxy[dets], detections.class_id[dets])
        promote = tracks[(self._id[tracks] < 0) & (self._hits[tracks] >= o.min_hits)]
        self._id[promote] = np.arange(self._next_id, self._next_id + len(promote))
        self._next_id += len(promote)
        track_id = np.full(len(detections), -1, np.int64)
        track_id[dets] = self._id[tracks]
        self._age(tracks)
        new = new[score[new] >= o.new_track]
        first = self._next_id == 1 or o.min_hits <= 1  # no id given yet: a stream's start
        track_id[new] = self._start(detections.xyxy[new], detections.class_id[new], first)
        return Detections(
            detections.xyxy, detections.score, detections.class_id, track_id, detections.names
        )

    def _match(
        self, tracks: np.ndarray, dets: np.ndarray, detections: Detections, min_iou: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(matched tracks, matched detections, unmatched tracks, unmatched detections)."""
        iou = box_iou(_to_xyxy(self._box[tracks]), detections.xyxy[dets])
        if self.options.per_class and iou.size:
            iou[self._cls[tracks][:, None] != detections.class_id[dets][None, :]] = 0.0
        r, c = assign(iou, min_iou)
        return (
            tracks[r],
            dets[c],
            np.delete(tracks, r),
            np.delete(dets, c),
        )

    def _correct(self, tracks: np.ndarray, xyxy: np.ndarray, cls: np.ndarray) -> None:
        o = self.options
        residual = _to_cxcywh(xyxy) - self._box[tracks]
        self._box[tracks] += o.alpha * residual
        self._vel[tracks] += o.beta * residual
        self._cls[tracks] = cls
        self._hits[tracks] += 1

    def _age(self, matched: np.ndarray) -> None:
        """Matched tracks are fresh; the rest grow older and die (tentative ones at once)."""
        missed = np.ones(len(self._id), bool)
        missed[matched] = False
        self._lost[~missed] = 0
        self._lost[missed] += 1
        dead = missed & ((self._id < 0) | (self._lost > self.options.max_lost))
        keep = ~dead
        self._box, self._vel = self._box[keep], self._vel[keep]
        self._id, self._cls = self._id[keep], self._cls[keep]
        self._hits, self._lost = self._hits[keep], self._lost[keep]

    def _start(self, xyxy: np.ndarray, cls: np.ndarray, confirm: bool) -> np.ndarray:
        n = len(xyxy)
        ids = np.full(n, -1, np.int64)
        if confirm:
            ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
            self._next_id += n
        self._box = np.concatenate([self._box, _to_cxcywh(xyxy)])
        self._vel = np.concatenate([self._vel, np.zeros((n, 4))])
        self._id = np.concatenate([self._id, ids])
        self._cls = np.concatenate([self._cls, np.asarray(cls, np.int64)])
        self._hits = np.concatenate([self._hits, np.ones(n, np.int64)])
        self._lost = np.concatenate([self._lost, np.zeros(n, np.int64)])
        return ids


class Trackers:
    """One Tracker per stream, made on first sight of its source id."""

    def __init__(self, options: TrackerOptions | None = None) -> None:
        self.options = options or TrackerOptions()
        self._by_source: dict[str, Tracker] = {}

    def update(self, source_id: str, detections: Detections) -> Detections:
        tracker = self._by_source.get(source_id)
        if tracker is None:
            tracker = self._by_source[source_id] = Tracker(self.options)
        return tracker.update(detections)


@dataclass
class IdentityScore:
    """Id switches against ground truth that carries identities (the synthetic scene).

    Per frame, tracked boxes are matched to truth boxes (same class, IoU >= `iou`); a switch is
    counted when a truth object's matched track id differs from the one it last matched.
    """

    iou: float = 0.5
    switches: int = 0
    matched: int = 0  # truth boxes matched to a tracked box
    truth: int = 0  # truth boxes seen
    frames: int = 0

    def __post_init__(self) -> None:
        self._last: dict[int, int] = {}

    def add(self, tracked: Detections, truth: Detections) -> None:
        self.frames += 1
        self.truth += len(truth)
        keep = np.flatnonzero(tracked.track_id >= 0)
        iou = box_iou(tracked.xyxy[keep], truth.xyxy)
        if iou.size:
            iou[tracked.class_id[keep][:, None] != truth.class_id[None, :]] = 0.0
        rows, cols = assign(iou, self.iou)
        for r, c in zip(rows, cols, strict=True):
            ident, tid = int(truth.track_id[c]), int(tracked.track_id[keep[r]])
            self.matched += 1
            if self._last.get(ident, tid) != tid:
                self.switches += 1
            self._last[ident] = tid

    @property
    def coverage(self) -> float:
        """Share of truth boxes that a confirmed track covered."""
        return self.matched / self.truth if self.truth else 0.0
