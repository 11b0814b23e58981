"""Faults in sources: a live MJPEG stream that dies, stalls and comes back; corrupt videos and images.

The stream is a real HTTP server on 127.0.0.1 (tests/stream_server.py) read by OpenCV's FFMPEG
backend, as a camera on the network would be.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest
from stream_server import MjpegServer

from edge.errors import SourceError
from edge.outputs.telemetry_file import read_events, read_records
from edge.sources import SourceOptions, capture, latest, open_source
from edge.sources.synthetic import SyntheticScene

TESTS = Path(__file__).resolve().parent
ENV = {**os.environ, "DISPLAY": "", "WAYLAND_DISPLAY": "", "PYTHONUNBUFFERED": "1"}
FAST = SourceOptions(reconnect_attempts=20, reconnect_backoff=(0.1, 0.3))


# --- a live stream ------------------------------------------------------------------------------


def _take(src, n: int, timeout: float = 20.0, stalled=None) -> int:
    """Read n frames from src (or fewer if it ends, `stalled()` says stop, or the time runs out)."""
    got, deadline = 0, time.monotonic() + timeout
    for _ in src.frames(stalled):
        got += 1
        if got >= n or time.monotonic() > deadline:
            break
    return got


def test_ffmpeg_reads_the_mjpeg_stream():
    with MjpegServer() as server, open_source(server.url, FAST) as src:
        frames = [f for _, f in zip(range(5), src, strict=False)]
    assert src.live and len(frames) == 5
    assert frames[0].image.shape == (120, 160, 3)


def test_stream_reconnects_after_the_server_restarts():
    server = MjpegServer().start()
    try:
        with open_source(server.url, FAST) as src:
            assert _take(src, 10) == 10
            server.stop()
            time.sleep(0.5)
            server.start()  # same port
            assert _take(src, 10) == 10
            kinds = [e.kind for e in src.stats.events]
    finally:
        server.stop()
    assert kinds == ["lost", "reconnected"] and src.stats.reconnects == 1
    back = src.stats.events[1]
    outage_s = (back.at_ns - back.since_ns) / 1e9
    assert outage_s >= 0.5  # the server was down that long (how much longer is timing)
    # ~30 FPS before the outage: the estimate of frames lost follows the outage's length
    assert back.frames_lost == pytest.approx(outage_s * 30, rel=0.35)


def test_a_stalled_stream_times_out_instead_of_blocking(monkeypatch):
    # The server keeps the connection open and sends nothing: without a read timeout cv2.read
    # blocks for 30 s. With it the source notices, reconnects, and recovers when data flows again.
    monkeypatch.setattr(capture, "STREAM_TIMEOUT_MS", 800)
    with MjpegServer() as server, open_source(server.url, FAST) as src:
        assert _take(src, 5) == 5
        server.pause()
        # A hang guard, not a speed claim: noticed at all before cv2's own 30 s read timeout.
        deadline = time.monotonic() + 10
        while not src.stats.events and time.monotonic() < deadline:
            time.sleep(0.05)
        assert src.stats.events, "the stalled read was never noticed"
        server.pause(False)
        assert _take(src, 5) == 5
    assert src.stats.events[0].kind == "lost"
    assert "reconnected" in [e.kind for e in src.stats.events]


def test_a_consumer_stops_waiting_during_an_outage():
    # Backoff of 10 minutes: without the stall hook the iteration would wait for the next attempt;
    # the consumer asks to stop once the source is lost, and must get its answer long before.
    slow = SourceOptions(reconnect_attempts=5, reconnect_backoff=(600.0, 600.0))
    server = MjpegServer().start()
    with open_source(server.url, slow) as src:
        assert _take(src, 3) == 3
        server.stop()
        taken: list[int] = []
        consumer = threading.Thread(
            target=lambda: taken.append(_take(src, 1000, stalled=lambda: bool(src.stats.events)))
        )
        consumer.start()
        consumer.join(timeout=120)  # a hang guard: the backoff alone is 600 s
        assert not consumer.is_alive(), "the consumer kept waiting through the reconnect backoff"
    assert taken[0] < 30
    assert [e.kind for e in src.stats.events] == ["lost"]


def _start_server(port: int = 0) -> tuple[subprocess.Popen, int]:
    p = subprocess.Popen(
        [sys.executable, str(TESTS / "stream_server.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    line = p.stdout.readline()  # "PORT <n>" once it listens
    assert line.startswith("PORT "), line
    return p, int(line.split()[1])


def _wait_for_rows(telemetry: Path, timeout: float = 60.0) -> None:
    """Until the run has flushed frame rows (its first flush comes after about a second)."""
    pattern = f".{telemetry.stem}.*partial*"  # edge.outputs.files.temp_path's names
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.read_text().count("\n") >= 3 for p in telemetry.parent.glob(pattern)):
            return
        time.sleep(0.1)
    raise AssertionError("edge run wrote no telemetry")


def _edge_run(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edge", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def test_edge_run_survives_a_stream_outage(tmp_path, tiny_model):
    server, port = _start_server()
    tele = tmp_path / "t.jsonl"
    try:
        run = _edge_run(
            "--source",
            f"http://127.0.0.1:{port}/stream.mjpg",
            "--model",
            str(tiny_model),
            "--telemetry",
            str(tele),
            "--duration",
            "11",  # backoff 0.5, 1, 2, 4 s: room for a 4th attempt on a loaded machine
        )
        _wait_for_rows(tele)
        server.kill()  # the camera dies: connections cut, port closed
        server.wait()
        time.sleep(1.5)
        server, _ = _start_server(port)  # back on the same port
        stdout, stderr = run.communicate(timeout=60)
    finally:
        server.kill()
        server.wait()
    assert run.returncode == 0, stderr
    assert "stopped by duration" in stdout and "Traceback" not in stderr
    assert "outage 1: from" in stdout and "reconnected after" in stdout
    events = read_events(tele)
    assert [e["event"] for e in events] == ["lost", "reconnected"]
    back = events[1]
    assert back["outage_ms"] >= 1500 and back["frames_lost"] > 0  # down at least 1.5 s
    rows = read_records(tele)  # event lines are skipped
    start, end = back["outage_start_ms"], back["outage_start_ms"] + back["outage_ms"]
    assert any(r["t_ms"] <= start for r in rows) and any(r["t_ms"] > end for r in rows)
    assert not any(start < r["t_ms"] < end - 1 for r in rows)  # no frame made up in the gap
    raw = [json.loads(x) for x in tele.read_text().splitlines()]
    assert len(raw) == len(rows) + 2


def test_edge_run_stops_at_once_on_sigint_during_an_outage(tmp_path, tiny_model):
    server, port = _start_server()
    tele = tmp_path / "t.jsonl"
    try:
        run = _edge_run(
            "--source",
            f"http://127.0.0.1:{port}/stream.mjpg",
            "--model",
            str(tiny_model),
            "--telemetry",
            str(tele),
        )
        _wait_for_rows(tele)
    finally:
        server.kill()
        server.wait()
    time.sleep(1.0)  # reconnecting now, with backoff, for up to a minute
    run.send_signal(signal.SIGINT)
    # A hang guard, not a speed limit: without the fix it waits out the reconnect backoff
    # (up to a minute), and communicate raises TimeoutExpired.
    stdout, stderr = run.communicate(timeout=30)
    assert run.returncode == 0, stderr
    assert "stopped by signal" in stdout and "to the end of the run" in stdout
    assert [e["event"] for e in read_events(tele)] == ["lost"]
    assert read_records(tele)


def test_csv_telemetry_puts_events_beside_it(tmp_path):
    from edge.outputs.telemetry_file import TelemetryWriter, events_path

    with TelemetryWriter(tmp_path / "t.csv") as w:
        w.write_event({"event": "lost", "t_ms": 1.0})
    assert events_path(tmp_path / "t.csv").name == "t.events.jsonl"
    assert read_events(tmp_path / "t.csv") == [{"event": "lost", "t_ms": 1.0}]
    assert read_events(tmp_path / "none.csv") == []


def test_plot_skips_event_lines(tmp_path):
    from edge.outputs.telemetry_file import TelemetryWriter
    from edge.outputs.telemetry_plot import plot_telemetry
    from edge.runtime.timing import FrameRecord

    with TelemetryWriter(tmp_path / "t.jsonl") as w:
        for i in range(5):
            w.write(FrameRecord(i, "s", i * 33.0, *([1.0] * 9), 0, 1))
            if i == 2:
                w.write_event({"event": "lost", "t_ms": 70.0, "outage_start_ms": 66.0})
    assert len(read_records(tmp_path / "t.jsonl")) == 5
    assert plot_telemetry(tmp_path / "t.jsonl", tmp_path / "p.png").stat().st_size > 1000


# --- corrupt files ------------------------------------------------------------------------------


def _video(path: Path, n: int = 60) -> Path:
    fourcc = "MJPG" if path.suffix == ".avi" else "mp4v"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 30.0, (160, 120))
    scene = SyntheticScene(160, 120)
    for i in range(n):
        w.write(scene.frame(i).image)
    w.release()
    return path


def _damage(path: Path, at: float, length: int | None = None) -> Path:
    """Zero `length` bytes from fraction `at` of the file, or truncate it there (length None)."""
    data = bytearray(path.read_bytes())
    cut = int(len(data) * at)
    if length is None:
        data = data[:cut]
    else:
        data[cut : cut + length] = bytes(length)
    path.write_bytes(bytes(data))
    return path


def _read_all(spec: str) -> tuple[int, int]:
    with open_source(spec) as src:
        n = sum(1 for _ in src)
    return n, src.stats.bad


def test_corrupt_frames_in_the_middle_of_a_video_are_skipped_and_counted(tmp_path):
    video = _damage(_video(tmp_path / "v.mp4"), 0.5, 4000)
    n, bad = _read_all(str(video))
    assert bad >= 1 and n + bad == 60
    assert n > 45  # the frames after the damage are read too


def test_a_truncated_video_counts_its_missing_frames(tmp_path):
    video = _damage(_video(tmp_path / "v.avi"), 0.6)
    n, bad = _read_all(str(video))
    assert 20 < n < 60 and n + bad == 60


def test_an_mp4_cut_before_its_index_is_a_clean_error(tmp_path):
    video = _damage(_video(tmp_path / "v.mp4"), 0.6)  # mp4v writes its index (moov) last
    with pytest.raises(SourceError, match="could not be opened"):
        open_source(str(video))


def _jpeg(path: Path, seed: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", SyntheticScene(96, 64, seed=seed).frame(0).image)
    assert ok
    path.write_bytes(buf.tobytes())
    return buf.tobytes()


def test_corrupt_jpegs_in_a_folder_are_skipped_and_counted(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        _jpeg(folder / f"good{i}.jpg", i)
    data = _jpeg(folder / "cut.jpg", 9)
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])  # would decode half grey
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_bytes(b"not a jpeg at all")
    head = bytearray(data)
    head[2:200] = bytes(198)
    (folder / "header.jpg").write_bytes(bytes(head))
    with open_source(str(folder)) as src:
        names = [f.image.shape for f in src]
    assert len(names) == 4 and src.stats.bad == 4


@pytest.mark.parametrize("kind", ["video", "folder"])
def test_edge_run_reports_skipped_frames(tmp_path, tiny_model, kind):
    if kind == "video":
        source = _damage(_video(tmp_path / "v.mp4"), 0.5, 4000)
    else:
        source = tmp_path / "imgs"
        source.mkdir()
        for i in range(3):
            _jpeg(source / f"ok{i}.jpg", i)
        (source / "bad.jpg").write_bytes(b"\xff\xd8garbage")
    r = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--model", str(tiny_model), "--source", str(source)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "stopped by end" in r.stdout and "skipped: " in r.stdout
    skipped = int(r.stdout.split("skipped: ")[1].split()[0])
    frames = int(r.stdout.split("frames: ")[1].split()[0])
    assert skipped >= 1 and (frames + skipped == 60 if kind == "video" else frames == 3)


def test_a_source_lost_for_good_ends_the_run_with_exit_code_3(tmp_path, tiny_model):
    server, port = _start_server()
    tele = tmp_path / "t.jsonl"
    try:
        run = _edge_run("--source", f"http://127.0.0.1:{port}/stream.mjpg", "--model",
                        str(tiny_model), "--telemetry", str(tele), "--reconnect", "1")  # fmt: skip
        _wait_for_rows(tele)
    finally:
        server.kill()  # and it never comes back
        server.wait()
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 3, (stdout, stderr)
    assert "stopped by source lost" in stdout and "gave up after 1 attempt(s)" in stdout
    assert "lost for good" in stderr and "Traceback" not in stderr
    assert [e["event"] for e in read_events(tele)] == ["lost", "gave_up"]
    assert not list(tmp_path.glob(".*partial*"))  # files finished as on any other end


def test_a_stream_that_keeps_dropping_is_lost_in_a_few_lines(tmp_path, tiny_model):
    # One JPEG per connection: each reconnect "works", so before the fix it reconnected forever
    # (with --max-frames 50: 100 identical-looking lines over 25 s, without it: for ever).
    tele = tmp_path / "t.jsonl"
    with MjpegServer(per_connection=1) as server:
        run = _edge_run("--source", server.url, "--model", str(tiny_model), "--max-frames", "50",
                        "--telemetry", str(tele))  # fmt: skip
        stdout, stderr = run.communicate(timeout=120)  # a hang guard
    lines = stderr.strip().splitlines()
    assert run.returncode == 3, (stdout, stderr)
    assert len(lines) <= latest.MAX_DROPS + 4 and len(set(lines)) == len(lines), stderr
    assert sum("keeps dropping" in line for line in lines) == 1, stderr
    assert "lost for good" in stderr and "stopped by source lost" in stdout
    assert [e["event"] for e in read_events(tele)][:: len(read_events(tele)) - 1] == [
        "lost",
        "gave_up",
    ]
    assert sum(line.startswith("outage ") for line in stdout.splitlines()) == 1, stdout


def test_two_streams_one_lost_for_good_the_other_runs_on(tmp_path, tiny_model):
    server, port = _start_server()
    url = f"http://127.0.0.1:{port}/stream.mjpg"
    tele = tmp_path / "t.jsonl"
    try:
        run = _edge_run("--source", url, "--source", "synthetic", "--realtime", "--width", "160",
                        "--height", "120", "--model", str(tiny_model), "--telemetry", str(tele),
                        "--reconnect", "1", "--duration", "8")  # fmt: skip
        _wait_for_rows(tele)
    finally:
        server.kill()
        server.wait()
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 3, (stdout, stderr)
    assert "stopped by duration" in stdout
    assert f"stream stream {url} outage 1: from" in stdout and "gave up after 1" in stdout
    events = read_events(tele)
    assert [(e["event"], e["source"]) for e in events] == [
        ("lost", f"stream {url}"),
        ("gave_up", f"stream {url}"),
    ]
    rows = read_records(tele)
    later = [r for r in rows if r["source"] == "synthetic" and r["t_ms"] > events[1]["t_ms"]]
    assert len(later) > 10  # the other stream ran on after the first was lost
