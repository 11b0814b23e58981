"""Frames in: each stream's frames read and letterboxed, handed to the loop a batch at a time.

`ThreadedFeed` gives each stream a reader thread that prepares its frames into a short queue (one
frame for live sources, whose own reader keeps only the newest; two for files, read in order
without drops), so reading and letterboxing overlap with inference. `InlineFeed` reads in the
calling thread, just before inference: nothing is prefetched, nothing competes with the model for
cores, and a live frame is never older than it has to be. Both take at most one frame per stream
per call, streams in turn.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from edge.runtime.preprocess import Letterbox
from edge.sources import Source
from edge.types import Frame

Prepare = Callable[[np.ndarray], "tuple[np.ndarray, Letterbox]"]


@dataclass
class Prepared:
    """A frame read and letterboxed; times in perf_counter_ns."""

    stream: int
    frame: Frame
    tensor: np.ndarray
    letterbox: Letterbox
    wait_start_ns: int  # when the wait for the frame began
    prep_start_ns: int  # when it arrived
    prep_end_ns: int


class StreamReader:
    """One stream's frames, prepared, up to `limit` of them (None: all)."""

    def __init__(
        self,
        index: int,
        sid: str,
        source: Source,
        prepare: Prepare,
        limit: int | None,
        stalled: Callable[[], bool],
    ) -> None:
        self.index, self.sid, self.source = index, sid, source
        self._prepare, self.limit, self._stalled = prepare, limit, stalled
        self.read = 0
        self.hit_limit = False
        self._frames: Iterator[Frame] | None = None

    def next(self) -> Prepared | None:
        """The next prepared frame; None at the end (or at the limit)."""
        if self.limit is not None and self.read >= self.limit:
            self.hit_limit = True
            return None
        if self._frames is None:
            self._frames = self.source.frames(self._stalled)
        wait_start = time.perf_counter_ns()
        frame = next(self._frames, None)
        if frame is None:
            return None
        got = time.perf_counter_ns()
        if frame.source_id != self.sid:
            frame = dataclasses.replace(frame, source_id=self.sid)
        tensor, lb = self._prepare(frame.image)
        self.read += 1
        return Prepared(self.index, frame, tensor, lb, wait_start, got, time.perf_counter_ns())

    def close(self) -> None:
        """End the frame iteration (a generator's finally runs now, not at garbage collection)."""
        close = getattr(self._frames, "close", None)
        if close is not None:
            with contextlib.suppress(ValueError):  # still running in a reader thread that hung
                close()


class InlineFeed:
    """Reads in the calling thread, streams in turn."""

    def __init__(self, readers: Sequence[StreamReader]) -> None:
        self.readers = list(readers)
        self._open = [True] * len(self.readers)

    def start(self) -> list[threading.Thread]:
        return []

    def take(self, most: int, wait_s: float, start: int) -> list[Prepared] | None:
        n = len(self.readers)
        taken: list[Prepared] = []
        for i in ((start + k) % n for k in range(n)):
            if len(taken) >= most:
                break
            if not self._open[i]:
                continue
            item = self.readers[i].next()
            if item is None:
                self._open[i] = False
            else:
                taken.append(item)
        return taken if taken or any(self._open) else None

    def halt(self) -> None:
        for reader in self.readers:
            reader.close()

    @property
    def halted(self) -> bool:
        return False


class ThreadedFeed:
    """A reader thread per stream into per-stream bounded queues under one condition."""

    def __init__(self, readers: Sequence[StreamReader], poll_s: float = 0.1) -> None:
        self.readers = list(readers)
        n = len(self.readers)
        self._caps = [1 if r.source.live else 2 for r in self.readers]
        self._cond = threading.Condition()
        self._queues: list[deque[Prepared]] = [deque() for _ in range(n)]
        self._open = [True] * n
        self._halted = False
        self._last = [0.0] * n  # when each stream last delivered (monotonic s)
        self._gap = [0.0] * n  # its smoothed time between frames; 0: unknown
        self._poll_s = poll_s
        self.errors: list[BaseException] = []

    def start(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._read, args=(r,), name=f"read:{r.sid}", daemon=True)
            for r in self.readers
        ]
        for t in threads:
            t.start()
        return threads

    def _read(self, reader: StreamReader) -> None:
        try:
            while not self._halted:
                item = reader.next()
                if item is None or not self._put(reader.index, item):
                    return
        except BaseException as exc:  # handed to the loop by take()
            self.errors.append(exc)
        finally:
            reader.close()
            with self._cond:
                self._open[reader.index] = False
                self._cond.notify_all()

    def _put(self, i: int, item: Prepared) -> bool:
        """Blocks while stream i's queue is full; False once halted."""
        with self._cond:
            while len(self._queues[i]) >= self._caps[i] and not self._halted:
                self._cond.wait(0.1)
            if self._halted:
                return False
            now = time.monotonic()
            if self._last[i]:
                gap = now - self._last[i]
                self._gap[i] = 0.8 * self._gap[i] + 0.2 * gap if self._gap[i] else gap
            self._last[i] = now
            self._queues[i].append(item)
            self._cond.notify_all()
            return True

    @property
    def halted(self) -> bool:
        return self._halted

    def halt(self) -> None:
        with self._cond:
            self._halted = True
            self._cond.notify_all()

    def take(self, most: int, wait_s: float, start: int) -> list[Prepared] | None:
        """Up to `most` items, one per stream that has one, from stream `start` on.

        With `most` > 1, after the first item it waits up to `wait_s` for the other open streams
        whose next frame is due by then (a batch); a stream out of step with the others is not
        waited for. [] when nothing came within the poll time; None when every stream has ended.
        """
        if self.errors:
            raise self.errors[0]
        n = len(self._queues)
        with self._cond:
            if not any(self._queues):
                if not any(self._open):
                    return None
                self._cond.wait(self._poll_s)
                if not any(self._queues):
                    return None if not any(self._open) and not self.errors else []
            if most > 1:
                deadline = time.monotonic() + wait_s
                while self._due(deadline):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            order = [(start + k) % n for k in range(n)]
            ready = [i for i in order if self._queues[i]]
            taken = [self._queues[i].popleft() for i in ready[:most]]
            self._cond.notify_all()
            return taken

    def _due(self, deadline: float) -> list[int]:
        """Open streams with nothing queued whose next frame should come before `deadline`."""
        return [
            i
            for i, (is_open, q) in enumerate(zip(self._open, self._queues, strict=True))
            if is_open and not q and (not self._gap[i] or self._last[i] + self._gap[i] <= deadline)
        ]
