"""`edge run` with lines, zones, events, a site file and delivery: the wiring, end to end."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_analytics_delivery import (
    Broker,
    Receiver,
    Subscriber,
    free_port,
    pytestmark_mqtt,
    wait_for,
)
from test_cli_run import edge

from edge.analytics import Analytics, RegionOptions, parse_zone
from edge.types import Detections, Frame


def summary_rows(stdout: str) -> list[list[str]]:
    lines = stdout.splitlines()
    start = next(i for i, s in enumerate(lines) if s.startswith("stream ") and "region" in s)
    rows = []
    for s in lines[start + 1 :]:
        if not re.match(r"^\S+\s+(line|zone) ", s):
            break
        rows.append(s.split())
    return rows


def test_run_counts_the_synthetic_scene_with_the_bundled_model(tmp_path):
    events, video = tmp_path / "events.jsonl", tmp_path / "out.mp4"
    r = edge(
        "run", "--max-frames", "150", "--width", "320", "--height", "240",
        "--line", "mid=0,0.6,1,0.6", "--zone", "bay=0,0.3,0.4,0.3,0.4,1,0,1",
        "--events", str(events), "--save", str(video), "--dwell-alert", "2", "-q",
        "--snapshots", str(tmp_path / "snaps"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    snaps = sorted((tmp_path / "snaps" / "synthetic").glob("*.jpg"))
    assert "tracking:" in r.stdout  # --line implies --track
    rows = [json.loads(s) for s in events.read_text().splitlines()]
    assert rows and all(r_["stream"] == "synthetic" and r_["track_id"] >= 0 for r_ in rows)
    assert sorted(Path(r_["snapshot"]) for r_ in rows) == snaps  # a JPEG of each event's object
    assert all(cv2.imread(str(p)) is not None for p in snaps)
    # The table's counts are the events' counts.
    counted = {}
    for row in summary_rows(r.stdout):
        _, kind, region, cls, a, b = row[:6]
        counted[(region, cls, "in" if kind == "line" else "enter")] = int(a)
        counted[(region, cls, "out" if kind == "line" else "exit")] = int(b)
    from_events = {}
    for e in rows:
        kind = {"cross-in": "in", "cross-out": "out"}.get(e["kind"], e["kind"])
        if kind != "dwell":
            key = (e.get("line") or e.get("zone"), e["class"], kind)
            from_events[key] = from_events.get(key, 0) + 1
    assert {k: v for k, v in counted.items() if v} == from_events
    m = re.search(r"counting error against the truth: (\d+) of (\d+) true counts", r.stdout)
    assert m and int(m.group(2)) > 0  # the synthetic source knows the truth
    # The line is drawn on the saved video (amber, across the frame at 60% of its height).
    cap = cv2.VideoCapture(str(video))
    ok, image = cap.read()
    cap.release()
    assert ok and image[144, 250:300, 2].mean() > 150 and image[144, 250:300, 0].mean() < 100


SITE = """\
model: {model}
sources:
  - synthetic
  - source: synthetic
    zones:
      right: [0.5, 0, 1, 0, 1, 1, 0.5, 1]
zones:
  everywhere: [0, 0, 1, 0, 1, 1, 0, 1]
dwell_alert: 100
outputs:
  events: ev.jsonl
run:
  max_frames: 6
  width: 160
  height: 120
  quiet: true
"""


def test_two_streams_from_a_site_file_with_their_own_zones_and_a_webhook(tmp_path, tiny_model):
    site = tmp_path / "site.yaml"
    site.write_text(SITE.format(model=tiny_model))
    rx = Receiver()
    try:
        # Flags override the file: a shorter dwell alert.
        r = edge(
            "run", "--config", str(site), "--dwell-alert", "0.1",
            "--webhook", f"http://127.0.0.1:{rx.port}/",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        rows = [json.loads(s) for s in (tmp_path / "ev.jsonl").read_text().splitlines()]
        assert wait_for(lambda: len(rx.got) == len(rows), 10)
    finally:
        rx.stop()
    seen = {(e["stream"], e["zone"], e["kind"]) for e in rows}
    streams = sorted({e["stream"] for e in rows})
    assert len(streams) == 2, streams
    a, b = streams
    # The fixed model's two boxes: both in "everywhere" of each stream; stream b also has "right".
    assert {z for s, z, _ in seen if s == a} == {"everywhere"}
    assert {z for s, z, _ in seen if s == b} == {"everywhere", "right"}
    assert (a, "everywhere", "dwell") in seen  # 0.1 s from the flag, not 100 s from the file
    assert sorted(json.dumps(e, sort_keys=True) for e in rx.got) == sorted(
        json.dumps(e, sort_keys=True) for e in rows
    )


@pytest.mark.parametrize(
    "site, flags, needle",
    [
        ("zones:\n  z: [0, 0, 1, 0]\n", [], "site.yaml:2: zones.z: zone z: expected at least 3 points"),
        ("run:\n  max_frames: 2\n  confidence: 0.3\n", [], "site.yaml:3: run.confidence: not an `edge run` option"),
        ("run:\n  conf: 7\n", [], "site.yaml:2: run.conf:"),
        ("run:\n  device: tpu\n", [], "site.yaml:2: run.device: expected one of auto"),
        ("lines:\n  a: [0, 0, 1, 1]\n", ["--line", "3:b=0,0,1,1"], "--line 3:b: there are only 1 source(s)"),
        ("outputs:\n  events: e.jsonl\n", [], "--events: needs a --line or --zone"),
    ],
)  # fmt: skip
def test_site_file_and_flag_errors_are_one_line_and_exit_2(
    tmp_path, tiny_model, site, flags, needle
):
    path = tmp_path / "site.yaml"
    path.write_text(site)
    r = edge("run", "--model", str(tiny_model), "--config", str(path), *flags)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize(
    "flag, value, needle",
    [
        ("--line", "door=1,2,3", "an odd number of coordinates"),
        ("--zone", "bay=0,0,1,1", "expected at least 3 points"),
        ("--mqtt", "host:x", "expected HOST:PORT"),
        ("--anchor", "feet", "invalid choice"),
    ],
)
def test_bad_analytics_flags(flag, value, needle):
    r = edge("run", flag, value)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_metrics_page_carries_the_counts():
    from edge.outputs.serve import LiveServer

    an = Analytics(default=RegionOptions(zones=(parse_zone("bay=0,0,1,0,1,1,0,1"),)), names=["car"])
    frame = Frame(np.zeros((120, 160, 3), np.uint8), 0, 0, "cam")
    an.update(frame, Detections([[10, 10, 50, 50]], [0.9], [0], [1]))
    with LiveServer("127.0.0.1", 0) as server:
        server.extra_metrics.append(an.metrics)
        text = urllib.request.urlopen(server.url + "metrics", timeout=5).read().decode()
    assert 'edge_zone_occupancy{source="cam",zone="bay",class="car"} 1' in text
    assert "edge_healthy" in text  # the server's own metrics are still there


def test_edge_stream_yields_each_frames_events(tiny_model):
    from edge.api.streaming import stream  # edge.stream once `import edge` is lazy (helper "api")

    zone = parse_zone("all=0,0,1,0,1,1,0,1")
    regions = RegionOptions(zones=(zone,), dwell_alert_s=0.1)
    # fps: dwell in the scene's time (frame index / 30), not in how fast this machine runs it.
    with Analytics(default=regions, names=["a", "b"], fps={"synthetic": 30.0}) as an:
        results = list(stream("synthetic", tiny_model, max_frames=8, track=True, processors=[an]))
    kinds = [[(e["event"], e["zone"], e["class"]) for e in r.events] for r in results]
    assert kinds[0] == [("enter", "all", "a"), ("enter", "all", "b")]  # the fixed model's 2 boxes
    assert ("dwell", "all", "a") in kinds[3] + kinds[4]  # 0.1 s at 30 fps: the 4th frame
    assert all(not k for k in kinds[1:3])


@pytestmark_mqtt
def test_edge_run_publishes_to_mqtt(tmp_path, tiny_model):
    port = free_port()
    broker = Broker(tmp_path, port)
    sub = Subscriber(port)
    try:
        assert wait_for(lambda: sub.client.is_connected(), 10)
        time.sleep(0.2)
        r = edge(
            "run", "--model", str(tiny_model), "--max-frames", "3", "--width", "160",
            "--height", "120", "--zone", "all=0,0,1,0,1,1,0,1", "--mqtt", f"127.0.0.1:{port}", "-q",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "mqtt: 4 sent, 0 dropped (queue full), 0 failed" in r.stdout  # 2 events, 2 counts
        assert wait_for(lambda: len(sub.got) == 4, 10)
    finally:
        sub.close()
        broker.kill()
    topics = sorted((t, p, retain) for t, p, retain in sub.got)
    assert [t for t, _, _ in topics] == [
        "edge/synthetic/all", "edge/synthetic/all", "edge/synthetic/all/a", "edge/synthetic/all/b",
    ]  # fmt: skip
    assert [json.loads(p)["kind"] for t, p, _ in topics[:2]] == ["enter", "enter"]
    assert [p for _, p, _ in topics[2:]] == [b"1", b"1"]


def test_a_dead_webhook_costs_the_run_nothing_and_is_counted(tiny_model):
    port = free_port()  # nothing listens there
    r = edge(
        "run", "--model", str(tiny_model), "--max-frames", "20", "--width", "160", "--height",
        "120", "--zone", "all=0,0,1,0,1,1,0,1", "--dwell-alert", "0.1",
        "--webhook", f"http://127.0.0.1:{port}/", "-q",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    # 2 entries, 2 dwell alerts; not "0 sent, 3 dropped (queue full)": the queue never filled
    assert f"webhook: http://127.0.0.1:{port}/ unreachable: 4 events not sent" in r.stdout
    assert "frames: 20" in r.stdout


def test_a_broker_nobody_runs_is_reported_unreachable(tiny_model, tmp_path):
    pytest.importorskip("paho.mqtt")
    port = free_port()  # nothing listens there
    events = tmp_path / "events.jsonl"
    r = edge(
        "run", "--model", str(tiny_model), "--max-frames", "20", "--width", "160", "--height",
        "120", "--zone", "all=0,0,1,0,1,1,0,1", "--dwell-alert", "0.1",
        "--mqtt", f"127.0.0.1:{port}", "--events", str(events), "-q",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    # It said "0 sent, 7 dropped (queue full)". Each event is one message, each zone count
    # update another (how many of each depends on the run).
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("mqtt:"))
    m = re.fullmatch(
        rf"mqtt: broker 127\.0\.0\.1:{port} unreachable: (\d+) messages not sent", line
    )
    assert m, line
    assert int(m.group(1)) > len(events.read_text().splitlines()) > 0


def test_paths_in_a_site_file_are_relative_to_it(tmp_path, tiny_model):
    import shutil

    from test_sources import write_video

    site_dir = tmp_path / "site"
    site_dir.mkdir()
    shutil.copy(tiny_model, site_dir / "m.onnx")
    write_video(site_dir / "clip.avi", 5)
    (site_dir / "site.yaml").write_text(
        "model: m.onnx\nsources: [clip.avi]\nzones:\n  all: [0, 0, 1, 0, 1, 1, 0, 1]\n"
        "outputs:\n  events: out/ev.jsonl\n"
    )
    (site_dir / "out").mkdir()
    r = edge("run", "--config", "site/site.yaml", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(s) for s in (site_dir / "out" / "ev.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in rows] == ["enter", "enter"] and "frames: 5" in r.stdout
