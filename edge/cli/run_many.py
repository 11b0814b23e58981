"""`edge run` with several sources: opens them, their per-stream outputs, and prints the summary.

Called by `edge.cli.run.main` (not a sub-command of its own). One JSONL, telemetry file, trace
and web page hold every stream (each row names its source); videos and windows are per stream.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import threading

from edge.cli.run import _install_stop, _observers, _stdout, describe_identity, report_written
from edge.multistream import MultiLoop, PerSource, per_source_path, stream_ids
from edge.pipeline import LoopOptions
from edge.session import ModelSession
from edge.sinks import Display, JsonlDetections, Sink, VideoFile
from edge.sources import Source, SourceOptions, open_source
from edge.telemetry import TelemetryWriter, format_summary


def _open_sources(
    specs: list[str], options: SourceOptions, stack: contextlib.ExitStack
) -> list[Source]:
    sources = []
    for i, spec in enumerate(specs):
        # Repeated synthetic sources get different scenes.
        opts = dataclasses.replace(options, synthetic_seed=options.synthetic_seed + i)
        sources.append(stack.enter_context(open_source(spec, opts)))
    return sources


def run_many(
    args: argparse.Namespace,
    specs: list[str],
    session: ModelSession,
    options: LoopOptions,
    src_opts: SourceOptions,
    show: bool,
    stop: threading.Event,
) -> int:
    with contextlib.ExitStack() as stack:
        observers = _observers(args, stack, f"edge: {len(specs)} streams")
        sources = _open_sources(specs, src_opts, stack)
        ids = stream_ids([s.name for s in sources])
        sinks: list[Sink] = []
        if args.save:
            videos = {
                sid: stack.enter_context(VideoFile(per_source_path(args.save, i), src.fps))
                for i, (sid, src) in enumerate(zip(ids, sources, strict=True))
            }
            sinks.append(PerSource(videos))
        if args.jsonl:
            sinks.append(
                stack.enter_context(
                    JsonlDetections(args.jsonl, session.contract.names, _stdout(args))
                )
            )
        if show:
            windows = {sid: stack.enter_context(Display(f"edge: {sid}")) for sid in ids}
            sinks.append(PerSource(windows))
        sinks += [o for o in observers if isinstance(o, Sink)]
        telemetry = stack.enter_context(TelemetryWriter(args.telemetry)) if args.telemetry else None
        _install_stop(stop)
        loop = MultiLoop(
            session,
            sources,
            sinks,
            options,
            telemetry,
            stop,
            observers,
            batch_wait_ms=args.batch_wait_ms,
            ids=ids,
            batch=not args.no_batch,
        )
        loop.warm_up()
        if not args.quiet:
            mode = (
                f"batched (up to {loop.most} frames a call, wait <= {args.batch_wait_ms:g} ms)"
                if loop.batched
                else "one frame a call"
            )
            print(f"{len(sources)} streams: {', '.join(ids)}; inference {mode}; Ctrl-C stops")
        result = loop.run()
    header = {
        "model": session.describe(),
        "sources": f"{len(sources)} streams, stopped by {result.stopped_by}",
        "inference calls": ", ".join(
            f"{n} x batch {size}" for size, n in sorted(result.batch_sizes.items())
        ),
    }
    if session.fell_back:
        header["WARNING"] = f"asked for {args.device}, ran on the CPU"
    for sid, s in result.streams.items():
        lat = s.collector.stats("latency_ms")
        line = (
            f"{s.collector.frames} frames, {s.collector.throughput:.1f} FPS, latency p50 "
            f"{lat.p50:.1f} p95 {lat.p95:.1f} ms, dropped {s.source.stats.dropped}"
        )
        if s.score is not None:
            line += f", precision {s.score.precision:.3f} recall {s.score.recall:.3f}"
        if s.identity is not None:
            line += f", {describe_identity(s.identity)}"
        header[f"stream {sid}"] = line
    print(format_summary(result.collector, header))
    written = [per_source_path(args.save, i) for i in range(len(ids))] if args.save else []
    report_written([*written, args.jsonl, args.telemetry, args.trace])
    return 0
