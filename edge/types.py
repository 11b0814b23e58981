"""The small data types that pass between the runtime's stages."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import supervision as sv


@dataclass(frozen=True)
class Frame:
    """One image from a source.

    `captured_ns` is `time.perf_counter_ns()` when the frame was read (monotonic, so latencies are
    differences of it). `truth` holds ground truth where the source knows it (synthetic scenes,
    labelled image folders).
    """

    image: np.ndarray  # H x W x 3, uint8, BGR (OpenCV order)
    index: int
    captured_ns: int
    source_id: str = ""
    name: str = ""
    truth: Detections | None = None
    dropped_before: int = 0  # frames the source skipped since the previous delivered frame


class Box(NamedTuple):
    """One detection, as iterating a `Detections` yields it."""

    xyxy: tuple[float, float, float, float]
    score: float
    class_id: int
    class_name: str
    track_id: int  # -1: no identity


@dataclass(frozen=True)
class Detections:
    """Boxes in pixel corners (x1, y1, x2, y2) of the frame they belong to.

    `xyxy` float32 (n, 4); `score` float32 (n,); `class_id` int64 (n,); `track_id` int64 (n,),
    -1 where an object has no identity; `names` the model's class names (index = class id), empty
    when unknown. Indexing with a mask, slice or index array gives a new Detections (as in
    supervision): `dets[dets.score > 0.5]`; `filter` selects by class name or id and score.
    """

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray
    track_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(xyxy)
        score = np.asarray(self.score, dtype=np.float32).reshape(-1)
        class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        track_id = np.asarray(self.track_id, dtype=np.int64).reshape(-1)
        if track_id.size == 0 and n:
            track_id = np.full(n, -1, np.int64)
        if not (len(score) == len(class_id) == len(track_id) == n):
            raise ValueError(
                f"Detections arrays disagree: {n} boxes, {len(score)} scores, "
                f"{len(class_id)} class ids, {len(track_id)} track ids"
            )
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "class_id", class_id)
        object.__setattr__(self, "track_id", track_id)
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))

    @classmethod
    def empty(cls, names: Sequence[str] = ()) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int64),
            names=tuple(names),
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __iter__(self) -> Iterator[Box]:
        for i in range(len(self)):
            x1, y1, x2, y2 = (float(v) for v in self.xyxy[i])
            c = int(self.class_id[i])
            yield Box(
                (x1, y1, x2, y2), float(self.score[i]), c, self.name_of(c), int(self.track_id[i])
            )

    def __getitem__(self, keep: np.ndarray | slice | int | Sequence[int]) -> Detections:
        """Rows `keep` (boolean mask, index array, slice or one index) as a new Detections."""
        if isinstance(keep, (int, np.integer)):
            keep = [int(keep)]
        return self.select(np.asarray(keep) if not isinstance(keep, slice) else keep)

    def select(self, keep: np.ndarray | slice) -> Detections:
        """A new Detections with only the rows `keep` (boolean mask, indices or slice)."""
        return Detections(
            self.xyxy[keep], self.score[keep], self.class_id[keep], self.track_id[keep], self.names
        )

    def name_of(self, class_id: int) -> str:
        """The class name of `class_id`, or the id as text when the names do not cover it."""
        return self.names[class_id] if 0 <= class_id < len(self.names) else str(class_id)

    @property
    def class_name(self) -> list[str]:
        """The class name of each row."""
        return [self.name_of(int(c)) for c in self.class_id]

    def with_names(self, names: Sequence[str]) -> Detections:
        """The same rows, labelled with the model's class `names`."""
        return replace(self, names=tuple(names))

    def filter(
        self, classes: Iterable[str | int] | str | int | None = None, min_score: float = 0.0
    ) -> Detections:
        """Rows whose class is one of `classes` (names or ids) and whose score is >= `min_score`.

        Raises ValueError for a class name these detections' `names` do not know.
        """
        keep = self.score >= min_score
        if classes is not None:
            wanted = [classes] if isinstance(classes, (str, int)) else list(classes)
            ids = []
            for c in wanted:
                if isinstance(c, str):
                    if c not in self.names:
                        known = ", ".join(self.names) or "no names"
                        raise ValueError(f"classes: unknown class {c!r}; known: {known}")
                    ids.append(self.names.index(c))
                else:
                    ids.append(int(c))
            keep &= np.isin(self.class_id, ids)
        return self.select(keep)

    def to_dict(self) -> dict[str, list[dict[str, object]]]:
        """`{"detections": [{"box", "score", "class_id", "class", "track_id"?}, ...]}`.

        The rows of `edge run --jsonl` (boxes in pixels, rounded to 0.1; scores to 4 places), so
        `json.dumps` of it is valid JSON (no NaN: post-processing drops non-finite rows).
        """
        rows = []
        for box in self:
            row: dict[str, object] = {
                "box": [round(v, 1) for v in box.xyxy],
                "score": round(box.score, 4),
                "class_id": box.class_id,
                "class": box.class_name,
            }
            if box.track_id >= 0:
                row["track_id"] = box.track_id
            rows.append(row)
        return {"detections": rows}

    def to_json(self) -> str:
        """`to_dict()` as one line of JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    def to_supervision(self) -> sv.Detections:
        """A `supervision.Detections` (needs `pip install supervision`): boxes, scores, class and
        tracker ids (None when no row has one), and the class names in `data["class_name"]`."""
        sv = _supervision()

        has_ids = bool(len(self)) and bool((self.track_id >= 0).any())
        return sv.Detections(
            xyxy=self.xyxy.astype(np.float32),
            confidence=self.score.copy(),
            class_id=self.class_id.astype(int),
            tracker_id=self.track_id.astype(int) if has_ids else None,
            data={"class_name": np.array(self.class_name, dtype=str)} if self.names else {},
        )

    @classmethod
    def from_supervision(cls, detections: sv.Detections, names: Sequence[str] = ()) -> Detections:
        """From a `supervision.Detections`; missing scores become 1, classes 0, tracker ids -1."""
        n = len(detections)
        score = detections.confidence if detections.confidence is not None else np.ones(n)
        class_id = detections.class_id if detections.class_id is not None else np.zeros(n)
        track = detections.tracker_id if detections.tracker_id is not None else np.full(n, -1)
        return cls(detections.xyxy, score, class_id, track, tuple(names))


def _supervision() -> Any:
    try:
        import supervision
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "Detections.to_supervision needs supervision: pip install supervision",
            name="supervision",
        ) from None
    return supervision
