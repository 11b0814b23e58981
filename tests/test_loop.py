from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from batch_models import batch_detector
from test_cli_run import edge

from edge.errors import SourceError
from edge.outputs.sinks import Sink
from edge.outputs.trace import TraceWriter, read_trace
from edge.runtime.feed import Prepared, StreamReader, ThreadedFeed
from edge.runtime.loop import Loop, LoopOptions, stream_ids
from edge.runtime.observe import per_stream_path
from edge.runtime.session import ModelSession
from edge.runtime.tracking import TrackerOptions
from edge.sources import SequentialSource, SourceOptions, open_source
from edge.types import Detections, Frame


class Collect(Sink):
    """Every frame's boxes, per stream."""

    needs_image = False

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[int, np.ndarray]]] = defaultdict(list)

    def write(self, frame: Frame, detections: Detections, annotated: np.ndarray | None) -> bool:
        self.rows[frame.source_id].append((frame.index, detections.xyxy.copy()))
        return True


def synthetic(seed: int, realtime: bool = False, fps: float = 30.0):
    opts = SourceOptions(width=128, height=96, synthetic_seed=seed, realtime=realtime, fps=fps)
    return open_source("synthetic", opts)


@pytest.fixture
def batch_model(tmp_path: Path) -> Path:
    return batch_detector(tmp_path / "batch.onnx")


@pytest.mark.parametrize(
    ("names", "ids"),
    [
        (["a", "b"], ["a", "b"]),
        (["cam", "cam", "x"], ["cam #0", "cam #1", "x"]),
        (["s", "t", "s"], ["s #0", "t", "s #2"]),
    ],
)
def test_stream_ids(names, ids):
    assert stream_ids(names) == ids


def test_per_stream_path():
    assert per_stream_path(Path("d/out.mp4"), 2) == Path("d/out.2.mp4")


def _item(stream: int, tag: str) -> Prepared:
    frame = Frame(np.zeros((1, 1, 3), np.uint8), 0, 0, tag)
    return Prepared(stream, frame, np.zeros(1), None, 0, 0, 0)  # type: ignore[arg-type]


def _box(n: int, live: bool = False, poll_s: float = 0.1) -> ThreadedFeed:
    src = SequentialSource("s", lambda: None, None)
    src.live = live
    readers = [
        StreamReader(i, f"s{i}", src, lambda im: None, None, lambda: False) for i in range(n)
    ]
    return ThreadedFeed(readers, poll_s=poll_s)  # type: ignore[arg-type]


def _tags(items):
    return None if items is None else [(it.stream, it.frame.source_id) for it in items]


def test_feed_round_robin_and_bounded_wait():
    box = _box(3, poll_s=0.01)
    for i in (0, 1, 2):
        box._put(i, _item(i, f"x{i}"))
    assert _tags(box.take(1, 0.0, start=1)) == [(1, "x1")]
    assert _tags(box.take(3, 0.0, start=2)) == [(2, "x2"), (0, "x0")]
    box._put(0, _item(0, "y0"))
    started = time.monotonic()
    assert _tags(box.take(3, 0.05, start=0)) == [(0, "y0")]  # the others never came: waited 50 ms
    assert time.monotonic() - started >= 0.04  # it waited (load only makes the wait longer)
    assert box.take(3, 0.0, start=0) == []  # nothing ready yet
    box._open = [False] * 3
    assert box.take(3, 0.0, start=0) is None  # every stream has ended


def test_feed_does_not_wait_for_a_stream_out_of_step():
    box = _box(2, live=True)
    for k in range(2):  # stream 1 delivers every second
        box._put(1, _item(1, f"s1-{k}"))
        assert _tags(box.take(2, 0.0, start=1)) == [(1, f"s1-{k}")]
        if k == 0:
            time.sleep(1.0)
    box._put(0, _item(0, "s0"))
    # Stream 1 is due in about a second, after a 0.5 s batch wait would end: not waited for.
    # (Asked of the feed's own rule, not of a clock: the margin is half a second of slack.)
    assert box._due(time.monotonic() + 0.5) == []
    assert _tags(box.take(2, 0.5, start=0)) == [(0, "s0")]


def run_many(model: Path, seeds: list[int], frames: int, batch: bool = True):
    session = ModelSession(model)
    sink = Collect()
    sources = [synthetic(s) for s in seeds]
    try:
        loop = Loop(session, sources, [sink], LoopOptions(max_frames=frames, batch=batch))
        return loop, loop.run(), sink
    finally:
        for s in sources:
            s.close()


def test_batched_results_equal_one_stream_at_a_time(batch_model):
    loop, result, sink = run_many(batch_model, [0, 1, 2], 12)
    assert loop.batched and loop.most == 3
    assert result.stopped_by == "max_frames"
    assert sum(size * n for size, n in result.batch_sizes.items()) == 36
    assert max(result.batch_sizes) == 3  # file-like sources: full batches
    assert list(sink.rows) == ["synthetic #0", "synthetic #1", "synthetic #2"]
    session = ModelSession(batch_model)
    for seed, sid in enumerate(sink.rows):
        single = Collect()
        with synthetic(seed) as src:
            Loop(session, src, [single], LoopOptions(max_frames=12)).run()
        got, want = sink.rows[sid], single.rows["synthetic"]
        assert [i for i, _ in got] == [i for i, _ in want] == list(range(12))
        for (_, a), (_, b) in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-3)
    # the model shifts boxes by the image mean: streams really differ, so a mix-up would show
    firsts = [rows[0][1][0, 0] for rows in sink.rows.values()]
    assert len({round(float(x), 1) for x in firsts}) == 3


def test_fixed_batch_model_runs_one_frame_a_call_round_robin(tiny_model):
    loop, result, sink = run_many(tiny_model, [0, 1], 7)
    assert not loop.batched
    assert dict(result.batch_sizes) == {1: 14}
    assert [len(r) for r in sink.rows.values()] == [7, 7]
    assert result.collector.frames == 14
    for s in result.streams.values():
        assert s.collector.frames == 7


def test_live_streams_batch_with_bounded_wait(batch_model, tmp_path):
    session = ModelSession(batch_model)
    sources = [synthetic(s, realtime=True, fps=30) for s in range(3)]
    trace = tmp_path / "t.json"
    try:
        with TraceWriter(trace) as tw:
            loop = Loop(session, sources, [tw], LoopOptions(duration=1.5, batch_wait_ms=5))
            result = loop.run()
    finally:
        for s in sources:
            s.close()
    assert result.stopped_by == "duration"
    for s in result.streams.values():
        assert s.collector.frames > 15  # each stream runs near its 30 FPS
        # How long a frame waits (one interval plus the batch wait) is timing: bench_streams.py.
        assert s.collector.stats("age_ms").p50 > 0
    events = read_trace(trace)
    pids = {e["args"]["name"] for e in events if e.get("name") == "process_name"}
    assert pids == set(result.streams)
    batches = [e["args"]["batch"] for e in events if e.get("name") == "inference"]
    assert max(batches) >= 2


def test_stop_event_and_reader_errors(batch_model):
    session = ModelSession(batch_model)
    stop = threading.Event()
    sources = [synthetic(0, realtime=True), synthetic(1, realtime=True)]
    threading.Timer(0.5, stop.set).start()
    try:
        result = Loop(session, sources, [], LoopOptions(), stop=stop).run()
    finally:
        for s in sources:
            s.close()
    assert result.stopped_by == "signal"

    def broken() -> tuple[np.ndarray, None]:
        raise SourceError("camera fell off")

    bad = SequentialSource("bad", broken, None)
    with synthetic(0) as good, pytest.raises(SourceError, match="fell off"):
        Loop(session, [good, bad], [], LoopOptions(max_frames=50)).run()


def test_bad_arguments(batch_model):
    with pytest.raises(ValueError, match="--batch-wait-ms"):
        LoopOptions(batch_wait_ms=-1)
    with synthetic(0) as a, synthetic(1) as b, pytest.raises(ValueError, match="unique"):
        Loop(ModelSession(batch_model), [a, b], ids=["a", "a"])


def test_cli_several_sources(tmp_path, batch_model):
    listing = tmp_path / "more.txt"
    listing.write_text("# a comment\n\nsynthetic\n")
    r = edge(
        "run", "--model", str(batch_model), "--source", "synthetic", "--source", "synthetic",
        "--sources", str(listing), "--max-frames", "6", "--width", "160", "--height", "120",
        "--track", "--save", str(tmp_path / "out.mp4"), "--jsonl", str(tmp_path / "d.jsonl"),
        "--telemetry", str(tmp_path / "t.jsonl"), "--trace", str(tmp_path / "t.json"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "3 streams" in r.stdout and "batch 3" in r.stdout
    ids = ["synthetic #0", "synthetic #1", "synthetic #2"]
    for sid in ids:
        assert f"stream {sid}: 6 frames" in r.stdout
    for i in range(3):
        cap = cv2.VideoCapture(str(tmp_path / f"out.{i}.mp4"))
        n = 0
        while cap.read()[0]:
            n += 1
        assert n == 6
    rows = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert sorted({row["source"] for row in rows}) == ids and len(rows) == 18
    assert all(d["track_id"] in (1, 2) for row in rows for d in row["detections"])
    tele = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert sorted(row["source"] for row in tele) == sorted(ids * 6)
    json.loads((tmp_path / "t.json").read_text())
    r = edge("run", "--model", str(batch_model), "--source", "synthetic", "--source", "synthetic",
             "--max-frames", "3", "--no-batch", "-q")  # fmt: skip
    assert r.returncode == 0 and "inference calls: 6 x batch 1" in r.stdout, r.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--sources", "missing.txt"], "--sources missing.txt: no such file"),
        (["--source", "synthetic", "--source", "missing.mp4"], "no such file"),
        (["--source", "a", "--source", "b", "--batch-wait-ms", "-1"], "--batch-wait-ms"),
        (["--serve", "host:port"], "--serve"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, tiny_model, args, needle):
    r = edge("run", "--model", str(tiny_model), "--max-frames", "2", *args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


# --- every feature with two streams ------------------------------------------------------------

# What the tiny model finds in a 128x96 image, as YOLO lines: a box, and a polygon (its corners).
LABELS = (
    "0 0.25 0.1666667 0.25 0.3333333\n"
    "1 0.46875 0.4583333 0.9375 0.4583333 0.9375 0.875 0.46875 0.875\n"
)


def _labelled_folder(root: Path, images: int, corrupt: int) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(images):
        ok, buf = cv2.imencode(".jpg", np.full((96, 128, 3), 40 * i, np.uint8))
        (root / "images" / f"{i}.jpg").write_bytes(buf.tobytes())
        (root / "labels" / f"{i}.txt").write_text(LABELS)
    for i in range(corrupt):
        (root / "images" / f"bad{i}.jpg").write_bytes(b"\xff\xd8garbage")
    return root / "images"


def test_cli_live_accuracy_skips_label_numbers_that_fit_nothing(tmp_path, tiny_model):
    # A class id beyond int64 ended the run with a traceback; a nan box was scored.
    images = _labelled_folder(tmp_path / "a", 2, corrupt=0)
    label = tmp_path / "a" / "labels" / "0.txt"
    label.write_text(LABELS + "99999999999999999999 0.5 0.5 0.2 0.2\n0 nan 0.5 0.2 0.2\n")
    r = edge("run", "--model", str(tiny_model), "--source", str(images), "--no-show")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert f"{label}:3: class id 100000000000000000000 is out of range" in r.stderr
    assert f"{label}:4: box has a non-finite coordinate; line ignored" in r.stderr
    assert "accuracy: precision 1.000 recall 1.000 (IoU 0.5, 2 frames)" in r.stdout


def test_cli_two_streams_report_skipped_accuracy_and_tracking_each(tmp_path, tiny_model):
    a = _labelled_folder(tmp_path / "a", 4, corrupt=1)
    b = _labelled_folder(tmp_path / "b", 3, corrupt=2)
    r = edge("run", "--model", str(tiny_model), "--source", str(a), "--source", str(b),
             "--track", "--no-show")  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "stream images #0 skipped: 1 unreadable" in out
    assert "stream images #1 skipped: 2 unreadable" in out
    # the polygon line is read as its bounding box, as `edge eval` reads it: every box matches
    assert "stream images #0 accuracy: precision 1.000 recall 1.000 (IoU 0.5, 4 frames)" in out
    assert "stream images #1 accuracy: precision 1.000 recall 1.000 (IoU 0.5, 3 frames)" in out
    for sid, frames in (("images #0", 4), ("images #1", 3)):
        line = out.split(f"stream {sid} tracking: ")[1].splitlines()[0]
        assert line.endswith(f"100.0% of truth boxes tracked ({frames} frames)"), line
    assert "stopped by end" in out


class CountAndMark:
    """A processor: an event per frame with its box count, and a white corner in the drawing."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def process(self, result) -> None:
        self.seen.append((result.stream, result.frame.index))
        result.events.append({"event": "count", "boxes": len(result.detections)})
        result.overlay.append(
            lambda image: image.__setitem__((slice(-4, None), slice(-4, None)), 255)
        )


class Images(Sink):
    needs_image = True

    def __init__(self) -> None:
        self.corners: dict[str, list[int]] = defaultdict(list)

    def write(self, frame, detections, annotated) -> bool:
        self.corners[frame.source_id].append(int(annotated[-4:, -4:].min()))
        return True


def test_processors_events_and_drawing_with_two_streams(tiny_model, tmp_path):
    from edge.outputs.telemetry_file import TelemetryWriter, read_events

    session = ModelSession(tiny_model)
    marker, images = CountAndMark(), Images()
    with synthetic(0) as a, synthetic(1) as b, TelemetryWriter(tmp_path / "t.jsonl") as tele:
        result = Loop(session, [a, b], [images, tele], LoopOptions(max_frames=4, overlay=False),
                      processors=[marker]).run()  # fmt: skip
    assert sorted(marker.seen) == sorted((s, i) for s in result.streams for i in range(4))
    assert all(v == 255 for c in images.corners.values() for v in c) and len(images.corners) == 2
    events = read_events(tmp_path / "t.jsonl")
    assert sorted((e["source"], e["frame"]) for e in events) == sorted(marker.seen)
    assert {e["boxes"] for e in events} == {2}


def test_live_page_and_trace_with_two_streams(tiny_model, tmp_path):
    from edge.outputs.serve import LiveServer

    session = ModelSession(tiny_model)
    with (
        synthetic(0) as a,
        synthetic(1) as b,
        LiveServer(port=0) as server,
        TraceWriter(tmp_path / "t.json") as trace,
    ):
        result = Loop(session, [a, b], [server, trace], LoopOptions(max_frames=5)).run()
        page = server.telemetry()
        metrics = server.metrics()
    assert sorted((s["id"], s["frames"]) for s in page["sources"]) == [
        ("synthetic #0", 5),
        ("synthetic #1", 5),
    ]
    assert 'edge_frames_total{source="synthetic #1"} 5' in metrics
    events = read_trace(tmp_path / "t.json")
    pids = {e["args"]["name"] for e in events if e.get("name") == "process_name"}
    assert pids == set(result.streams)


@pytest.mark.parametrize("overlap", [True, False])
def test_one_source_is_n_equals_one(tiny_model, overlap):
    session = ModelSession(tiny_model)
    sink = Collect()
    with synthetic(0) as src:
        loop = Loop(
            session, src, [sink], LoopOptions(max_frames=5, overlap=overlap, track=TrackerOptions())
        )
        result = loop.run()
    assert result.stopped_by == "max_frames" and list(result.streams) == ["synthetic"]
    assert [i for i, _ in sink.rows["synthetic"]] == list(range(5))
    assert result.only.score is not None and result.only.identity is not None
    assert dict(result.batch_sizes) == {1: 5}
    assert src.stats.delivered == 5  # the loop read what it ran, and left the source as it was


@pytest.mark.parametrize("overlap", [True, False])
def test_threads_beside_cpu_inference_run_opencv_single_threaded_and_restore_it(
    tiny_model, overlap
):
    # OpenCV's pool in the reader and finisher would take the cores ONNX Runtime's threads use.
    class Threads(Sink):
        needs_image = True  # drawing runs in the finisher with OpenCV

        def __init__(self) -> None:
            self.seen: set[int] = set()

        def write(self, frame, detections, annotated) -> bool:
            self.seen.add(cv2.getNumThreads())
            return True

    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        sink = Threads()
        with synthetic(0) as src:
            Loop(
                ModelSession(tiny_model), src, [sink], LoopOptions(max_frames=5, overlap=overlap)
            ).run()
        assert sink.seen == ({1} if overlap else {2})
        assert cv2.getNumThreads() == 2  # as the run found it
    finally:
        cv2.setNumThreads(before)
