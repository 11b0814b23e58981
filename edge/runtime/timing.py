"""One frame's timing: the stage names, defined once, when each stage began and ended (`FrameTiming`,
in ns) and the same as a telemetry row (`FrameRecord`, in ms, made from a FrameTiming).

Every output derives what it shows from these: telemetry rows, trace spans, the live page's
charts and the summary table. Adding a stage means adding its name
to `STAGES`, its mark to `FrameTiming` and `FrameRecord`, and taking the mark in the loop; a part
of a stage (`PARTS`) is a duration inside one.
"""

from __future__ import annotations

from dataclasses import dataclass

# In the order a frame goes through them; FrameRecord has a `<stage>_ms` field for each.
STAGES = ("wait", "preprocess", "inference", "postprocess", "render", "sink")
# Parts of a stage, in FrameRecord as `<name>_ms` too: `network`, of a model on a server, is the
# part of the inference call spent outside the server (sending, receiving, the protocol); 0 for
# a local model, and then left out of the summary and the trace.
PARTS = ("network",)
# Whole-frame times (capture to ...), in FrameRecord as `<name>_ms` too.
SPANS = ("age", "latency", "total")


@dataclass(frozen=True)
class FrameTiming:
    """When each stage of one frame began and ended, in `time.perf_counter_ns()`.

    `batch` is how many frames shared the inference call.
    """

    source: str
    frame: int
    captured_ns: int
    wait_start_ns: int
    prep_start_ns: int
    prep_end_ns: int
    inf_start_ns: int
    inf_end_ns: int
    post_start_ns: int
    post_end_ns: int
    render_end_ns: int
    sink_end_ns: int
    batch: int = 1
    network_ns: int = 0  # of the inference call: time outside the server (a remote model)

    def stages(self) -> list[tuple[str, int, int]]:
        """(stage, start_ns, end_ns) in STAGES order."""
        # Post-processing starts when the finishing thread picks the frame up: the queue wait
        # before it counts in the latency a user sees, not in any stage.
        return [
            ("wait", self.wait_start_ns, self.prep_start_ns),
            ("preprocess", self.prep_start_ns, self.prep_end_ns),
            ("inference", self.inf_start_ns, self.inf_end_ns),
            ("postprocess", self.post_start_ns, self.post_end_ns),
            ("render", self.post_end_ns, self.render_end_ns),
            ("sink", self.render_end_ns, self.sink_end_ns),
        ]

    def stage_ms(self) -> dict[str, float]:
        """{stage: milliseconds} in STAGES order."""
        return {name: (end - start) / 1e6 for name, start, end in self.stages()}

    def parts(self) -> list[tuple[str, int, int]]:
        """(part, start_ns, end_ns) in PARTS order: the network part is drawn from the start of
        the inference call (its real split between sending and receiving is not known)."""
        return [("network", self.inf_start_ns, self.inf_start_ns + self.network_ns)]

    def parts_ms(self) -> dict[str, float]:
        return {name: (end - start) / 1e6 for name, start, end in self.parts()}

    def spans_ms(self) -> dict[str, float]:
        """{"age", "latency", "total"}: capture to inference start, to detections ready, to written."""
        return {
            "age": (self.inf_start_ns - self.captured_ns) / 1e6,
            "latency": (self.post_end_ns - self.captured_ns) / 1e6,
            "total": (self.sink_end_ns - self.captured_ns) / 1e6,
        }


@dataclass(frozen=True)
class FrameRecord:
    """What happened to one frame. Times in milliseconds; `t_ms` is capture time since the run began."""

    frame: int
    source: str
    t_ms: float
    wait_ms: float
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    render_ms: float
    sink_ms: float
    age_ms: float  # capture -> inference start: how stale the frame was when inference began
    latency_ms: float  # capture -> detections ready
    total_ms: float  # capture -> shown/written
    dropped: int  # frames the source skipped so far
    detections: int
    network_ms: float = 0.0  # part of inference_ms spent outside the server (a remote model)

    @classmethod
    def of(cls, timing: FrameTiming, t0_ns: int, dropped: int, detections: int) -> FrameRecord:
        """The record of a frame's timing; `t0_ns` is the run's first capture."""
        ms = {f"{name}_ms": v for name, v in timing.stage_ms().items()}
        ms.update({f"{name}_ms": v for name, v in timing.spans_ms().items()})
        ms.update({f"{name}_ms": v for name, v in timing.parts_ms().items()})
        return cls(
            frame=timing.frame,
            source=timing.source,
            t_ms=(timing.captured_ns - t0_ns) / 1e6,
            dropped=dropped,
            detections=detections,
            **ms,
        )
