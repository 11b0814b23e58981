from __future__ import annotations

import json

import numpy as np
import pytest

from edge.outputs.telemetry_file import RECORD_FIELDS, TelemetryWriter, read_records
from edge.runtime.stats import Collector, Rolling, format_summary
from edge.runtime.timing import FrameRecord


def rec(i: int, inference: float = 5.0) -> FrameRecord:
    return FrameRecord(
        i, "s", i * 33.3, 1.0, 2.0, inference, 0.5, 0.25, 0.25, 3.0, 8.5, 9.0, i // 10, 2
    )


@pytest.mark.parametrize("ext", [".jsonl", ".csv"])
def test_writer_round_trip(tmp_path, ext):
    path = tmp_path / f"t{ext}"
    with TelemetryWriter(path) as w:
        for i in range(5):
            w.write(rec(i))
        assert not path.exists()  # written under a temporary name until closed
    rows = read_records(path)
    assert len(rows) == 5 and set(rows[0]) == set(RECORD_FIELDS)
    assert rows[3]["inference_ms"] == 5.0 and rows[4]["frame"] == 4
    if ext == ".jsonl":
        assert json.loads(path.read_text().splitlines()[0])["latency_ms"] == 8.5


def test_writer_rejects_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match=".jsonl or .csv"):
        TelemetryWriter(tmp_path / "t.txt")


def test_collector_stats_match_numpy():
    c = Collector()
    values = np.arange(1, 101, dtype=np.float32)
    for i, v in enumerate(values):
        c.add(rec(i, float(v)))
    s = c.stats("inference_ms")
    assert s.count == 100 and s.mean == pytest.approx(50.5) and s.max == 100
    assert s.p50 == pytest.approx(np.percentile(values, 50)) and s.p99 == pytest.approx(
        np.percentile(values, 99)
    )
    assert c.stats("inference_ms", last=10).mean == pytest.approx(95.5)
    assert c.dropped == 9 and c.detections == 200
    text = format_summary(c, {"model": "m"})
    assert "inference" in text and "p95" in text and "dropped: 9" in text


def test_rolling_fps():
    r = Rolling(window_s=1.0)
    for i in range(31):
        r.add(int(i * 1e9 / 30), 10.0)
    assert r.fps == pytest.approx(30.0, rel=1e-6) and r.latency_ms == 10.0


def test_plot_writes_png(tmp_path):
    path = tmp_path / "t.jsonl"
    with TelemetryWriter(path) as w:
        for i in range(20):
            w.write(rec(i))
    from edge.outputs.telemetry_plot import plot_telemetry

    out = plot_telemetry(path, tmp_path / "lat.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _telemetry(tmp_path, ext: str, frames: int = 6):
    path = tmp_path / f"good{ext}"
    with TelemetryWriter(path) as w:
        for i in range(frames):
            w.write(rec(i))
    return path


def _drop_column(text: str, name: str) -> str:
    rows = [line.split(",") for line in text.splitlines()]
    i = rows[0].index(name)
    return "".join(",".join(r[:i] + r[i + 1 :]) + "\r\n" for r in rows)


def _drop_key(text: str, name: str) -> str:
    lines = text.splitlines()
    last = json.loads(lines[-1])
    del last[name]
    return "\n".join([*lines[:-1], json.dumps(last)]) + "\n"


# (ext, change of a good file's text, message; None: it plots with the cut-off line left out)
BAD_TELEMETRY = [
    (".csv", lambda t: _drop_column(t, "latency_ms"), "t.csv: not edge telemetry (no latency_ms"),
    (".jsonl", lambda t: _drop_key(t, "latency_ms"), "t.jsonl:6: not edge telemetry (no number"),
    (".csv", lambda t: "", "t.csv: no frame records"),
    (".jsonl", lambda t: "", "t.jsonl: no frame records"),
    (".csv", lambda t: t.splitlines()[0] + "\n", "t.csv: no frame records"),
    (".csv", lambda t: t.replace(t.splitlines()[3], "1,2", 1), "t.csv:4: not edge telemetry"),
    (".jsonl", lambda t: "[1, 2]\n", "t.jsonl:1: not edge telemetry"),
    (".csv", lambda t: bytes(range(256)) * 4, "t.csv: not UTF-8 text (byte 128)"),
    (".jsonl", lambda t: bytes(range(256)) * 4, "t.jsonl: not UTF-8 text (byte 128)"),
    (".csv", lambda t: t[:-12], None),  # what a run killed mid-write leaves
    (".jsonl", lambda t: t[:-12], None),
]


@pytest.mark.parametrize(("ext", "change", "message"), BAD_TELEMETRY)
def test_telemetry_plot_of_a_bad_file_is_one_line_naming_it(tmp_path, ext, change, message):
    import subprocess
    import sys

    changed = change(_telemetry(tmp_path, ext).read_text(encoding="utf-8"))
    path = tmp_path / f"t{ext}"
    if isinstance(changed, bytes):
        path.write_bytes(changed)
    else:
        path.write_text(changed, encoding="utf-8", newline="")
    r = subprocess.run(
        [sys.executable, "-m", "edge", "telemetry", "plot", path.name, "-o", "p.png"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    lines = r.stderr.strip().splitlines()
    if message is None:  # the cut-off line is skipped with a warning naming it
        assert r.returncode == 0, r.stderr
        line = 7 if ext == ".csv" else 6  # a CSV has its header line first
        assert lines == [f"telemetry file t{ext}: line {line} was cut off (the run stopped "
                         "mid-write); skipped"]  # fmt: skip
        assert len(read_records(path)) == 5 and (tmp_path / "p.png").is_file()
    else:
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert message in lines[0], lines[0]
        assert not (tmp_path / "p.png").exists()
