"""The latest-frame reader: a capture thread keeps only the newest frame, pacing and reconnecting.

Inference never works on a stale frame: frames overwritten before they were taken are counted as
dropped. A lost live source is reopened with bounded exponential backoff; one that drops again
before it has recovered is still in the same outage, and one that keeps dropping is given up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from edge.errors import SourceError
from edge.sources.base import Drops, Reader, Source, SourceEvent, SourceOptions, Stalled
from edge.types import Detections, Frame

log = logging.getLogger(__name__)

# How long close() waits for the capture thread: longer than a capture's read timeout
# (edge.sources.capture.STREAM_TIMEOUT_MS), so a thread in a read gets to finish it.
CLOSE_WAIT_S = 7.0

# A reopened source has recovered once it has read this many frames or run this long; a drop
# before that continues the outage, whose reconnect budget (--reconnect) it keeps spending.
STABLE_FRAMES = 30
STABLE_S = 10.0
# More drops than this within the window and the source keeps dropping: it is given up as lost.
MAX_DROPS = Drops.MOST


@dataclass
class _Outage:
    since_ns: int  # the last frame read before it
    used: int = 0  # reconnect attempts spent, a reopen that did not last included
    wait: float = 0.0  # the next backoff, seconds


class LatestFrameSource(Source):
    """Reads in a thread and keeps only the newest frame (counting overwritten ones as dropped).

    `open_reader()` opens the underlying device and returns a Reader; `pace` (seconds between
    frames) makes a file behave like a live source. When a read fails on a live source the device is
    reopened with exponential backoff, up to `reconnect_attempts` times per outage; an outage ends
    when the source has recovered (STABLE_FRAMES, STABLE_S), and a source that drops more than
    more than MAX_DROPS times in Drops.WINDOW_S is lost for good.
    """

    live = True

    def __init__(
        self,
        name: str,
        open_reader: Callable[[], Reader],
        options: SourceOptions,
        pace: float | None = None,
        reconnect: bool = True,
        close_reader: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.name, self.options, self.pace = name, options, pace
        self._open_reader, self._close_reader = open_reader, close_reader or (lambda: None)
        self._reconnect = reconnect
        self._cond = threading.Condition()
        self._slot: tuple[np.ndarray, Detections | None, int, int] | None = (
            None  # img, truth, ns, seq
        )
        self._seq_taken = -1
        self._finished = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._reads: deque[int] = deque(maxlen=30)  # recent read times: frames-lost estimate
        self._drops = Drops()
        self._outage: _Outage | None = None  # in progress until the reopened source recovers
        self._reopened = (0, 0)  # (time of the last reopen, frames read since)
        self._reader = open_reader()  # fails here, in the caller, if the device cannot be opened
        self._thread = threading.Thread(target=self._run, name=f"capture:{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seq = 0
        next_due = time.perf_counter()
        try:
            while not self._stop.is_set():
                item = self._reader()
                if item is None:
                    if self._reconnect and self._reopen():
                        continue
                    break
                if self.pace is not None:
                    next_due += self.pace
                    delay = next_due - time.perf_counter()
                    if delay > 0:
                        self._stop.wait(delay)
                    else:
                        next_due = time.perf_counter()  # behind: do not try to catch up in a burst
                img, truth = item
                now = time.perf_counter_ns()
                with self._cond:
                    if self._slot is not None and self._slot[3] > self._seq_taken:
                        self.stats.dropped += 1
                    self._slot = (img, truth, now, seq)
                    self.stats.read += 1
                    self._reads.append(now)
                    self._reopened = (self._reopened[0], self._reopened[1] + 1)
                    self._cond.notify_all()
                seq += 1
        except BaseException as exc:  # handed to the consumer instead of dying silently
            self._error = exc
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    def _reopen(self) -> bool:
        first, longest = self.options.reconnect_backoff
        attempts = self.options.reconnect_attempts
        now = time.perf_counter_ns()
        dropping = self._drops.lost(now)
        at, frames = self._reopened
        outage = self._outage
        if outage is not None and (frames >= STABLE_FRAMES or now - at >= STABLE_S * 1e9):
            outage = None  # it recovered: this is a new outage with a fresh budget
        if outage is None:
            since = self._reads[-1] if self._reads else now
            outage = self._outage = _Outage(since, wait=first)
            self.stats.events.append(SourceEvent("lost", now, self.name, since_ns=since))
            log.warning("%s: lost; reconnecting (up to %d attempts)", self.name, attempts)
        if dropping:
            log.error("%s: keeps dropping (%s); given up as lost", self.name,
                      self._drops.describe(now))  # fmt: skip
            return self._give_up(now, outage, f"keeps dropping ({MAX_DROPS + 1} times)")
        while outage.used < attempts:
            if self._stop.wait(outage.wait):
                return False
            outage.used += 1
            wait, outage.wait = outage.wait, min(outage.wait * 2, longest)
            try:
                self._close_reader()
                self._reader = self._open_reader()
            except SourceError as exc:
                log.warning("%s: reconnect %d/%d failed: %s", self.name, outage.used, attempts, exc)
                continue
            self.stats.reconnects += 1
            now = time.perf_counter_ns()
            outage_ms = (now - outage.since_ns) / 1e6
            lost = self._frames_in(outage.since_ns, now)
            self.stats.events.append(
                SourceEvent(
                    "reconnected",
                    now,
                    f"after {outage_ms:.0f} ms",
                    outage.since_ns,
                    outage.used,
                    lost,
                )
            )
            self._reads.clear()
            self._reopened = (now, 0)
            log.warning(
                "%s: reconnected after %.1f s (attempt %d/%d, waited %.1f s)",
                *(self.name, outage_ms / 1000, outage.used, attempts, wait),
            )
            return True
        log.error("%s: gave up after %d reconnect attempts", self.name, attempts)
        return self._give_up(time.perf_counter_ns(), outage, f"after {attempts} attempts")

    def _give_up(self, now: int, outage: _Outage, detail: str) -> bool:
        self.stats.events.append(
            SourceEvent("gave_up", now, detail, outage.since_ns, outage.used, None)
        )
        return False

    def _frames_in(self, start_ns: int, end_ns: int) -> int | None:
        """Frames the source would have delivered in a gap, at the rate it was read before it."""
        r = self._reads
        if len(r) >= 2 and r[-1] > r[0]:
            rate = (len(r) - 1) / ((r[-1] - r[0]) / 1e9)
        elif self.fps:
            rate = self.fps
        else:
            return None
        return int((end_ns - start_ns) / 1e9 * rate)

    def frames(self, stalled: Stalled | None = None) -> Iterator[Frame]:
        while True:
            with self._cond:
                while not self._finished and (
                    self._slot is None or self._slot[3] <= self._seq_taken
                ):
                    if not self._cond.wait(0.25) and stalled is not None and stalled():
                        return
                if self._error is not None:
                    raise SourceError(
                        f"{self.name}: capture failed: {self._error}"
                    ) from self._error
                if self._slot is None or self._slot[3] <= self._seq_taken:
                    return  # finished and nothing new
                img, truth, ns, seq = self._slot
                dropped = seq - self._seq_taken - 1
                self._seq_taken = seq
                self.stats.delivered += 1
            yield Frame(img, seq, ns, self.name, truth=truth, dropped_before=max(dropped, 0))

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=CLOSE_WAIT_S)
        if self._thread.is_alive():  # stuck in a driver call: releasing under it could crash
            log.warning("%s: capture thread did not stop; device left to process exit", self.name)
            return
        self._close_reader()
