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
