"""`--snapshots DIR`: a JPEG of the object of each event, written off the loop's thread."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.analytics.delivery import Outbox, topic_part
from edge.analytics.events import Event
from edge.errors import EdgeError
from edge.outputs import files


class Snapshots:
    """Crops (the box plus `margin` of its size each side) to DIR/<stream>/<frame>-<track>-<kind>-
    <region>.jpg; each file appears complete or not at all (written under a temporary name)."""

    def __init__(self, folder: str | Path, margin: float = 0.15, quality: int = 90) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise EdgeError(f"--snapshots {self.folder}: not a folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgeError(f"--snapshots {self.folder}: cannot create ({exc.strerror})") from None
        self.margin, self.quality = margin, quality
        self.outbox = Outbox("snapshots", self._write, capacity=64, retries=0)

    def path(self, e: Event) -> Path:
        name = f"{e.frame:06d}-{e.track_id}-{e.kind}-{e.region}.jpg"
        return self.folder / topic_part(e.stream) / name

    def take(self, image: np.ndarray, events: list[Event]) -> list[Event]:
        """The events with their snapshot's path in `extra`; the files are written later."""
        out = []
        for e in events:
            x1, y1, x2, y2 = e.box
            mx, my = (x2 - x1) * self.margin, (y2 - y1) * self.margin
            h, w = image.shape[:2]
            x1, y1 = max(int(x1 - mx), 0), max(int(y1 - my), 0)
            x2, y2 = min(int(x2 + mx) + 1, w), min(int(y2 + my) + 1, h)
            if x2 <= x1 or y2 <= y1:
                out.append(e)
                continue
            path = self.path(e)
            if self.outbox.put((path, image[y1:y2, x1:x2].copy())):
                e = type(e)(**{**e.__dict__, "extra": {**e.extra, "snapshot": str(path)}})
            out.append(e)
        return out

    def _write(self, item: object) -> None:
        path, crop = item  # type: ignore[misc]
        ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_atomic(path, "--snapshots", lambda tmp: tmp.write_bytes(buf.tobytes()))

    @property
    def stats(self):  # noqa: ANN201 - DeliveryStats
        return self.outbox.stats

    def close(self) -> None:
        self.outbox.close(timeout=5.0)

    def __enter__(self) -> Snapshots:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
