"""A small MJPEG-over-HTTP stream of the synthetic scene on 127.0.0.1, for live-source tests.

`GET /stream.mjpg` answers `multipart/x-mixed-replace` JPEG frames at a steady FPS, as IP cameras
do; `pause()` stalls the stream with its connections left open; `per_connection=N` closes each
connection after N frames (a camera that keeps dropping). Use it in-process (`MjpegServer`, a context manager) or as a subprocess that a test can kill
for a real outage: `python tests/stream_server.py --port 0` prints `PORT <n>` once it listens, and
is restarted on the same port with `--port <n>`.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2

BOUNDARY = "edgeframe"


def render_jpegs(width: int, height: int, count: int, seed: int = 0) -> list[bytes]:
    """`count` JPEG-encoded frames of the synthetic scene, served in a loop."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from edge.sources.synthetic import SyntheticScene

    scene = SyntheticScene(width, height, seed=seed)
    frames = []
    for i in range(count):
        ok, buf = cv2.imencode(".jpg", scene.frame(i).image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        assert ok
        frames.append(buf.tobytes())
    return frames


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] != "/stream.mjpg":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        srv = self.server
        with srv.lock:
            srv.clients.add(self.connection)
        interval = 1.0 / srv.fps
        due = time.perf_counter()
        i = 0
        try:
            while not srv.stopping.is_set() and i != srv.per_connection:
                if srv.paused.is_set():  # a stalled camera: connection open, no data
                    time.sleep(0.02)
                    due = time.perf_counter()
                    continue
                jpeg = srv.jpegs[i % len(srv.jpegs)]
                head = (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n"
                ).encode()
                self.wfile.write(head + jpeg + b"\r\n")
                self.wfile.flush()
                i += 1
                due += interval
                time.sleep(max(0.0, due - time.perf_counter()))
        except OSError:
            pass  # the client went away, or stop() cut the connection
        finally:
            with srv.lock:
                srv.clients.discard(self.connection)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # quiet: tests read the client's output, not the server's


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # restart on the same port while old sockets sit in TIME_WAIT

    def __init__(
        self, port: int, jpegs: list[bytes], fps: float, per_connection: int | None = None
    ) -> None:
        self.jpegs, self.fps, self.per_connection = jpegs, fps, per_connection
        self.lock = threading.Lock()
        self.clients: set[socket.socket] = set()
        self.stopping = threading.Event()
        self.paused = threading.Event()
        super().__init__(("127.0.0.1", port), _Handler)


class MjpegServer:
    """An MJPEG stream in a background thread; `stop()` also cuts open connections (an outage)."""

    def __init__(
        self,
        port: int = 0,
        fps: float = 30.0,
        size: tuple[int, int] = (160, 120),
        frames: int = 60,
        per_connection: int | None = None,
    ) -> None:
        self._jpegs = render_jpegs(size[0], size[1], frames)
        self.fps, self.per_connection = fps, per_connection
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> MjpegServer:
        self._server = _Server(self.port, self._jpegs, self.fps, self.per_connection)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def pause(self, paused: bool = True) -> None:
        """Keep connections open but send nothing (True), or resume sending (False)."""
        if self._server is not None:
            (self._server.paused.set if paused else self._server.paused.clear)()

    def stop(self) -> None:
        srv = self._server
        if srv is None:
            return
        srv.stopping.set()
        srv.shutdown()
        with srv.lock:
            for conn in list(srv.clients):
                with contextlib.suppress(OSError):  # already closed by the client
                    conn.shutdown(socket.SHUT_RDWR)
        srv.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--size", default="160x120", help="WxH")
    p.add_argument("--per-connection", type=int, help="frames before each connection is closed")
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    server = MjpegServer(args.port, args.fps, (w, h), per_connection=args.per_connection).start()
    print(f"PORT {server.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
