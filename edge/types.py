"""The small data types that pass between the runtime's stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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


@dataclass(frozen=True)
class Detections:
    """Boxes in pixel corners (x1, y1, x2, y2) of the frame they belong to.

    `xyxy` float32 (n, 4); `score` float32 (n,); `class_id` int64 (n,); `track_id` int64 (n,),
    -1 where an object has no identity.
    """

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray
    track_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

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

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.xyxy)

    def select(self, keep: np.ndarray) -> Detections:
        """A new Detections with only the rows `keep` (boolean mask or indices)."""
        return Detections(
            self.xyxy[keep], self.score[keep], self.class_id[keep], self.track_id[keep]
        )
