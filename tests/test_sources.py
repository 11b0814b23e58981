from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import SourceError
from edge.sources import LatestFrameSource, SourceOptions, latest, open_source


def write_video(path: Path, n: int, size=(64, 48), fps=30.0) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(n):
        img = np.full((size[1], size[0], 3), i * 10 % 255, np.uint8)
        cv2.putText(img, str(i), (5, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        w.write(img)
    w.release()
    return path


def write_images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"img{i:02d}.png"
        cv2.imwrite(str(p), np.full((20, 30, 3), i, np.uint8))
        paths.append(p)
    return paths


def test_video_file_reads_every_frame_in_order(tmp_path):
    video = write_video(tmp_path / "v.avi", 25)
    with open_source(str(video)) as src:
        frames = list(src)
    assert [f.index for f in frames] == list(range(25))
    assert src.fps == pytest.approx(30.0) and not src.live and src.stats.dropped == 0
    assert all(f.captured_ns > 0 for f in frames)
    assert frames[0].captured_ns < frames[-1].captured_ns


def test_image_folder_glob_and_single(tmp_path):
    paths = write_images(tmp_path / "imgs", 4)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    with open_source(str(tmp_path / "imgs")) as src:
        assert len(list(src)) == 4
    with open_source(str(tmp_path / "imgs" / "img0[12].png")) as src:
        assert len(list(src)) == 2
    with open_source(str(paths[3])) as src:
        (frame,) = list(src)
    assert frame.image[0, 0, 0] == 3


def test_corrupt_image_in_folder_is_skipped(tmp_path):
    write_images(tmp_path / "imgs", 3)
    (tmp_path / "imgs" / "img01.png").write_bytes(b"garbage")
    with open_source(str(tmp_path / "imgs")) as src:
        assert len(list(src)) == 2


def test_a_folder_of_only_unreadable_images_is_a_source_error(tmp_path, caplog):
    # It ended with exit 0 and a table of nan: nothing could be processed.
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        (tmp_path / "imgs" / f"{i}.jpg").write_bytes(b"\xff\xd8garbage")
    with open_source(str(tmp_path / "imgs")) as src, pytest.raises(SourceError) as info:
        list(src)
    assert str(info.value) == (
        f"--source imgs: no image could be read ({tmp_path / 'imgs' / '0.jpg'} and 2 more)"
    )
    assert "unreadable image skipped" not in caplog.text  # one line, not one per image


def test_synthetic_source_carries_truth():
    with open_source("synthetic", SourceOptions(width=160, height=120)) as src:
        frames = [f for _, f in zip(range(3), src, strict=False)]
    assert frames[0].image.shape == (120, 160, 3)
    assert frames[0].truth is not None and len(frames[0].truth) > 0


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", "empty"),
        ("does/not/exist.mp4", "no such file"),
        ("99", "camera 99"),
        # an integer no camera can have: OpenCV's int overload would raise its own error
        ("99999999999999999999", "--source 99999999999999999999: camera index out of range"),
        ("2147483648", "camera index out of range 0..1023"),
        ("1024", "camera index out of range 0..1023"),
        ("-1", "--source -1: camera index out of range"),
        ("\u00b2", "no such file"),  # a digit to str.isdigit, not to int()
        ("*.nothing-matches-*.png", "no images match"),
    ],
)
def test_unopenable_sources(spec, match):
    with pytest.raises(SourceError, match=match):
        open_source(spec, SourceOptions(reconnect_attempts=0))


def test_empty_folder_and_corrupt_video(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="folder has no images"):
        open_source(str(tmp_path / "empty"))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError, match="bad.mp4"):
        open_source(str(bad))


def test_latest_frame_drops_stale_frames_under_a_slow_consumer():
    # A 200 FPS paced capture and a consumer that takes 30 ms a frame: each frame handed over is
    # the newest one captured when the consumer asked (a queue would fall further behind with
    # every frame), and the ones skipped are counted. Frame numbers, not clock times.
    captured = [-1]

    def reader():
        captured[0] += 1
        return np.full((1, 1, 1), captured[0], np.int64), None

    src = LatestFrameSource("counter", lambda: reader, SourceOptions(), pace=1 / 200)
    behind, numbers = [], []
    with src:
        frames = src.frames()
        for _ in range(16):
            asked = captured[0]
            number = int(next(frames).image[0, 0, 0])
            # The slot holds frame `asked - 1` or newer when the consumer asks (the reader may
            # have returned frame `asked` and be pacing it): never an older one.
            behind.append(asked - 1 - number)
            numbers.append(number)
            time.sleep(0.03)
        dropped, read = src.stats.dropped, src.stats.read
    assert max(behind) <= 0, behind
    assert numbers == sorted(set(numbers))  # in order, none twice
    assert dropped >= numbers[-1] + 1 - 16  # every frame captured and never handed over
    assert read >= numbers[-1] + 1


def test_live_source_reconnects_with_backoff():
    opened = {"n": 0}

    def open_reader():
        opened["n"] += 1
        if opened["n"] == 2:  # the first reconnect attempt fails
            raise SourceError("still down")
        count = iter(range(5))

        def read():
            i = next(count, None)
            return None if i is None else (np.zeros((8, 8, 3), np.uint8), None)

        return read

    opts = SourceOptions(reconnect_attempts=3, reconnect_backoff=(0.01, 0.02))
    src = LatestFrameSource("fake", open_reader, opts)
    got = 0
    with src:
        for _ in src:
            got += 1
            time.sleep(0.002)
            if src.stats.reconnects >= 2 and got >= 3:
                break
    kinds = [e.kind for e in src.stats.events]
    assert src.stats.reconnects >= 2 and opened["n"] >= 4
    assert kinds[:2] == ["lost", "reconnected"]


def test_live_source_gives_up_after_bounded_attempts():
    calls = {"n": 0}

    def open_reader():
        calls["n"] += 1
        if calls["n"] > 1:
            raise SourceError("down")
        return lambda: None  # delivers nothing: lost at once

    src = LatestFrameSource(
        "fake", open_reader, SourceOptions(reconnect_attempts=2, reconnect_backoff=(0.01, 0.01))
    )
    with src:
        assert list(src) == []
    assert calls["n"] == 3 and [e.kind for e in src.stats.events] == ["lost", "gave_up"]


def _flapping(frames_per_connection: int) -> tuple[dict[str, int], object]:
    """A source that opens every time and drops after `frames_per_connection` frames."""
    opened = {"n": 0}

    def open_reader():
        opened["n"] += 1
        count = iter(range(frames_per_connection))

        def read():
            return None if next(count, None) is None else (np.zeros((8, 8, 3), np.uint8), None)

        return read

    return opened, open_reader


def _drain(src, cap: int = 1000) -> int:
    """Frames until the source ends (at most `cap`: before the fix a flapping one never ended)."""
    got = 0
    with src:
        for _ in src:
            got += 1
            if got >= cap:
                break
    return got


def test_a_reopen_that_does_not_last_spends_the_same_outage_budget():
    # One frame per connection: each reopen "works", then the source drops again at once.
    opened, open_reader = _flapping(1)
    opts = SourceOptions(reconnect_attempts=3, reconnect_backoff=(0.001, 0.001))
    src = LatestFrameSource("fake", open_reader, opts)
    assert _drain(src) <= 4 and opened["n"] == 4  # the first open and 3 attempts, no more
    kinds = [e.kind for e in src.stats.events]
    assert kinds == ["lost", "reconnected", "reconnected", "reconnected", "gave_up"]
    assert src.stats.events[-1].detail == "after 3 attempts" and src.gave_up


@pytest.mark.parametrize("frames", [1, latest.STABLE_FRAMES])
def test_a_source_that_keeps_dropping_is_given_up_as_lost(frames, caplog):
    # Recovered or not between drops, more than MAX_DROPS drops in the window end the source.
    opened, open_reader = _flapping(frames)
    opts = SourceOptions(reconnect_attempts=20, reconnect_backoff=(0.001, 0.001))
    src = LatestFrameSource("fake", open_reader, opts)
    _drain(src)
    assert opened["n"] == latest.MAX_DROPS + 1 and src.gave_up
    assert src.stats.events[-1].detail == f"keeps dropping ({latest.MAX_DROPS + 1} times)"
    lost = [e for e in src.stats.events if e.kind == "lost"]
    assert len(lost) == (latest.MAX_DROPS + 1 if frames == latest.STABLE_FRAMES else 1)
    said = [r.getMessage() for r in caplog.records if "keeps dropping" in r.getMessage()]
    assert len(said) == 1


def test_capture_thread_error_reaches_the_consumer():
    def open_reader():
        def read():
            raise RuntimeError("driver exploded")

        return read

    src = LatestFrameSource("fake", open_reader, SourceOptions(reconnect_attempts=0))
    with src, pytest.raises(SourceError, match="driver exploded"):
        list(src)


def test_labelled_image_folder_carries_yolo_truth(tmp_path):
    images = tmp_path / "ds" / "images" / "val"
    write_images(images, 2)
    labels = tmp_path / "ds" / "labels" / "val"
    labels.mkdir(parents=True)
    (labels / "img00.txt").write_text("1 0.5 0.5 0.2 0.4\n")  # 30x20 image: box (12, 6)-(18, 14)
    with open_source(str(images)) as src:
        frames = list(src)
    np.testing.assert_allclose(frames[0].truth.xyxy, [[12, 6, 18, 14]], atol=1e-5)
    assert frames[0].truth.class_id.tolist() == [1]
    assert frames[1].truth is None  # no label file: no ground truth


def test_a_header_frame_rate_out_of_range_is_clamped_with_one_warning(tmp_path):
    # Taken literally, 0.01 FPS paces --realtime at one frame per 100 s: 3 frames took 300 s.
    import os
    import subprocess
    import sys

    video = write_video(tmp_path / "v.avi", 5, fps=0.01)
    cap = cv2.VideoCapture(str(video))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(0.01)  # the container kept the value
    cap.release()
    r = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--source", str(video), "--realtime"]
        + ["--max-frames", "3"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "DISPLAY": ""},
        timeout=120,  # a hang guard
    )
    assert r.returncode == 0, r.stderr
    assert "frames: 3 " in r.stdout + r.stderr
    warned = [line for line in r.stderr.splitlines() if "its header says" in line]
    assert warned == [f"video {video}: its header says 0.01 FPS, not a real frame rate; using 1"]
