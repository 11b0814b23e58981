from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge.api.streaming import stream
from edge.outputs.telemetry_file import read_records
from edge.runtime.session import ModelSession
from edge.sources import SourceOptions, open_source

SMALL = SourceOptions(width=128, height=96)
LIVE = SourceOptions(width=128, height=96, realtime=True, fps=60)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


@pytest.fixture
def clean(tiny_model):
    """Asserts the test leaves no thread running and no file descriptor open."""
    ModelSession(tiny_model)  # ONNX Runtime opens its process-wide files at the first session
    before_threads, before_fds = threads(), open_fds()
    yield
    deadline = time.monotonic() + 5  # daemon threads of cv2/ORT are not ours: only names we know
    while threads() - before_threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threads() - before_threads == set()
    assert open_fds() - before_fds == set()


def _files(tmp_path: Path) -> dict[str, Path]:
    return {
        "save": tmp_path / "v.mp4",
        "jsonl": tmp_path / "d.jsonl",
        "telemetry": tmp_path / "t.jsonl",
        "trace": tmp_path / "t.json",
    }


def _complete(tmp_path: Path, frames: int) -> None:
    """Every file renamed into place, parseable, holding the frames that were finished."""
    assert not list(tmp_path.glob(".*partial*"))
    rows = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert len(rows) >= frames
    assert len(read_records(tmp_path / "t.jsonl")) >= frames
    json.loads((tmp_path / "t.json").read_text())


def test_break_stops_threads_and_closes_files(tiny_model, tmp_path, clean):
    got = []
    for result in stream("synthetic", tiny_model, source_options=SMALL, **_files(tmp_path)):
        got.append(result)
        if len(got) == 5:
            break
    assert [r.frame.index for r in got] == list(range(5))
    r = got[0]
    assert r.stream == "synthetic" and len(r.detections) == 2
    assert r.image is not None  # drawn: the video wants it
    stages = r.timing.stage_ms()
    assert list(stages) == ["wait", "preprocess", "inference", "postprocess", "render", "sink"]
    assert all(v >= 0 for v in stages.values()) and r.record.latency_ms > 0
    _complete(tmp_path, 5)


def test_exception_in_the_body_and_close_stop_everything(tiny_model, tmp_path, clean):
    with pytest.raises(RuntimeError, match="caller"):
        for result in stream("synthetic", tiny_model, source_options=LIVE, **_files(tmp_path)):
            if result.frame.index >= 2:
                raise RuntimeError("caller failed")
    _complete(tmp_path, 1)
    s = stream("synthetic", tiny_model, source_options=LIVE, draw=True)
    first = next(s)
    assert first.image is not None and first.image.shape == (96, 128, 3)
    assert not np.array_equal(first.image, first.frame.image)  # boxes drawn on a copy
    s.close()
    s.close()  # twice is fine
    assert list(s) == []


def test_several_sources_with_tracking_run_to_the_end(tiny_model, tmp_path, clean):
    with stream(["synthetic", "synthetic"], tiny_model, source_options=SMALL, max_frames=6,
                track=True, save=tmp_path / "v.mp4") as s:  # fmt: skip
        results = list(s)
    assert s.result is not None and s.result.stopped_by == "max_frames"
    by_stream: dict[str, list[int]] = {}
    for r in results:
        by_stream.setdefault(r.stream, []).append(r.frame.index)
        assert sorted(r.detections.track_id.tolist()) == [1, 2]  # stable ids on fixed boxes
    assert by_stream == {"synthetic #0": list(range(6)), "synthetic #1": list(range(6))}
    assert (tmp_path / "v.0.mp4").is_file() and (tmp_path / "v.1.mp4").is_file()
    assert s.result.streams["synthetic #0"].identity is not None


def test_given_sources_stay_open_and_bad_options_fail_at_once(tiny_model):
    with open_source("synthetic", SMALL) as src:
        assert len(list(stream(src, tiny_model, max_frames=3))) == 3
        assert next(iter(src)).image.shape == (96, 128, 3)  # still usable: not closed for us
    with pytest.raises(ValueError, match="--max-frames"):
        stream("synthetic", tiny_model, max_frames=0)
    with pytest.raises(ValueError, match="at least one source"):
        stream([], tiny_model)
