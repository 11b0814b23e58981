"""What `edge run` writes: every output checked against the inputs and each other before work
starts, opened as observers of the loop, and reported once it is really written."""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path

from edge.runtime.bundled import bundled_model

log = logging.getLogger("edge")


def check_run_outputs(args: argparse.Namespace, specs: list[str]) -> None:
    """Every file this run will write, checked against each other and every input before work."""
    from edge.outputs.files import check_outputs
    from edge.outputs.telemetry_file import events_path

    n = len(specs)
    outputs = [("--save", per_stream(args.save, i, n)) for i in range(n)] if args.save else []
    outputs += [("--jsonl", args.jsonl), ("--telemetry", args.telemetry), ("--trace", args.trace)]
    outputs += [("--events", getattr(args, "events", None))]
    if args.telemetry and args.telemetry.suffix.lower() == ".csv":
        outputs.append(("--telemetry", events_path(args.telemetry)))
    inputs = [args.model or bundled_model(), args.sources, getattr(args, "config", None), *specs]
    check_outputs(outputs, inputs, stdout_ok=("--jsonl",))


def per_stream(path: Path, index: int, streams: int) -> Path:
    from edge.runtime.observe import per_stream_path

    return path if streams == 1 else per_stream_path(path, index)


def open_outputs(
    args: argparse.Namespace,
    stack: contextlib.ExitStack,
    sources: list,
    ids: list[str],
    names: tuple[str, ...],
    show: bool,
    analytics: object | None = None,
) -> list:
    """Every output asked for, opened in `stack`: one JSONL, telemetry file, trace and web page
    hold every stream (each row names its source); videos and windows are one per stream."""
    from edge.outputs.group import OutputGroup
    from edge.outputs.sinks import Display, JsonlDetections, VideoFile
    from edge.outputs.telemetry_file import TelemetryWriter
    from edge.runtime.observe import PerStream

    n = len(ids)
    outputs: list = []
    if args.save:
        # One video per stream, one output: they appear together at the end (or none does).
        videos = OutputGroup([("--save", per_stream(args.save, i, n)) for i in range(n)])
        stack.push(videos.exit_with)  # after the videos close: they were entered later
        outputs.append(
            PerStream(
                {
                    sid: stack.enter_context(
                        VideoFile(per_stream(args.save, i, n), src.fps, videos)
                    )
                    for i, (sid, src) in enumerate(zip(ids, sources, strict=True))
                }
            )
        )
    if args.jsonl:
        outputs.append(
            stack.enter_context(
                JsonlDetections(args.jsonl, names, getattr(args, "jsonl_stdout", None))
            )
        )
    if show:
        outputs.append(
            PerStream({sid: stack.enter_context(Display(f"edge: {sid}")) for sid in ids})
        )
    if args.telemetry:
        outputs.append(stack.enter_context(TelemetryWriter(args.telemetry)))
    if args.trace:
        from edge.outputs.trace import TraceWriter

        outputs.append(stack.enter_context(TraceWriter(args.trace)))
    if args.serve:
        from edge.outputs.serve import LiveServer

        title = f"edge: {ids[0]}" if n == 1 else f"edge: {n} streams"
        server = stack.enter_context(LiveServer(*args.serve, title=title))
        if analytics is not None:
            server.extra_metrics.append(analytics.metrics)  # type: ignore[attr-defined]
        log.info("serving %s", server.url)
        outputs.append(server)
    return outputs


def report_written(paths: list[Path | None]) -> None:
    """ "wrote X" only for files that passed their check; a named output that was not written
    (no frame ever arrived) is said so."""
    from edge.outputs.files import was_written

    for path in paths:
        if path is None or str(path) == "-":
            continue
        if was_written(path):
            print(f"wrote {path}")
        else:
            log.warning("%s: not written (no frames reached it)", path)
