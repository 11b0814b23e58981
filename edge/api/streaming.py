"""`edge.stream(source, model)`: the run loop as an iterator of `FrameResult`s, for your own code.

    for result in edge.stream("video.mp4", "model.onnx", track=True):
        print(result.stream, result.frame.index, len(result.detections), result.timing)

It is the same threaded loop as `edge run` (latest-frame capture of live sources, reading and
finishing overlapped with inference, tracking, telemetry and files optional), run in a background
thread that hands each finished frame over through a short queue: a slow consumer slows the loop
(live sources then drop frames at the source) instead of piling frames up. Leaving early (`break`,
`.close()`, an exception in the loop body, the end of a `with` block) stops the threads and closes
every source and file the stream opened.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Sequence
from pathlib import Path

from edge.errors import ModelError
from edge.runtime.bundled import bundled_model
from edge.runtime.loop import Loop, LoopOptions, LoopResult, stream_ids
from edge.runtime.observe import FrameResult, Observer, PerStream, Processor, per_stream_path
from edge.runtime.postprocess import PostprocessOptions
from edge.runtime.remote import RemoteSession
from edge.runtime.session import REMOTE, ModelSession, SessionOptions, open_session
from edge.runtime.tracking import TrackerOptions
from edge.sources import Source, SourceOptions, open_source

_DONE = object()


class _Handoff(Observer):
    """Passes finished frames to the consumer's thread through a bounded queue."""

    needs_timing = True

    def __init__(self, draw: bool, size: int = 2) -> None:
        self.needs_image = draw
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self.closed = threading.Event()

    def on_frame(self, result: FrameResult) -> bool:
        return self.put(result)

    def put(self, item: object) -> bool:
        """Blocks while the consumer is behind; False once it has gone."""
        while not self.closed.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


def _run(loop: Loop, handoff: _Handoff, done: dict[str, LoopResult]) -> None:
    # Not a method of Stream: the thread must not keep the Stream alive, or a Stream dropped by
    # its consumer would never be closed.
    try:
        done["result"] = loop.run()
        handoff.put(_DONE)
    except BaseException as exc:  # raised in the consumer's thread by __next__
        handoff.put(exc)


class Stream:
    """An iterator of FrameResults over a running loop; a context manager. See `stream`.

    `result` is the run's LoopResult (per-stream timings, scores, events) once it has ended.
    """

    def __init__(self, loop: Loop, handoff: _Handoff, stack: contextlib.ExitStack) -> None:
        self.loop = loop
        self._stack, self._handoff = stack, handoff
        self._done: dict[str, LoopResult] = {}
        self._closed = False
        self._thread = threading.Thread(
            target=_run, args=(loop, handoff, self._done), name="edge.stream", daemon=True
        )
        self._thread.start()

    @property
    def result(self) -> LoopResult | None:
        return self._done.get("result")

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> FrameResult:
        if self._closed:
            raise StopIteration
        item = self._handoff.queue.get()
        if item is _DONE:
            self.close()
            raise StopIteration
        if isinstance(item, BaseException):
            self.close()
            raise item
        return item

    def close(self) -> None:
        """Stop the loop, wait for its threads and close what the stream opened. Safe twice."""
        if self._closed:
            return
        self._closed = True
        self.loop.stop.set()
        self._handoff.closed.set()  # a finisher blocked handing over a frame gives up
        self._thread.join()
        self._stack.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a `for` loop left by an exception drops its last reference
        with contextlib.suppress(Exception):
            self.close()


def stream(
    source: str | Source | Sequence[str | Source],
    model: str | Path | ModelSession | None = None,
    *,
    max_frames: int | None = None,
    duration: float | None = None,
    imgsz: int | tuple[int, int] | None = None,
    conf: float = 0.25,
    iou: float = 0.45,
    classes: Sequence[int] | None = None,
    max_det: int = 300,
    track: bool = False,
    overlap: bool = True,
    draw: bool = False,
    device: str = "auto",
    threads: int = 0,
    realtime: bool = False,
    source_options: SourceOptions | None = None,
    save: str | Path | None = None,
    jsonl: str | Path | None = None,
    telemetry: str | Path | None = None,
    trace: str | Path | None = None,
    observers: Sequence[Observer] = (),
    processors: Sequence[Processor] = (),
) -> Stream:
    """Run `model` over `source` (a spec as `edge run --source` takes, a Source, or several) and
    iterate its finished frames: `result.stream`, `.frame`, `.detections` (with track ids when
    `track`), `.timing`, and `.image` (the drawn frame) when `draw`.

    `save`/`jsonl`/`telemetry`/`trace` write the same files as `edge run` (a video per stream
    with several sources). Sources given as specs and files given as paths are opened and closed
    by the stream; Source objects, sessions and observers you pass stay yours to close.

    Raises:
        ValueError: an option is out of range.
        SourceError, ModelError: a source or the model cannot be opened.
    """
    size = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    post = PostprocessOptions(
        conf=conf, iou=iou, classes=tuple(classes) if classes else None, max_det=max_det
    )
    options = LoopOptions(
        max_frames=max_frames,
        duration=duration,
        imgsz=size,
        post=post,
        overlap=overlap,
        track=TrackerOptions() if track else None,
    )
    src_opts = source_options or SourceOptions(realtime=realtime)
    specs = [source] if isinstance(source, str | Source) else list(source)
    if not specs:
        raise ValueError("source: give at least one source")
    stack = contextlib.ExitStack()
    try:
        if isinstance(model, ModelSession | RemoteSession):
            session = model
        else:
            session = _session(model, device, threads)
            stack.callback(session.close)
        sources = [
            s if isinstance(s, Source) else stack.enter_context(open_source(s, src_opts))
            for s in specs
        ]
        ids = stream_ids([s.name for s in sources])
        files = _files(stack, sources, ids, session.contract.names, save, jsonl, telemetry, trace)
        handoff = _Handoff(draw)
        outputs = [*observers, *files, handoff]
        loop = Loop(session, sources, outputs, options, None, processors, ids)
        loop.warm_up()
        return Stream(loop, handoff, stack)
    except BaseException:
        stack.close()
        raise


def _session(model: str | Path | None, device: str, threads: int) -> ModelSession | RemoteSession:
    """The model's session; with device triton://HOST:PORT/MODEL, the server's (no model here)."""
    path = model if model or device.startswith(REMOTE) else bundled_model()
    if path is None and not device.startswith(REMOTE):
        raise ModelError("no model given and no bundled model in models/default.onnx")
    # No spinning: ORT's idle threads would keep a core from the loop's reader and finisher.
    return open_session(path, SessionOptions(device=device, threads=threads, spinning=False))


def _files(
    stack: contextlib.ExitStack,
    sources: list[Source],
    ids: list[str],
    names: Sequence[str],
    save: str | Path | None,
    jsonl: str | Path | None,
    telemetry: str | Path | None,
    trace: str | Path | None,
) -> list[Observer]:
    from edge.outputs.sinks import JsonlDetections, VideoFile
    from edge.outputs.telemetry_file import TelemetryWriter
    from edge.outputs.trace import TraceWriter

    out: list[Observer] = []
    if save is not None:
        path = Path(save)
        videos = {
            sid: stack.enter_context(
                VideoFile(path if len(ids) == 1 else per_stream_path(path, i), src.fps)
            )
            for i, (sid, src) in enumerate(zip(ids, sources, strict=True))
        }
        out.append(PerStream(videos))
    if jsonl is not None:
        out.append(stack.enter_context(JsonlDetections(jsonl, names)))
    if telemetry is not None:
        out.append(stack.enter_context(TelemetryWriter(telemetry)))
    if trace is not None:
        out.append(stack.enter_context(TraceWriter(trace)))
    return out
