"""How the loop runs on this machine: overlapped or serial, and with how many ONNX Runtime
intra-op threads, chosen from the measured stage times of its first frames.

The loop runs its first frames serially (the probe) and measures per frame: the wall time of
reading + pre-processing, of inference and of finishing (post-processing, drawing, sinks), the
whole frame (book-keeping included), the CPU time of the process in inference and in all, and
how much of the cores nobody used meanwhile (Linux's /proc/stat: what is left on a quiet machine,
nothing where other processes keep the cores busy). `choose` predicts the time per frame of each
way to run and takes the fastest:

- serial (one thread): what the probe measured.
- overlapped: a reader thread (read + pre-process) and a finishing thread beside inference. A
  frame then takes as long as the busiest of them, and no less than the CPU time it needs spread
  over the cores it can get, those it used while it wanted them plus those nobody used:
  max(inference, read, finish, cpu / (cpu / busy + spare)). On a GPU inference leaves the cores to the other threads (its
  CPU time is small); on a CPU whose cores ONNX Runtime's threads fill, the reader and finisher
  take their CPU time from inference, which the last term counts; where other processes keep
  every core busy, more threads get no more CPU, and serial (the least work) wins.
- overlapped with one intra-op thread fewer (CPU only, when the thread count was not given).
  Sharing the cores costs nothing in this model, but more threads spend more CPU time keeping
  in step, and how much cannot be predicted. So where the frame is CPU-bound, the threads use
  CPU time beyond inference's own wall time, and finding out costs at most EXPLORE_BUDGET of the
  run (a camera, a long file), `Tuner` builds a session with one thread fewer and measures it
  on more serial frames; the measured numbers decide, and the session not chosen is dropped.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edge.runtime.session import ModelSession
    from edge.runtime.stats import Collector

log = logging.getLogger(__name__)

PROBE_FRAMES = 24  # serial frames timed per session tried
EXPLORE_BUDGET = 0.01  # the share of a run's time that measuring another thread count may cost


@dataclass(frozen=True)
class Probe:
    """What a serial probe measured, in milliseconds per frame (means).

    `frame` is the whole serial frame (book-keeping included); `read` reading + pre-processing
    that a reader thread would take over (a live source is read just before inference in any
    case: its reading is in `inline`, with the inference thread),
    `finish` post-processing + drawing + sinks; `infer` inference's wall time with `threads`
    intra-op threads and `infer_cpu` the process's CPU time during it (all threads); `cpu` the
    process's CPU time for the whole frame. `spare`: cores nobody used during the probe (None:
    not known, taken as all those the process did not use). `busy`: the part of the frame some
    thread of the process wanted a core (not asleep in a sink, on a disk or a device); None: all.
    """

    frame: float
    read: float
    infer: float
    finish: float
    infer_cpu: float
    cpu: float
    threads: int
    spare: float | None = None
    busy: float | None = None
    inline: float = 0.0

    def __post_init__(self) -> None:
        if self.threads < 0:  # 0: no local ONNX Runtime threads (the model runs on a server)
            raise ValueError(f"threads must be >= 0, got {self.threads}")
        times = (self.frame, self.read, self.infer, self.finish, self.infer_cpu, self.cpu)
        if min(*times, self.inline) < 0:
            raise ValueError(f"stage times must be >= 0, got {self}")
        if self.frame <= 0 or (self.spare is not None and self.spare < 0):
            raise ValueError(f"frame must be > 0 and spare >= 0, got {self.frame}, {self.spare}")

    def describe(self) -> str:
        inline = f" + {self.inline:.1f} reading" if self.inline else ""
        return (
            f"frame {self.frame:.1f} ms: read {self.read:.1f}, inference {self.infer:.1f}{inline}"
            f" ({self.threads} thread(s), CPU {self.infer_cpu:.1f}), finish {self.finish:.1f};"
            f" CPU {self.cpu:.1f}; spare cores "
            + ("unknown" if self.spare is None else f"{self.spare:.2f}")
        )

    def capacity(self, cores: int) -> float:
        """The cores a frame's CPU time can spread over: those the probe used and those nobody
        used (all of them on a quiet machine; what it got where others keep the cores busy)."""
        used = self.cpu / min(self.busy or self.frame, self.frame)
        if self.spare is None:
            return float(max(cores, 1))
        return max(min(float(cores), used + self.spare), 1e-3)

    def overlapped_ms(self, cores: int) -> float:
        """A frame's time with a reader and a finishing thread beside inference."""
        busiest = max(self.infer + self.inline, self.read, self.finish)
        return max(busiest, self.cpu / self.capacity(cores))

    def waste_ms(self) -> float:
        """CPU time per frame the intra-op threads spend beyond inference's wall time: the most
        that fewer threads could save."""
        return max(self.infer_cpu - self.infer, 0.0)


@dataclass(frozen=True)
class Plan:
    """How to run: overlapped or not, with `threads` intra-op threads; `explore`, when not 0,
    asks for a session with that many threads to be measured first; `predicted`: ms per frame
    of each way."""

    overlap: bool
    threads: int
    frame_ms: float
    predicted: dict[str, float]
    explore: int = 0

    def describe(self) -> str:
        how = "overlapped" if self.overlap else "serial"
        alts = ", ".join(f"{k} {v:.1f}" for k, v in self.predicted.items())
        return f"{how}, {self.threads} ORT thread(s) (predicted ms per frame: {alts})"


def choose(
    probes: list[Probe],
    cores: int,
    on_cpu: bool,
    threads_fixed: bool,
    rebuild_ms: float,
    frames_left: int | None,
) -> Plan:
    """The fastest way to run the rest of the frames (see the module docstring).

    `probes`: the session as given first, then any tried with one thread fewer. `on_cpu`: the
    model runs on the CPU. `threads_fixed`: the user chose the thread count. `rebuild_ms`: what a
    new session costs; `frames_left`: None when unknown or unbounded (a live source).
    """
    if cores < 1:
        raise ValueError(f"cores must be >= 1, got {cores}")
    if not probes:
        raise ValueError("choose needs at least one probe")
    first = probes[0]
    predicted: dict[str, float] = {}
    options = []
    for p in probes:
        fewer = "" if p is first else f", {p.threads} thread(s)"
        predicted[f"serial{fewer}"] = p.frame
        predicted[f"overlapped{fewer}"] = p.overlapped_ms(cores)
        options += [(p.frame, False, p.threads), (predicted[f"overlapped{fewer}"], True, p.threads)]
    best = min(options, key=lambda o: o[0])  # ties: serial, then the session as it is
    plan = Plan(overlap=best[1], threads=best[2], frame_ms=best[0], predicted=predicted)
    fewer = first.threads - 1
    if len(probes) > 1 or not on_cpu or threads_fixed or fewer < 1:
        return plan
    # Worth trying one thread fewer only where CPU time bounds the overlapped frame, what the
    # threads spend beyond inference's wall time (the most fewer threads could save) is not
    # nothing, and finding out (a new session, its probe frames run serially) costs at most
    # EXPLORE_BUDGET of the time the frames left would take.
    capacity = first.capacity(cores)
    cpu_bound = first.cpu / capacity >= max(first.infer + first.inline, first.read, first.finish)
    cost = rebuild_ms + PROBE_FRAMES * max(first.frame - plan.frame_ms, 0.0)
    left = frames_left - PROBE_FRAMES if frames_left is not None else None
    affordable = left is None or cost <= EXPLORE_BUDGET * max(left, 0) * plan.frame_ms
    if cpu_bound and first.waste_ms() > 0 and affordable:
        return Plan(plan.overlap, plan.threads, plan.frame_ms, predicted, explore=fewer)
    return plan


class Tuner:
    """Times the loop's first frames and decides how it runs the rest (`choose`).

    The loop calls `frame()` after every serial frame with the collector (where the frames'
    stage times are) and the CPU time its inference calls took so far; `frame()` returns None
    while probing, then the session to run with (the one given, or a new one with fewer threads)
    once `plan` is made.
    """

    def __init__(
        self,
        session: ModelSession,
        imgsz: tuple[int, int],
        frames_left: int | None,
        cores: int,
    ) -> None:
        self.session, self.given, self.imgsz = session, session, imgsz
        on_cpu = session.device == "cpu"
        self.on_cpu, self.frames_left, self.cores = on_cpu, frames_left, cores
        self.probes: list[Probe] = []
        self.plan: Plan | None = None
        self.rebuild_ms = session.load_seconds * 1000
        self._start: tuple[int, ...] | None = None

    def begin(self, frames_done: int, infer_cpu_ns: int) -> None:
        now = (time.perf_counter_ns(), time.process_time_ns())
        self._start = (*now, frames_done, infer_cpu_ns, idle_ticks(), runnable_ns())

    def frame(self, collector: Collector, infer_cpu_ns: int, live: bool) -> ModelSession | None:
        if self.plan is not None:
            return None
        if self._start is None:
            self.begin(collector.frames, infer_cpu_ns)
            return None
        wall0, cpu0, done0, inf0, idle0, runnable0 = self._start
        n = collector.frames - done0
        if n < PROBE_FRAMES:
            return None
        idle = idle_ticks()
        wall_s = (time.perf_counter_ns() - wall0) / 1e9
        spare = None if idle < 0 or idle0 < 0 else (idle - idle0) / TICKS / wall_s
        # This thread wanted a core outside inference, and during it ORT's threads did: busy.
        runnable = runnable_ns()
        busy = None if min(runnable, runnable0) < 0 else (runnable - runnable0) / 1e6 / n
        probe = self._measure(collector, n, wall0, cpu0, infer_cpu_ns - inf0, live, spare)
        if busy is not None:
            probe = replace(probe, busy=min(busy + probe.infer, probe.frame))
        self.probes.append(probe)
        left = None if self.frames_left is None else self.frames_left - collector.frames
        plan = choose(
            self.probes,
            self.cores,
            self.on_cpu,
            threads_fixed=bool(self.given.options.threads),
            rebuild_ms=self.rebuild_ms,
            frames_left=left,
        )
        log.debug("probe: %s -> %s", probe.describe(), plan.describe())
        if plan.explore:
            started = time.perf_counter()
            self.session = self.given.variant(threads=plan.explore)
            self.session.warm_up(self.imgsz)
            log.debug(
                "a session with %d thread(s) in %.0f ms",
                plan.explore,
                (time.perf_counter() - started) * 1e3,
            )
            self.begin(collector.frames, infer_cpu_ns)
            return self.session
        self.plan = plan
        self.session = self.given if plan.threads == self.given_threads else self.session
        return self.session

    @property
    def given_threads(self) -> int:
        return self.probes[0].threads if self.probes else self.given.intra_threads

    def _measure(
        self,
        c: Collector,
        n: int,
        wall0: int,
        cpu0: int,
        infer_cpu_ns: int,
        live: bool,
        spare: float | None,
    ) -> Probe:
        def mean(stage: str) -> float:
            return float(np.mean(c.column(f"{stage}_ms")[-n:]))

        reading = mean("wait") + mean("preprocess")
        return Probe(
            frame=(time.perf_counter_ns() - wall0) / 1e6 / n,
            read=0.0 if live else reading,
            inline=reading if live else 0.0,
            infer=mean("inference"),
            finish=mean("postprocess") + mean("render") + mean("sink"),
            infer_cpu=infer_cpu_ns / 1e6 / n,
            cpu=(time.process_time_ns() - cpu0) / 1e6 / n,
            threads=self.session.intra_threads,
            spare=None if spare is None else max(spare, 0.0),
        )


def runnable_ns() -> int:
    """How long the calling thread has run or waited to run on a CPU (Linux's schedstat), in
    ns; -1 where the system does not say."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            ran, waited = f.read().split()[:2]
        return int(ran) + int(waited)
    except (OSError, ValueError):
        return -1


TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def idle_ticks() -> int:
    """Idle time so far of the CPUs this process may run on, in clock ticks, from Linux's
    /proc/stat; -1 where the system does not say."""
    cpus = (
        {f"cpu{c}" for c in os.sched_getaffinity(0)} if hasattr(os, "sched_getaffinity") else set()
    )
    try:
        with open("/proc/stat") as f:
            lines = [line.split() for line in f if line.startswith("cpu")]
    except OSError:
        return -1
    idle = [int(v[4]) + int(v[5]) for v in lines if v[0] in cpus and len(v) > 5]
    return sum(idle) if idle else -1
