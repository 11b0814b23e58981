"""A live web page for a run: the annotated stream, telemetry charts and Prometheus metrics.

`LiveServer` is an observer of finished frames: it takes the annotated frame (only while someone
watches) and each frame's timing. A ThreadingHTTPServer in a daemon thread serves:

    /                 the page: one MJPEG <img> per stream and charts drawn on <canvas>
    /stream.mjpg      the first stream; /stream/<i>.mjpg the i-th (multipart/x-mixed-replace)
    /telemetry.json   recent per-stream series, what the page polls
    /metrics          Prometheus text format: frames, drops, detections, FPS, stage histograms
    /healthz          200 while frames arrive (or before the first), 503 when they stopped

Frames are drawn and JPEG-encoded only while someone watches a stream, in the viewer's thread
and at most `stream_fps` a second, so a server nobody watches costs the loop next to nothing.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.outputs.serve_page import PAGE
from edge.outputs.sinks import Sink
from edge.runtime.observe import FrameResult
from edge.runtime.stats import Rolling
from edge.runtime.timing import SPANS, STAGES, FrameRecord, FrameTiming
from edge.types import Detections, Frame

log = logging.getLogger(__name__)

BOUNDARY = "edgeframe"
TIMES = (*STAGES, *SPANS)  # histogrammed, in FrameRecord's `<name>_ms`
BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
QUANTILES = (0.5, 0.95, 0.99)
SERIES = 300  # points per stream on the page's charts
RECENT = 1024  # frames behind the summaries' quantiles


def parse_address(text: str) -> tuple[str, int]:
    """ "HOST:PORT", "PORT" or "[V6]:PORT" -> (host, port); host defaults to 127.0.0.1."""
    host, _, port = text.strip().rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        value = int(port)
    except ValueError:
        raise ValueError(f"--serve {text!r}: expected HOST:PORT or PORT") from None
    if not 0 <= value <= 65535:
        raise ValueError(f"--serve {text!r}: port must be in [0, 65535]")
    return host, value


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class _Stream:
    """What the server knows of one source: its latest image and its telemetry."""

    index: int
    image: np.ndarray | None = None
    seq: int = 0
    jpeg: tuple[int, bytes] = (-1, b"")
    encode_lock: threading.Lock = field(default_factory=threading.Lock)
    frames: int = 0
    dropped: int = 0
    detections: int = 0
    rolling: Rolling = field(default_factory=Rolling)
    series: deque = field(default_factory=lambda: deque(maxlen=SERIES))
    buckets: dict[str, list[int]] = field(
        default_factory=lambda: {n: [0] * (len(BUCKETS_S) + 1) for n in TIMES}
    )
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMES, 0.0))
    recent: dict[str, deque] = field(
        default_factory=lambda: {n: deque(maxlen=RECENT) for n in TIMES}
    )


class _Http(ThreadingHTTPServer):
    daemon_threads = True
    live: LiveServer


class _Http6(_Http):
    address_family = socket.AF_INET6


class LiveServer(Sink):
    """Serves the run on http://host:port/ until closed (a context manager, like every sink).

    Raises:
        EdgeError: the address cannot be bound (port in use, unknown host).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        title: str = "edge",
        stream_fps: float = 25.0,
        jpeg_quality: int = 80,
        stale_s: float = 5.0,
    ) -> None:
        if stream_fps <= 0:
            raise ValueError(f"stream_fps must be positive, got {stream_fps}")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality}")
        if not is_loopback(host):
            log.warning("--serve %s: reachable from other machines; the stream has no login", host)
        self.title, self.stream_fps, self.stale_s = title, stream_fps, stale_s
        self.jpeg_quality = jpeg_quality
        self._cond = threading.Condition()
        self._streams: dict[str, _Stream] = {}
        self._viewers = 0
        self._closing = False
        self._started = time.monotonic()
        self._last_frame: float | None = None
        # More Prometheus text appended to /metrics (line and zone counts), called per scrape.
        self.extra_metrics: list[Callable[[], str]] = []
        cls = _Http6 if ":" in host else _Http
        try:
            self._server = cls((host, port), _Handler)
        except OSError as exc:
            raise EdgeError(
                f"--serve {host}:{port}: cannot listen ({exc.strerror or exc})"
            ) from None
        self._server.live = self
        self.host, self.port = host, int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="serve"
        )
        self._thread.daemon = True
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def needs_image(self) -> bool:
        """Annotated frames are wanted only while someone watches a stream."""
        return self._viewers > 0

    # --- from the loop -------------------------------------------------------------------------

    def _stream(self, source: str) -> _Stream:
        s = self._streams.get(source)
        if s is None:
            s = self._streams[source] = _Stream(len(self._streams))
        return s

    needs_timing = True  # its charts show the frame's stage times

    def on_frame(self, result: FrameResult) -> bool:
        self.write(result.frame, result.detections, result.image)
        if result.record is not None and result.timing is not None:
            self.observe(result.record, result.timing)
        return True

    def write(self, frame: Frame, detections: Detections, annotated: np.ndarray | None) -> bool:
        if annotated is not None:
            with self._cond:
                s = self._stream(frame.source_id)
                s.image, s.seq = annotated, s.seq + 1  # drawing made a new image: no copy needed
                self._cond.notify_all()
        return True

    def observe(self, record: FrameRecord, spans: FrameTiming) -> None:
        with self._cond:
            s = self._stream(record.source)
            s.frames += 1
            s.dropped = record.dropped
            s.detections += record.detections
            s.rolling.add(spans.sink_end_ns, record.latency_ms)
            s.series.append(
                (record.t_ms / 1000, record.latency_ms, record.inference_ms, s.rolling.fps)
            )
            for name in TIMES:
                ms = getattr(record, f"{name}_ms")
                s.buckets[name][int(np.searchsorted(BUCKETS_S, ms / 1000))] += 1
                s.sums[name] += ms / 1000
                s.recent[name].append(ms)
            self._last_frame = time.monotonic()

    def close(self) -> None:
        """Stop serving: viewers' connections end, the port is released. Safe to call twice."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- for the handlers ----------------------------------------------------------------------

    def next_jpeg(self, index: int, after: int, timeout: float) -> tuple[int, bytes] | None:
        """The JPEG of stream `index` newer than sequence `after`; None on timeout or close."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closing:
                    return None
                s = next((v for v in self._streams.values() if v.index == index), None)
                if s is not None and s.image is not None and s.seq > after:
                    image, seq = s.image, s.seq
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
        with s.encode_lock:  # viewers of one stream share one encoding per frame
            if s.jpeg[0] != seq:
                ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
                if not ok:
                    return None
                s.jpeg = (seq, buf.tobytes())
            return s.jpeg

    def viewer(self, joined: bool) -> None:
        with self._cond:
            self._viewers += 1 if joined else -1

    @property
    def closing(self) -> bool:
        return self._closing

    def health(self) -> tuple[str, float | None]:
        """("ok" | "starting" | "stale", seconds since the last frame)."""
        with self._cond:
            last = self._last_frame
        if last is None:
            return "starting", None
        age = time.monotonic() - last
        return ("ok" if age <= self.stale_s else "stale"), age

    def telemetry(self) -> dict:
        """What the page charts: per stream, recent series and mean time per stage."""
        health, _ = self.health()
        with self._cond:
            sources = [_stream_json(sid, s) for sid, s in self._streams.items()]
        return {"title": self.title, "health": health, "stages": list(STAGES), "sources": sources}

    def metrics(self) -> str:
        """Prometheus text exposition format (version 0.0.4)."""
        out: list[str] = []

        def family(name: str, kind: str, help_: str) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")

        with self._cond:
            streams = [(_label(sid), s) for sid, s in self._streams.items()]
            counters = (
                ("edge_frames_total", "frames", "Frames processed."),
                ("edge_dropped_frames_total", "dropped", "Frames the source skipped."),
                ("edge_detections_total", "detections", "Detections reported."),
            )
            for name, attr, help_ in counters:
                family(name, "counter", help_)
                out += [f'{name}{{source="{sid}"}} {getattr(s, attr)}' for sid, s in streams]
            family("edge_fps", "gauge", "Frames finished per second over the last second.")
            out += [f'edge_fps{{source="{sid}"}} {s.rolling.fps:.3f}' for sid, s in streams]
            family("edge_stage_seconds", "histogram", "Time per stage of each frame.")
            for sid, s in streams:
                out += _histogram(sid, s)
            family(
                "edge_stage_recent_seconds", "summary", f"Stage time over the last {RECENT} frames."
            )
            for sid, s in streams:
                out += _summary(sid, s)
            viewers = self._viewers
        family("edge_stream_viewers", "gauge", "Clients watching an MJPEG stream.")
        out.append(f"edge_stream_viewers {viewers}")
        health, _ = self.health()
        family("edge_healthy", "gauge", "1 while frames arrive.")
        out.append(f"edge_healthy {int(health != 'stale')}")
        return "\n".join(out) + "\n" + "".join(extra() for extra in self.extra_metrics)

    def __enter__(self) -> LiveServer:
        return self


def _stream_json(sid: str, s: _Stream) -> dict:
    series = list(s.series)
    cols = list(zip(*series, strict=True)) if series else [()] * 4
    keys = ("t_s", "latency_ms", "inference_ms", "fps")
    stage_ms = {
        n: float(np.mean(list(s.recent[n])[-SERIES:])) if s.recent[n] else 0.0 for n in STAGES
    }
    return {
        "id": sid,
        "index": s.index,
        "stream": f"/stream/{s.index}.mjpg",
        "frames": s.frames,
        "dropped": s.dropped,
        "detections": s.detections,
        "fps": round(s.rolling.fps, 2),
        "latency_ms": round(s.rolling.latency_ms, 3),
        "series": {k: [round(v, 3) for v in col] for k, col in zip(keys, cols, strict=True)},
        "stage_ms": {n: round(v, 3) for n, v in stage_ms.items()},
    }


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _histogram(sid: str, s: _Stream) -> list[str]:
    lines = []
    for name in TIMES:
        labels = f'source="{sid}",stage="{name}"'
        cumulative = np.cumsum(s.buckets[name])
        for le, count in zip((*BUCKETS_S, "+Inf"), cumulative, strict=True):
            lines.append(f'edge_stage_seconds_bucket{{{labels},le="{le}"}} {count}')
        lines.append(f"edge_stage_seconds_sum{{{labels}}} {s.sums[name]:.6f}")
        lines.append(f"edge_stage_seconds_count{{{labels}}} {s.frames}")
    return lines


def _summary(sid: str, s: _Stream) -> list[str]:
    lines = []
    for name in TIMES:
        labels = f'source="{sid}",stage="{name}"'
        recent = np.asarray(s.recent[name], np.float64)
        values = np.percentile(recent, [q * 100 for q in QUANTILES]) if recent.size else []
        for q, v in zip(QUANTILES, values, strict=False):
            lines.append(f'edge_stage_recent_seconds{{{labels},quantile="{q}"}} {v / 1000:.6f}')
        lines.append(f"edge_stage_recent_seconds_sum{{{labels}}} {recent.sum() / 1000:.6f}")
        lines.append(f"edge_stage_recent_seconds_count{{{labels}}} {recent.size}")
    return lines


class _Handler(BaseHTTPRequestHandler):
    server: _Http
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:
        log.debug("serve: " + fmt, *args)  # not to stderr: a request is no news

    def do_GET(self) -> None:
        live = self.server.live
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            page = PAGE.replace("__TITLE__", _html(live.title))
            self._send(200, "text/html; charset=utf-8", page.encode())
        elif path == "/telemetry.json":
            self._send(200, "application/json", json.dumps(live.telemetry()).encode())
        elif path == "/metrics":
            self._send(200, "text/plain; version=0.0.4; charset=utf-8", live.metrics().encode())
        elif path == "/healthz":
            health, age = live.health()
            body = {"status": health, "last_frame_age_s": None if age is None else round(age, 3)}
            self._send(
                503 if health == "stale" else 200, "application/json", json.dumps(body).encode()
            )
        elif path == "/stream.mjpg":
            self._mjpeg(0)
        elif (
            path.startswith("/stream/")
            and path.endswith(".mjpg")
            and path[8:-5].isascii()
            and path[8:-5].isdigit()
        ):
            self._mjpeg(int(path[8:-5]))
        else:
            self._send(404, "text/plain", b"not found\n")

    def _send(self, code: int, kind: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _mjpeg(self, index: int) -> None:
        live = self.server.live
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        live.viewer(True)
        seq, gap = 0, 1.0 / live.stream_fps
        try:
            while not live.closing:
                sent = time.monotonic()
                got = live.next_jpeg(index, seq, timeout=1.0)
                if got is None:
                    continue
                seq, jpeg = got
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode() + jpeg + b"\r\n")
                self.wfile.flush()
                time.sleep(max(0.0, gap - (time.monotonic() - sent)))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the viewer left
        finally:
            live.viewer(False)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
