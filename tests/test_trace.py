from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from onnx_models import fixed_detector
from test_cli_run import ENV, edge

from edge.outputs.trace import STAGE_TRACKS, FrameSpans, TraceWriter, read_trace
from edge.runtime.timing import FrameRecord


def spans_of(events: list[dict]) -> list[dict]:
    return [e for e in events if e.get("ph") == "X"]


def check_lanes_do_not_overlap(events: list[dict]) -> None:
    """Complete events on one track must nest; ours never overlap at all."""
    by_track: dict[tuple, list[dict]] = {}
    for e in spans_of(events):
        by_track.setdefault((e["pid"], e["tid"]), []).append(e)
    for track, evs in by_track.items():
        evs.sort(key=lambda e: e["ts"])
        for a, b in zip(evs, evs[1:], strict=False):
            assert a["ts"] + a["dur"] <= b["ts"] + 0.002, (track, a, b)


def test_trace_spans_match_the_telemetry(tmp_path, tiny_model):
    trace, tele = tmp_path / "t.json", tmp_path / "t.jsonl"
    r = edge(
        "run", "--model", str(tiny_model), "--max-frames", "15", "--width", "160",
        "--height", "120", "--trace", str(trace), "--telemetry", str(tele), "-q",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    events = json.loads(trace.read_text())  # strict JSON: the file was closed properly
    rows = {row["frame"]: row for row in map(json.loads, tele.read_text().splitlines())}
    names = {e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert set(STAGE_TRACKS) <= names
    assert {e["args"]["name"] for e in events if e.get("name") == "process_name"} == {"synthetic"}
    spans = spans_of(events)
    assert all(isinstance(e["ts"], int | float) and e["dur"] >= 0 for e in spans)
    by_frame: dict[int, dict[str, dict]] = {}
    for e in spans:
        by_frame.setdefault(e["args"]["frame"], {})[
            e["name"] if e["cat"] == "stage" else "frame"
        ] = e
    assert sorted(by_frame) == sorted(rows) == list(range(15))
    for n, stages in by_frame.items():
        row = rows[n]
        for stage in STAGE_TRACKS:
            assert stages[stage]["dur"] / 1000 == pytest.approx(row[f"{stage}_ms"], abs=0.002)
        assert stages["frame"]["dur"] / 1000 == pytest.approx(row["total_ms"], abs=0.002)
        # stages follow one another: each starts no earlier than the previous one ended
        for a, b in zip(STAGE_TRACKS, STAGE_TRACKS[1:], strict=False):
            assert stages[b]["ts"] >= stages[a]["ts"] + stages[a]["dur"] - 0.002, (n, a, b)
        assert stages["inference"]["ts"] - stages["frame"]["ts"] == pytest.approx(
            row["age_ms"] * 1000, abs=2
        )
    check_lanes_do_not_overlap(events)


def test_interrupted_run_still_writes_a_valid_trace(tmp_path):
    model = fixed_detector(tmp_path / "slow.onnx", slow=6)
    trace = tmp_path / "t.json"
    p = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--model", str(model), "--max-frames", "100000",
         "--width", "160", "--height", "120", "--trace", str(trace), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    deadline = time.monotonic() + 60  # start-up can take seconds on a loaded machine
    while not any(p.read_text().count('"frame ') >= 5 for p in tmp_path.glob(".t.*partial*")):
        assert time.monotonic() < deadline and p.poll() is None, "edge run wrote no trace"
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0 and "stopped by signal" in stdout, stderr
    events = json.loads(trace.read_text())
    frames = [e for e in spans_of(events) if e["name"].startswith("frame ")]
    assert len(frames) > 3 and f"frames: {len(frames)} " in stdout
    assert not list(tmp_path.glob(".*partial*"))


def spans(frame: int, t: int) -> FrameSpans:
    return FrameSpans("cam", frame, t, t, t + 1000, t + 2000, t + 3000, t + 9000,
                      t + 9500, t + 10_000, t + 11_000, t + 12_000)  # fmt: skip


def record(frame: int) -> FrameRecord:
    return FrameRecord(frame, "cam", 0.0, *([0.001] * 6), 0.003, 0.01, 0.012, 0, 1)


def test_writer_lanes_read_back_and_close_twice(tmp_path):
    path = tmp_path / "w.json"
    with TraceWriter(path, origin_ns=0) as w:
        w.observe(record(0), spans(0, 1_000_000))
        w.observe(record(1), spans(1, 1_004_000))  # overlaps frame 0: a second lane
        w.observe(record(2), spans(2, 1_020_000))  # after both: back in the first lane
        (partial,) = tmp_path.glob(".w.*partial*")
        w._fh.flush()
        assert len(read_trace(partial)) > 10  # the array form opens without its closing bracket
    w.close()
    events = read_trace(path)
    frames = [e for e in spans_of(events) if e["name"].startswith("frame")]
    assert [e["tid"] for e in frames] == [10, 11, 10]
    inference = [e for e in spans_of(events) if e["name"] == "inference"]
    assert inference[0]["ts"] == 1003.0 and inference[0]["dur"] == 6.0
    assert read_trace(path) == json.loads(path.read_text())
    wrapped = tmp_path / "obj.json"
    wrapped.write_text(json.dumps({"traceEvents": events}))
    assert read_trace(wrapped) == events


@pytest.mark.parametrize(
    ("name", "needle"), [("t.txt", "use a .json"), ("missing/t.json", "does not exist")]
)
def test_writer_rejects_bad_paths(tmp_path, name, needle):
    with pytest.raises(ValueError, match=needle):
        TraceWriter(tmp_path / name)
