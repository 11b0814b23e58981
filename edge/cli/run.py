"""`edge run`: detect objects in a camera, video, stream, images or the synthetic scene."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from edge.cli import run_analytics
from edge.cli.argtypes import (
    device,
    fps,
    fraction,
    imgsz,
    integer,
    number,
    positive_float,
    positive_int,
    seed,
    side,
    threads,
)
from edge.cli.run_outputs import check_run_outputs, open_outputs, per_stream, report_written
from edge.errors import CONFIG_BYTES, EdgeError, ModelError, read_text_bounded
from edge.runtime.abort import FinishingStack, abort
from edge.runtime.bundled import bundled_model
from edge.runtime.providers import DEVICES

if TYPE_CHECKING:
    from edge.runtime.loop import Loop, LoopResult
    from edge.runtime.session import ModelSession
    from edge.runtime.tracking import IdentityScore
    from edge.sources import SourceOptions

log = logging.getLogger("edge")

DEMO_FRAMES = 300  # `edge run` alone stops after this many synthetic frames
EXIT_SOURCE_LOST = 3  # a live source or the model server was lost for good (gave up reconnecting)


def _address(text: str) -> tuple[str, int]:
    from edge.outputs.serve import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--serve {text!r}: ")) from None


def _source_specs(args: argparse.Namespace) -> list[str]:
    """--source values, then the lines of --sources; the synthetic scene when neither is given."""
    specs = list(args.source or [])
    if args.sources is not None:
        if not args.sources.exists():
            raise ValueError(f"--sources {args.sources}: no such file")
        what = f"--sources {args.sources}"
        lines = read_text_bounded(args.sources, CONFIG_BYTES, what).splitlines()
        specs += [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
        if not specs:
            raise ValueError(f"--sources {args.sources}: no sources in the file")
    return specs or ["synthetic"]


def has_display() -> bool:
    """Whether a display is configured (not yet whether a window opens: `decide_show`)."""
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def decide_show(asked: bool | None) -> bool:
    """--show / --no-show / neither (a window where a display is configured), kept only if a
    window really opens: asked for, one line naming --show; implied, one warning and none."""
    from edge.outputs.sinks import window_problem

    if asked is False or (asked is None and not has_display()):
        return False
    problem = window_problem()
    if not problem:
        return True
    if asked:
        raise EdgeError(f"--show: cannot open a window ({problem}); run headless with --no-show")
    log.warning("no window (%s); running headless, as with --no-show", problem)
    return False


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a detector on a camera, video, stream, images or the synthetic scene",
        description="Run a detector with per-frame, per-stage telemetry. With no arguments: the bundled "
        f"model on the synthetic scene for {DEMO_FRAMES} frames, headless when there is no display.",
    )
    src = p.add_argument_group("source")
    src.add_argument(
        "--source",
        action="append",
        help="camera index (0), video file, rtsp/http URL, image, "
        "folder, glob, or 'synthetic' (default); repeat for several streams in one run",
    )
    src.add_argument(
        "--sources", type=Path, metavar="FILE", help="more sources, one per line (# comments)"
    )
    src.add_argument(
        "--realtime",
        action="store_true",
        help="pace files at their native FPS and drop frames like a live source",
    )
    src.add_argument("--width", type=side, help="requested camera width (synthetic: frame width)")
    src.add_argument(
        "--height", type=side, help="requested camera height (synthetic: frame height)"
    )
    src.add_argument("--fps", type=fps, help="requested camera FPS (synthetic: scene FPS)")
    src.add_argument(
        "--reconnect",
        type=integer(0, 1000),
        default=10,
        metavar="N",
        help="reconnect attempts per outage of a live source or a Triton server (0: off)",
    )
    src.add_argument(
        "--open-timeout",
        type=number(0.0, 3600.0, open_low=True),
        default=5.0,
        metavar="SECONDS",
        help="longest wait for a stream or FIFO to open (default 5)",
    )
    src.add_argument(
        "--read-timeout",
        type=number(0.0, 3600.0, open_low=True),
        default=5.0,
        metavar="SECONDS",
        help="longest wait for a stream's next frame (or a Triton server's answer) before "
        "reconnecting (default 5)",
    )
    src.add_argument("--seed", type=seed, default=0, help="synthetic scene seed")
    src.add_argument("--max-frames", type=positive_int, help="stop after N frames")
    src.add_argument(
        "--duration", type=positive_float, metavar="SECONDS", help="stop after this many seconds"
    )
    mod = p.add_argument_group("model")
    mod.add_argument(
        "--model", type=Path, help="ONNX model (default: the bundled models/default.onnx)"
    )
    mod.add_argument(
        "--device",
        default="auto",
        type=device(DEVICES),
        metavar="DEVICE",
        help=f"{', '.join(DEVICES)} (execution provider; auto tries TensorRT, CUDA, OpenVINO, "
        "DirectML, CoreML, then CPU), or triton://HOST:PORT/MODEL: the model on a Triton "
        "Inference Server, everything else here (needs pip install 'edge[triton]')",
    )
    mod.add_argument(
        "--triton-shm",
        choices=("auto", "on", "off"),
        default="auto",
        help="a Triton server on this host: tensors through system shared memory (auto: on for "
        "127.0.0.1/localhost)",
    )
    mod.add_argument(
        "--strict-device", action="store_true", help="fail instead of falling back to the CPU"
    )
    mod.add_argument("--trt-cache", type=Path, metavar="DIR", help="TensorRT engine cache folder")
    mod.add_argument("--no-trt-fp16", action="store_true", help="TensorRT in fp32")
    mod.add_argument(
        "--threads", type=threads, default=0, help="ONNX Runtime intra-op threads (0: default)"
    )
    mod.add_argument(
        "--imgsz", type=imgsz, help="input size N or HxW for models with a dynamic input"
    )
    mod.add_argument("--conf", type=fraction, default=0.25, help="score threshold (default 0.25)")
    mod.add_argument("--iou", type=fraction, default=0.45, help="NMS IoU threshold (default 0.45)")
    mod.add_argument("--classes", help="keep only these classes: names or ids, comma-separated")
    mod.add_argument(
        "--max-det", type=integer(1, 100_000), default=300, help="most detections per frame"
    )
    out = p.add_argument_group("output")
    show = out.add_mutually_exclusive_group()
    show.add_argument(
        "--show",
        dest="show",
        action="store_true",
        default=None,
        help="show a window (default when a display exists)",
    )
    show.add_argument("--no-show", dest="show", action="store_false", help="never show a window")
    out.add_argument("--save", type=Path, metavar="OUT.mp4", help="write the annotated video")
    out.add_argument(
        "--jsonl", type=Path, metavar="FILE", help="write one JSON line of detections per frame"
    )
    out.add_argument(
        "--telemetry", type=Path, metavar="FILE", help="write per-frame timings (.jsonl or .csv)"
    )
    out.add_argument("--no-overlay", action="store_true", help="no FPS/latency text on frames")
    out.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    more = p.add_argument_group("tracking, live view, tracing, several streams")
    more.add_argument("--track", action="store_true", help="give each object a stable id")
    more.add_argument(
        "--serve",
        type=_address,
        metavar="HOST:PORT",
        help="web page with the live stream, charts, /metrics and /healthz (e.g. 127.0.0.1:8080)",
    )
    more.add_argument(
        "--trace", type=Path, metavar="FILE.json", help="per-frame stage spans for Perfetto"
    )
    more.add_argument(
        "--batch-wait-ms",
        type=number(0.0, 10_000.0),
        default=5.0,
        metavar="MS",
        help="several streams, dynamic-batch model: longest wait to fill a batch (default 5)",
    )
    more.add_argument(
        "--no-batch", action="store_true", help="several streams: one frame per inference call"
    )
    run_analytics.add_arguments(p)
    p.set_defaults(handler=main, run_parser=p)


def _classes(text: str | None, names: tuple[str, ...]) -> tuple[int, ...] | None:
    if text is None:
        return None
    parts = [t.strip() for t in text.split(",") if t.strip()]
    if not parts:
        raise ValueError(
            f"--classes {text!r}: names no class; give names or ids, comma-separated "
            f"(this model knows {', '.join(names)})"
        )
    ids = []
    for part in parts:
        if part.isascii() and part.isdigit() and int(part) < len(names):
            ids.append(int(part))
        elif part in names:
            ids.append(names.index(part))
        else:
            raise ValueError(
                f"--classes: unknown class {part!r}; this model knows {', '.join(names)}"
            )
    return tuple(ids)


def main(args: argparse.Namespace) -> int:
    from edge.outputs.progress import terminal_progress
    from edge.runtime.loop import Loop, LoopOptions, stream_ids
    from edge.runtime.postprocess import PostprocessOptions
    from edge.runtime.remote_address import RemoteOptions
    from edge.runtime.session import REMOTE, SessionOptions, open_session
    from edge.runtime.stats import format_summary
    from edge.runtime.tracking import TrackerOptions
    from edge.sources import SourceOptions

    if args.config is not None:
        args = run_analytics.apply_config(args, args.run_parser)
    specs = _source_specs(args)
    run_analytics.check(args, len(specs))
    check_run_outputs(args, specs)
    if args.jsonl and str(args.jsonl) == "-":
        # stdout carries the detections; everything else this run prints goes to stderr.
        args.jsonl_stdout = sys.stdout
        sys.stdout = sys.stderr
    track = args.track or run_analytics.wanted(args)  # lines and zones follow objects
    show = decide_show(args.show)
    # From here on Ctrl-C/SIGTERM ask for a clean stop (files finalised), even during start-up.
    stop = threading.Event()
    _install_stop(stop)
    remote = args.device.startswith(REMOTE)  # the model is on a Triton server
    model = args.model if remote else args.model or bundled_model()
    if model is None and not remote:
        raise ModelError(
            "no --model given and no bundled model (edge/_bundled/default.onnx in an install, "
            "models/default.onnx in a checkout); pass --model"
        )
    session = open_session(
        model,
        SessionOptions(
            device=args.device,
            strict_device=args.strict_device,
            trt_cache=args.trt_cache,
            trt_fp16=not args.no_trt_fp16,
            threads=args.threads,
            spinning=False,  # the loop's reader and finishing threads need the cores
        ),
        RemoteOptions(args.triton_shm, args.read_timeout, args.reconnect),
    )
    names = session.contract.names
    post = PostprocessOptions(
        conf=args.conf, iou=args.iou, classes=_classes(args.classes, names), max_det=args.max_det
    )
    max_frames = args.max_frames
    if max_frames is None and args.duration is None and set(specs) == {"synthetic"}:
        max_frames = DEMO_FRAMES
    options = LoopOptions(
        max_frames=max_frames,
        duration=args.duration,
        imgsz=args.imgsz,
        post=post,
        overlay=not args.no_overlay,
        track=TrackerOptions() if track else None,
        batch=not args.no_batch,
        batch_wait_ms=args.batch_wait_ms,
    )
    src_opts = SourceOptions(
        width=args.width,
        height=args.height,
        fps=args.fps,
        realtime=args.realtime,
        reconnect_attempts=args.reconnect,
        open_timeout_s=args.open_timeout,
        read_timeout_s=args.read_timeout,
        synthetic_seed=args.seed,
    )
    imgsz = session.input_size(args.imgsz)
    if not args.quiet:
        print(f"model: {session.describe()}, input {imgsz[0]}x{imgsz[1]}, {len(names)} classes")
        if session.device.startswith("tensorrt"):
            print(
                "TensorRT builds an engine on first use; this can take minutes (cached with --trt-cache)"
            )
    warm = session.warm_up(imgsz)
    with FinishingStack() as stack:  # an abort waits for the outputs to close
        stack.callback(session.close)
        sources = _open_sources(specs, src_opts, stack)
        ids = stream_ids([s.name for s in sources])
        analytics = run_analytics.build(args, ids, sources, names, stack)
        observers = open_outputs(args, stack, sources, ids, names, show, analytics)
        if len(sources) == 1:  # frames done/total, FPS, ETA on a terminal
            progress = terminal_progress(sources[0], specs[0], max_frames, args.quiet)
            observers += [stack.enter_context(progress)] if progress else []
        processors = [analytics] if analytics is not None else []
        loop = Loop(session, sources, observers, options, stop, processors, ids=ids)
        loop.warm_up()
        if not args.quiet:
            print(_describe_start(loop, warm, show))
        result = loop.run()
    header = _summary_header(args, session, result)
    header["loop"] = loop.describe_plan()
    if post.nonfinite.rows:
        header["dropped"] = (
            f"{post.nonfinite.rows} output rows with NaN or infinite values "
            f"({post.nonfinite.frames} frames), neither drawn nor written"
        )
    print(format_summary(result.collector, header))
    if analytics is not None:
        print(analytics.summary())
    written = [per_stream(args.save, i, len(ids)) for i in range(len(ids))] if args.save else []
    report_written([*written, args.jsonl, args.telemetry, args.trace, args.events])
    if result.lost:
        log.error("lost for good (gave up reconnecting): %s", ", ".join(result.lost))
        return EXIT_SOURCE_LOST
    if result.stopped_by == "server lost":
        return EXIT_SOURCE_LOST
    return 0


def _open_sources(specs: list[str], options: SourceOptions, stack: contextlib.ExitStack) -> list:
    from edge.sources import open_source

    sources = []
    for i, spec in enumerate(specs):
        # Repeated synthetic sources get different scenes.
        opts = dataclasses.replace(options, synthetic_seed=options.synthetic_seed + i)
        sources.append(stack.enter_context(open_source(spec, opts)))
    return sources


def _describe_start(loop: Loop, warm: float, show: bool) -> str:
    stop = ("q in the window or " if show else "") + "Ctrl-C stops"
    if len(loop.sources) == 1:
        source = loop.sources[0]
        kind = "live" if source.live else "in order"
        return f"source: {source.name} ({kind}), warm-up {warm * 1000:.0f} ms; {stop}"
    mode = (
        f"batched (up to {loop.most} frames a call, wait <= {loop.options.batch_wait_ms:g} ms)"
        if loop.batched
        else "one frame a call"
    )
    return f"{len(loop.sources)} streams: {', '.join(loop.ids)}; inference {mode}; {stop}"


def _summary_header(
    args: argparse.Namespace, session: ModelSession, result: LoopResult
) -> dict[str, str]:
    from edge.runtime.stats import describe_outages

    streams = result.streams
    several = len(streams) > 1
    what = f"{len(streams)} streams" if several else next(iter(streams.values())).source.name
    header = {
        "model": session.describe(),
        "sources" if several else "source": f"{what}, stopped by {result.stopped_by}",
    }
    if several:
        header["inference calls"] = ", ".join(
            f"{n} x batch {size}" for size, n in sorted(result.batch_sizes.items())
        )
    if session.fell_back:
        header["WARNING"] = f"asked for {args.device}, ran on the CPU"
    server = session.server_stats()  # a model on a Triton server: what the server did
    if server is not None:
        header["server"] = server.describe()
    for i, line in enumerate(describe_outages(result.server_events), start=1):
        header[f"server outage {i}"] = line
    for sid, s in streams.items():
        at = f"stream {sid} " if several else ""
        if several:
            lat = s.collector.stats("latency_ms")
            header[f"stream {sid}"] = (
                f"{s.collector.frames} frames, {s.collector.throughput:.1f} FPS, latency p50 "
                f"{lat.p50:.1f} p95 {lat.p95:.1f} ms, dropped {s.source.stats.dropped}"
            )
        stats = s.source.stats
        if stats.reconnects or stats.events:
            header[f"{at}source events"] = f"{stats.reconnects} reconnects, " + ", ".join(
                e.kind for e in stats.events
            )
        for i, line in enumerate(describe_outages(s.events), start=1):
            header[f"{at}outage {i}"] = line
        if stats.bad:
            header[f"{at}skipped"] = (
                f"{stats.bad} unreadable frame(s) or image(s) (see the warnings above)"
            )
        if s.score is not None:
            header[f"{at}accuracy"] = (
                f"precision {s.score.precision:.3f} recall {s.score.recall:.3f} "
                f"(IoU 0.5, {s.score.frames} frames)"
            )
        if s.identity is not None:
            header[f"{at}tracking"] = describe_identity(s.identity)
    return header


def describe_identity(score: IdentityScore) -> str:
    return (
        f"{score.switches} id switches, {score.coverage:.1%} of truth boxes tracked "
        f"({score.frames} frames)"
    )


def _install_stop(stop: threading.Event) -> None:
    """First Ctrl-C or SIGTERM asks the loop to finish the frame in hand; a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():
            abort()  # KeyboardInterrupt, once the files being finished are whole
            return
        stop.set()
        log.info("stopping (%s); again to abort", signal.Signals(signum).name)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


__all__ = ["add_parser", "main", "bundled_model", "EdgeError"]
