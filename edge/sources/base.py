"""What every source is: options, stats and events, the `Source` protocol, and in-order reading."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from edge.types import Detections, Frame

# A function returning the next (image, truth) or None at the end.
Reader = Callable[[], "tuple[np.ndarray, Detections | None] | None"]
# Asked by a live source every ~0.25 s while no frame arrives; True ends its iteration (the
# consumer's Ctrl-C or deadline must not wait for a reconnect to finish).
Stalled = Callable[[], bool]


@dataclass(frozen=True)
class SourceOptions:
    """What users ask of a source: size/FPS requests for cameras, pacing and reconnects."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    realtime: bool = False  # pace files at native FPS and drop like a live source
    reconnect_attempts: int = 10  # per outage; 0 disables reconnecting
    reconnect_backoff: tuple[float, float] = (0.5, 8.0)  # first and longest wait, seconds
    synthetic_seed: int = 0
    # Streams, FIFOs: longest wait to open / for one frame, seconds (None: STREAM_TIMEOUT_MS).
    open_timeout_s: float | None = None
    read_timeout_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("open_timeout", "read_timeout"):
            v = getattr(self, f"{name}_s")
            if v is not None and not 0 < v <= 3600:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be in (0, 3600] seconds, got {v}"
                )
        for name in ("width", "height"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"--{name} must be positive, got {v}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"--fps must be positive, got {self.fps}")
        if self.reconnect_attempts < 0:
            raise ValueError(f"--reconnect must be >= 0, got {self.reconnect_attempts}")


@dataclass
class SourceEvent:
    """Something that happened to a source: an outage, a reconnect, a skipped bad frame."""

    kind: str  # "lost", "reconnected", "gave_up", "bad_frame"
    at_ns: int
    detail: str = ""
    since_ns: int | None = None  # outage start: the last frame read before it was lost
    attempts: int = 0  # reconnect attempts made in this outage
    frames_lost: int | None = None  # estimate: outage length x the read rate before it


class Drops:
    """When a connection (a live source, a model server) was lost, over the last `window_s`.

    Each outage has its own reconnect budget, so a peer that comes back and drops again would be
    retried for ever: one lost more than `most` times in the window keeps dropping, and is given
    up as lost. Not thread-safe: the one thread that reconnects records the losses.
    """

    MOST = 5
    WINDOW_S = 300.0

    def __init__(self, most: int = MOST, window_s: float = WINDOW_S) -> None:
        self.most, self.window_ns = most, int(window_s * 1e9)
        self._at: deque[int] = deque()

    def lost(self, now_ns: int) -> bool:
        """Record a loss at `now_ns`; whether the connection now keeps dropping."""
        self._at.append(now_ns)
        while self._at[0] < now_ns - self.window_ns:
            self._at.popleft()
        return len(self._at) > self.most

    def describe(self, now_ns: int) -> str:
        """ "lost N times in S s", the losses in the window."""
        return f"lost {len(self._at)} times in {(now_ns - self._at[0]) / 1e9:.0f} s"


@dataclass
class SourceStats:
    read: int = 0
    delivered: int = 0
    dropped: int = 0
    bad: int = 0
    reconnects: int = 0
    events: list[SourceEvent] = field(default_factory=list)


class Source:
    """Base class: iterate for frames; use as a context manager so threads and devices are released.

    `frames(stalled)` is the iteration; the consumer passes what a live source should ask while it
    waits (`iter(source)` never gives up waiting). Sources are not changed by their consumers.
    """

    name: str = "source"
    live: bool = False
    fps: float | None = None
    total: int | None = None  # the frames a file announces, where known

    def __init__(self) -> None:
        self.stats = SourceStats()

    def frames(self, stalled: Stalled | None = None) -> Iterator[Frame]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def close(self) -> None:
        """Release the device/thread. Safe to call twice."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def gave_up(self) -> bool:
        """True once a live source stopped reconnecting: it is lost for good."""
        return any(e.kind == "gave_up" for e in self.stats.events)


class SequentialSource(Source):
    """Reads frames in order on demand: no drops, no thread (files and folders by default)."""

    live = False

    def __init__(
        self, name: str, reader: Reader, fps: float | None, close: Callable[[], None] | None = None
    ) -> None:
        super().__init__()
        self.name, self.fps, self._reader, self._close = name, fps, reader, close or (lambda: None)

    def frames(self, stalled: Stalled | None = None) -> Iterator[Frame]:
        index = 0
        while True:
            item = self._reader()
            if item is None:
                return
            img, truth = item
            self.stats.read += 1
            self.stats.delivered += 1
            yield Frame(img, index, time.perf_counter_ns(), self.name, truth=truth)
            index += 1

    def close(self) -> None:
        self._close()
