"""`edge run`: detect objects in a camera, video, stream, images or the synthetic scene."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from edge.cli.argtypes import (
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
from edge.errors import EdgeError, ModelError

if TYPE_CHECKING:
    from edge.tracking import IdentityScore

log = logging.getLogger("edge")

DEMO_FRAMES = 300  # `edge run` alone stops after this many synthetic frames


def bundled_model() -> Path | None:
    """The default model shipped in the repository's models/ folder, if present."""
    for folder in (Path(__file__).resolve().parents[2] / "models", Path.cwd() / "models"):
        candidate = folder / "default.onnx"
        if candidate.is_file():
            return candidate
    return None


def _address(text: str) -> tuple[str, int]:
    from edge.serve import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--serve {text!r}: ")) from None


def _source_specs(args: argparse.Namespace) -> list[str]:
    """--source values, then the lines of --sources; the synthetic scene when neither is given."""
    specs = list(args.source or [])
    if args.sources is not None:
        if not args.sources.is_file():
            raise ValueError(f"--sources {args.sources}: no such file")
        try:
            lines = args.sources.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"--sources {args.sources}: not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
        except OSError as exc:
            raise ValueError(f"--sources {args.sources}: cannot read it ({exc.strerror})") from None
        specs += [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
        if not specs:
            raise ValueError(f"--sources {args.sources}: no sources in the file")
    return specs or ["synthetic"]


def check_run_outputs(args: argparse.Namespace, specs: list[str]) -> None:
    """Every file this run will write, checked against each other and every input before work."""
    from edge.multistream import per_source_path
    from edge.outputs import check_outputs
    from edge.telemetry import events_path

    saves = [args.save] if len(specs) == 1 or not args.save else []
    saves += [per_source_path(args.save, i) for i in range(len(specs))] if not saves else []
    outputs = [("--save", p) for p in saves if p is not None]
    outputs += [("--jsonl", args.jsonl), ("--telemetry", args.telemetry), ("--trace", args.trace)]
    if args.telemetry and args.telemetry.suffix.lower() == ".csv":
        outputs.append(("--telemetry", events_path(args.telemetry)))
    inputs = [args.model or bundled_model(), args.sources, *specs]
    check_outputs(outputs, inputs, stdout_ok=("--jsonl",))


def _observers(args: argparse.Namespace, stack: contextlib.ExitStack, title: str) -> list:
    """The trace writer and the web server asked for, opened in `stack`."""
    observers: list = []
    if args.trace:
        from edge.trace import TraceWriter

        observers.append(stack.enter_context(TraceWriter(args.trace)))
    if args.serve:
        from edge.serve import LiveServer

        server = stack.enter_context(LiveServer(*args.serve, title=title))
        log.info("serving %s", server.url)
        observers.append(server)
    return observers


def has_display() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


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
        help="reconnect attempts per outage of a live source (0: off)",
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
        help="longest wait for a stream's next frame before reconnecting (default 5)",
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
        choices=("auto", "cpu", "cuda", "tensorrt"),
        help="execution provider; auto tries TensorRT, CUDA, then CPU",
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
    p.set_defaults(handler=main)


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
        if part.isdigit() and int(part) < len(names):
            ids.append(int(part))
        elif part in names:
            ids.append(names.index(part))
        else:
            raise ValueError(
                f"--classes: unknown class {part!r}; this model knows {', '.join(names)}"
            )
    return tuple(ids)


def main(args: argparse.Namespace) -> int:
    from edge.pipeline import Loop, LoopOptions
    from edge.postprocess import PostprocessOptions
    from edge.session import ModelSession, SessionOptions
    from edge.sinks import Display, JsonlDetections, Sink, VideoFile
    from edge.sources import SourceOptions, open_source
    from edge.telemetry import TelemetryWriter, describe_outages, format_summary
    from edge.tracking import TrackerOptions

    specs = _source_specs(args)
    check_run_outputs(args, specs)
    if args.jsonl and str(args.jsonl) == "-":
        # stdout carries the detections; everything else this run prints goes to stderr.
        args.jsonl_stdout = sys.stdout
        sys.stdout = sys.stderr
    # From here on Ctrl-C/SIGTERM ask for a clean stop (files finalised), even during start-up.
    stop = threading.Event()
    _install_stop(stop)
    model = args.model or bundled_model()
    if model is None:
        raise ModelError("no --model given and no bundled model in models/default.onnx")
    session = ModelSession(
        model,
        SessionOptions(
            device=args.device,
            strict_device=args.strict_device,
            trt_cache=args.trt_cache,
            trt_fp16=not args.no_trt_fp16,
            threads=args.threads,
        ),
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
        track=TrackerOptions() if args.track else None,
    )
    src_opts = SourceOptions(
        width=args.width,
        height=args.height,
        fps=args.fps,
        realtime=args.realtime,
        reconnect_attempts=args.reconnect,
        synthetic_seed=args.seed,
        open_timeout_s=args.open_timeout,
        read_timeout_s=args.read_timeout,
    )
    imgsz = session.input_size(args.imgsz)
    if not args.quiet:
        print(f"model: {session.describe()}, input {imgsz[0]}x{imgsz[1]}, {len(names)} classes")
        if session.device.startswith("tensorrt"):
            print(
                "TensorRT builds an engine on first use; this can take minutes (cached with --trt-cache)"
            )
    warm = session.warm_up(imgsz)
    show = has_display() if args.show is None else args.show
    if len(specs) > 1:
        from edge.cli.run_many import run_many

        return run_many(args, specs, session, options, src_opts, show, stop)
    with contextlib.ExitStack() as stack:
        observers = _observers(args, stack, f"edge: {specs[0]}")
        source = stack.enter_context(open_source(specs[0], src_opts))
        sinks = []
        if args.save:
            sinks.append(stack.enter_context(VideoFile(args.save, source.fps)))
        if args.jsonl:
            sinks.append(stack.enter_context(JsonlDetections(args.jsonl, names, _stdout(args))))
        if show:
            sinks.append(stack.enter_context(Display(f"edge: {specs[0]}")))
        telemetry = stack.enter_context(TelemetryWriter(args.telemetry)) if args.telemetry else None
        if not args.quiet:
            print(
                f"source: {source.name} ({'live' if source.live else 'in order'}), warm-up {warm * 1000:.0f} ms; "
                + ("q in the window or " if show else "")
                + "Ctrl-C stops"
            )
        sinks += [o for o in observers if isinstance(o, Sink)]
        result = Loop(session, source, sinks, options, telemetry, stop, observers).run()
        stats = source.stats
    header = {
        "model": session.describe(),
        "source": f"{source.name}, stopped by {result.stopped_by}",
    }
    if session.fell_back:
        header["WARNING"] = f"asked for {args.device}, ran on the CPU"
    if stats.reconnects or stats.events:
        header["source events"] = f"{stats.reconnects} reconnects, " + ", ".join(
            e.kind for e in stats.events
        )
    for i, line in enumerate(describe_outages(result.events), start=1):
        header[f"outage {i}"] = line
    if stats.bad:
        header["skipped"] = f"{stats.bad} unreadable frame(s) or image(s) (see the warnings above)"
    if result.score is not None:
        s = result.score
        header["accuracy"] = (
            f"precision {s.precision:.3f} recall {s.recall:.3f} (IoU 0.5, {s.frames} frames)"
        )
    if result.identity is not None:
        header["tracking"] = describe_identity(result.identity)
    print(format_summary(result.collector, header))
    report_written([args.save, args.jsonl, args.telemetry, args.trace])
    return 0


def _stdout(args: argparse.Namespace) -> object:
    return getattr(args, "jsonl_stdout", None)


def report_written(paths: list[Path | None]) -> None:
    """ "wrote X" only for files that passed their check; a named output that was not written
    (no frame ever arrived) is said so."""
    from edge.outputs import was_written

    for path in paths:
        if path is None or str(path) == "-":
            continue
        if was_written(path):
            print(f"wrote {path}")
        else:
            log.warning("%s: not written (no frames reached it)", path)


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
            raise KeyboardInterrupt
        stop.set()
        log.info("stopping (%s); again to abort", signal.Signals(signum).name)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


__all__ = ["add_parser", "main", "bundled_model", "EdgeError"]
