from __future__ import annotations

import json
import logging
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_cli_run import ENV

from edge.errors import EdgeError
from edge.outputs.serve import BOUNDARY, LiveServer, parse_address
from edge.runtime.loop import Loop, LoopOptions
from edge.runtime.session import ModelSession
from edge.sources import SourceOptions, open_source

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)


def get(url: str, timeout: float = 10) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def read_mjpeg(url: str, seconds: float) -> list[bytes]:
    """The JPEG parts of a multipart/x-mixed-replace stream read for `seconds`."""
    parts: list[bytes] = []
    deadline = time.monotonic() + seconds
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        while time.monotonic() < deadline:
            line = r.readline()
            if line.strip() != f"--{BOUNDARY}".encode():
                continue
            headers = {}
            while (line := r.readline().strip()) != b"":
                k, v = line.decode().split(":", 1)
                headers[k.lower()] = v.strip()
            assert headers["content-type"] == "image/jpeg"
            parts.append(r.read(int(headers["content-length"])))
    return parts


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in metrics")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8080", ("127.0.0.1", 8080)),
        (":0", ("127.0.0.1", 0)),
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:9000", ("0.0.0.0", 9000)),
        ("[::1]:81", ("::1", 81)),
        ("localhost:x", ValueError),
        ("70000", ValueError),
        ("", ValueError),
    ],
)
def test_parse_address(text, expected):
    if expected is ValueError:
        with pytest.raises(ValueError, match="--serve"):
            parse_address(text)
    else:
        assert parse_address(text) == expected


def test_address_in_use_and_non_loopback_warning(caplog):
    with LiveServer("127.0.0.1", 0) as first, pytest.raises(EdgeError, match="cannot listen"):
        LiveServer("127.0.0.1", first.port)
    with caplog.at_level(logging.WARNING), LiveServer("0.0.0.0", 0):
        pass
    assert "reachable from other machines" in caplog.text


@pytest.fixture
def running(tmp_path, tiny_model):
    """A real loop on a paced synthetic source, serving on a free port, in a thread."""
    session = ModelSession(tiny_model)
    stop = threading.Event()
    src_opts = SourceOptions(width=160, height=120, fps=30, realtime=True)
    with open_source("synthetic", src_opts) as source, LiveServer(port=0, title="t") as server:
        loop = Loop(session, source, [server], LoopOptions(), stop)
        result: dict = {}
        thread = threading.Thread(target=lambda: result.update(r=loop.run()), daemon=True)
        thread.start()
        yield server, result
        stop.set()
        thread.join(timeout=30)
    with pytest.raises(OSError):  # closed: the port is released
        socket.create_connection(("127.0.0.1", server.port), timeout=2)


def test_endpoints_of_a_running_loop(running):
    server, result = running
    assert not server.needs_image  # nobody watches: frames are neither drawn nor encoded
    parts = read_mjpeg(server.url + "stream.mjpg", 1.5)
    assert len(parts) >= 10  # ~30 FPS paced source, capped at 25 FPS
    img = cv2.imdecode(np.frombuffer(parts[-1], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (120, 160, 3)
    assert read_mjpeg(server.url + "stream/0.mjpg", 0.5)
    time.sleep(0.3)  # the handler notices the closed connection at its next frame
    assert not server.needs_image
    code, kind, body = get(server.url + "healthz")
    assert code == 200 and json.loads(body)["status"] == "ok"
    code, kind, body = get(server.url + "metrics")
    text = body.decode()
    assert code == 200 and kind.startswith("text/plain; version=0.0.4")
    frames = metric(text, "edge_frames_total", source="synthetic")
    assert frames > 10 and metric(text, "edge_fps", source="synthetic") > 0
    assert "# TYPE edge_stage_seconds histogram" in text
    assert "# TYPE edge_stage_recent_seconds summary" in text
    buckets = [
        float(v)
        for v in re.findall(r'edge_stage_seconds_bucket\{source="synthetic",stage="inference",le="[^"]+"\} (\S+)', text)
    ]  # fmt: skip
    assert buckets == sorted(buckets) and len(buckets) == 13
    count = metric(text, "edge_stage_seconds_count", source="synthetic", stage="inference")
    assert buckets[-1] == count >= frames
    labels = {"source": "synthetic", "stage": "latency", "quantile": "0.5"}
    assert metric(text, "edge_stage_recent_seconds", **labels) > 0
    code, kind, body = get(server.url + "telemetry.json")
    data = json.loads(body)
    src = data["sources"][0]
    assert src["id"] == "synthetic" and src["stream"] == "/stream/0.mjpg" and src["frames"] > 10
    assert len(src["series"]["t_s"]) == len(src["series"]["latency_ms"]) > 10
    assert set(data["stages"]) == set(src["stage_ms"])
    code, kind, body = get(server.url)
    assert code == 200 and b"<canvas" in body and b"http" not in body.split(b"<script>")[1]
    assert get(server.url + "nothing")[0] == 404


def test_health_is_503_when_frames_stop():
    with LiveServer(port=0, stale_s=0.2) as server:
        assert json.loads(get(server.url + "healthz")[2])["status"] == "starting"
        server._last_frame = time.monotonic() - 1
        code, _, body = get(server.url + "healthz")
        assert code == 503 and json.loads(body)["status"] == "stale"
        assert metric(get(server.url + "metrics")[2].decode(), "edge_healthy") == 0


def test_a_stream_number_that_is_not_ascii_digits_is_404():
    # "\xb2" (superscript two) is a digit to str.isdigit but not to int(); the request line
    # reaches the handler decoded as Latin-1.
    with LiveServer(port=0) as server:
        conn = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        with conn:
            conn.sendall(b"GET /stream/\xb2.mjpg HTTP/1.0\r\n\r\n")
            reply = conn.recv(200)
    assert reply.split(b"\r\n")[0].endswith(b" 404 Not Found"), reply


# --- a person's view: `edge run --serve` in a real browser ---------------------------------------


def screenshot(url: str, out: Path, budget_ms: int = 3000) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={out}",
             "--window-size=1280,800", f"--virtual-time-budget={budget_ms}", url],
            capture_output=True, timeout=90, check=False,
        )  # fmt: skip


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is missing (apt-get install -y chromium)")
def test_page_in_a_browser_shows_stream_and_charts(tmp_path, tiny_model):
    p = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--model", str(tiny_model), "--realtime",
         "--fps", "20", "--duration", "60", "--width", "320", "--height", "240", "--track",
         "--serve", "127.0.0.1:0", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    try:
        line = p.stderr.readline()
        match = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        url = match.group(1)
        parts = read_mjpeg(url + "stream.mjpg", 2.0)
        assert len(parts) >= 10, len(parts)  # the 20 FPS stream arrives frame by frame
        shot = tmp_path / "page.png"
        screenshot(url, shot)
        img = cv2.imread(str(shot))
        assert img is not None and img.shape[:2] == (800, 1280)
        assert img.std() > 20  # not blank
        stream = img[
            60:500, 20:640
        ]  # the <img> of the stream (layout: see edge/outputs/serve_page.py)
        assert len(np.unique(stream.reshape(-1, 3), axis=0)) > 500  # a picture, not a placeholder
        charts = img[50:640, 680:1240].astype(int)
        # The first stream's colour, #ff8c42 (BGR 66, 140, 255): chart lines and bars.
        orange = (np.abs(charts - [66, 140, 255]).sum(axis=2) < 60).sum()
        assert orange > 500, orange
    finally:
        p.send_signal(signal.SIGINT)
        stdout, _ = p.communicate(timeout=60)
    assert p.returncode == 0 and "stopped by signal" in stdout
