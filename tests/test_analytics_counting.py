"""Lines and zones: geometry, hysteresis, id switches, dwell, and exact counts on the synthetic scene."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.analytics import Analytics, EventLog, RegionOptions, StreamCounter, parse_line, parse_zone
from edge.analytics.count_report import count_error, flat_counts
from edge.analytics.geometry import anchor_points
from edge.runtime.tracking import Tracker
from edge.sources.synthetic import CLASS_NAMES, SyntheticScene
from edge.types import Detections, Frame

SIZE = (320, 240)


def box_at(x: float, y: float, w: float = 20, h: float = 30) -> list[float]:
    """A box whose bottom-centre (the default anchor) is (x, y)."""
    return [x - w / 2, y - h, x + w / 2, y]


def dets(boxes: list, ids: list, cls: list | None = None) -> Detections:
    n = len(boxes)
    return Detections(
        np.asarray(boxes, np.float32).reshape(-1, 4), np.full(n, 0.9), cls or [0] * n, ids
    )


def run(counter: StreamCounter, frames: list[Detections], fps: float = 10.0) -> list:
    events = []
    for i, d in enumerate(frames):
        events += counter.update(d, i, i / fps, SIZE, wall=1000.0 + i)
    return events


# --- geometry -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, points",
    [
        ("door=10,20,30,40", ((10, 20), (30, 40))),
        ("mid=0,0.5,1,0.5", ((0, 0.5), (1, 0.5))),
        ("a_b-1 = 1, 2, 3, 4", ((1, 2), (3, 4))),
    ],
)
def test_parse_line(text, points):
    line = parse_line(text)
    assert line.points == points and line.name == text.split("=")[0].strip()


@pytest.mark.parametrize(
    "text, message",
    [
        ("door", "expected NAME=x1,y1"),
        ("door=1,2,3", "odd number"),
        ("door=1,2,3,4,5,6", "expected 4 coordinates"),
        ("door=a,b,c,d", "must be numbers"),
        ("door=1,1,1,1", "the same"),
        ("door=-1,0,5,5", "not negative"),
        ("do or=1,2,3,4", "letters, digits"),
        ("=1,2,3,4", "letters, digits"),
    ],
)
def test_parse_line_rejects(text, message):
    with pytest.raises(ValueError, match=message) as err:
        parse_line(text)
    assert "--line" in str(err.value)


@pytest.mark.parametrize(
    "text, message",
    [("bay=1,2,3,4", "at least 3 points"), ("bay=0,0,1,1,2,2", "no area"), ("bay=1,2,3", "odd")],
)
def test_parse_zone_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        parse_zone(text)


def test_fractions_resolve_to_pixels_and_pixels_stay():
    assert parse_zone("z=0,0,0.5,0,0.5,1").resolve(320, 240).points == (
        (0, 0),
        (160, 0),
        (160, 240),
    )
    assert parse_line("l=0,0,2,3").resolve(320, 240).points == ((0, 0), (2, 3))


@pytest.mark.parametrize(
    "anchor, point",
    [("bottom-center", (20, 40)), ("center", (20, 30)), ("top-left", (10, 20)), ("center-right", (30, 30))],
)  # fmt: skip
def test_anchor_points(anchor, point):
    assert anchor_points(np.array([[10, 20, 30, 40]]), anchor).tolist() == [list(point)]


def test_unknown_anchor_is_rejected():
    with pytest.raises(ValueError, match="--anchor 'feet'"):
        RegionOptions(anchor="feet")


# --- lines ----------------------------------------------------------------------------------------


def test_moving_down_across_a_left_to_right_line_is_in_and_back_up_is_out():
    c = StreamCounter(RegionOptions(lines=(parse_line("door=0,100,320,100"),)), "cam", ["person"])
    down = [dets([box_at(160, y)], [7]) for y in range(60, 141, 10)]
    up = [dets([box_at(160, y)], [7]) for y in range(140, 59, -10)]
    events = run(c, down + up)
    assert [(e.kind, e.line, e.track_id, e.class_name) for e in events] == [
        ("cross-in", "door", 7, "person"),
        ("cross-out", "door", 7, "person"),
    ]
    assert c.line_counts["door"].by_class == {0: [1, 1]}
    # Swapping the end points swaps in and out.
    c2 = StreamCounter(RegionOptions(lines=(parse_line("door=320,100,0,100"),)))
    assert [e.kind for e in run(c2, down)] == ["cross-out"]


def test_walking_round_the_end_of_a_line_is_no_crossing():
    c = StreamCounter(RegionOptions(lines=(parse_line("door=100,100,200,100"),)))
    path = [(50, 60), (150, 60), (250, 60), (250, 140), (150, 140)]  # over, round the end, back
    events = run(c, [dets([box_at(x, y)], [1]) for x, y in path])
    assert events == []  # under the line again only by going round its right end


@pytest.mark.parametrize("band, expected_in, expected_out", [(0.02, 1, 0), (0.0, 10, 9)])
def test_a_box_jittering_on_the_line_counts_once(band, expected_in, expected_out):
    # Walks down to the line, shakes +-2 px across it for 20 frames, then walks on: one crossing.
    ys = [60, 70, 80, 90] + [100 + (2 if i % 2 else -2) for i in range(20)] + [110, 120, 130]
    c = StreamCounter(RegionOptions(lines=(parse_line("door=0,100,320,100"),), band=band))
    run(c, [dets([box_at(160, y)], [3]) for y in ys])
    assert c.line_counts["door"].total == (expected_in, expected_out)  # band 0: every shake counts


@pytest.mark.parametrize("handover, expected", [(0.5, (1, 0)), (0.0, (0, 0))])
def test_an_id_switch_in_the_middle_of_a_crossing_counts_once(handover, expected):
    # Id 4 walks down to the line, the tracker loses it for two frames (while it crosses) and
    # re-finds it past the line as id 9: the new id takes over id 4's side, so the crossing
    # counts, once. Without the handover, id 9 starts on the far side and the crossing is lost.
    frames = [dets([box_at(160, y)], [4]) for y in (60, 70, 80, 90)]
    frames += [dets([], []), dets([], [])]
    frames += [dets([box_at(160, y)], [9]) for y in (120, 130, 140, 130, 135)]
    c = StreamCounter(RegionOptions(lines=(parse_line("door=0,100,320,100"),), handover=handover))
    run(c, frames)
    assert c.line_counts["door"].total == expected
    assert c.handovers == (1 if handover else 0)


@pytest.mark.parametrize("handover, enters, exits", [(0.5, 1, 0), (0.0, 2, 1)])
def test_an_id_switch_inside_a_zone_is_neither_an_exit_nor_an_entry(handover, enters, exits):
    frames = [dets([box_at(100 + 2 * i, 150)], [1]) for i in range(10)]
    frames += [dets([box_at(122 + 2 * i, 150)], [2]) for i in range(20)]  # same object, new id
    zone = parse_zone("bay=50,100,250,100,250,200,50,200")
    c = StreamCounter(RegionOptions(zones=(zone,), handover=handover, lost_s=1.0))
    run(c, frames)
    z = c.zone_counts["bay"]
    assert (sum(z.entries.values()), sum(z.exits.values()), z.occupied) == (enters, exits, 1)


def test_an_other_class_is_never_handed_over():
    frames = [dets([box_at(100, 150)], [1], [0]), dets([box_at(101, 150)], [2], [1])]
    c = StreamCounter(RegionOptions(zones=(parse_zone("bay=50,100,250,100,250,200,50,200"),)))
    run(c, frames)
    assert c.handovers == 0 and c.zone_counts["bay"].entries == {0: 1, 1: 1}


# --- zones ----------------------------------------------------------------------------------------


def test_enter_dwell_exit_and_lost():
    zone = parse_zone("bay=100,100,200,100,200,200,100,200")
    c = StreamCounter(RegionOptions(zones=(zone,), dwell_alert_s=2.0, lost_s=0.5), "s", ["car"])
    frames = [dets([box_at(80, 150)], [1])]  # outside
    frames += [dets([box_at(150, 150)], [1]) for _ in range(30)]  # 3 s inside at 10 fps
    frames += [dets([box_at(250, 150)], [1])]  # out
    frames += [dets([box_at(150, 150)], [1])] + [dets([], [])] * 7  # back in, then gone
    events = run(c, frames)
    kinds = [(e.kind, e.frame) for e in events]
    assert kinds == [("enter", 1), ("dwell", 21), ("exit", 31), ("enter", 32), ("exit", 38)]
    assert events[1].dwell_s == pytest.approx(2.0) and events[2].dwell_s == pytest.approx(3.0)
    assert events[-1].lost and not events[2].lost
    z = c.zone_counts["bay"]
    assert (z.entries, z.exits, z.dwells, z.occupied, z.peak) == ({0: 2}, {0: 2}, {0: 1}, 0, 1)


def test_occupancy_by_class_is_entries_minus_exits():
    zone = parse_zone("bay=0,0,0.5,0,0.5,1,0,1")  # the left half of the frame
    c = StreamCounter(RegionOptions(zones=(zone,)), "s", ["a", "b"])
    boxes = [box_at(40, 100), box_at(80, 100), box_at(120, 100), box_at(240, 100)]
    run(c, [dets(boxes, [1, 2, 3, 4], [0, 1, 1, 1])])
    assert c.zone_counts["bay"].occupancy == {0: 1, 1: 2}


# --- the synthetic scene: an oracle detector through the real tracker equals the truth -----------

LINES = ("h=0,0.6,1,0.6", "v=0.5,0,0.5,1")
ZONE = (
    0.0,
    0.3,
    0.4,
    1.0,
)  # x0, y0, x1, y1 (fractions): a rectangle, so the truth can be worked by hand


def true_counts(tracks: dict, n_frames: int, fps: float, band: float, lost_s: float) -> dict:
    """Counts worked out from the true identities, offline, with plain arithmetic: per identity,
    its visible bottom-centre points; a side or a zone is taken once a point is more than `band`
    pixels from the line or outline; a gap longer than `lost_s` ends a visit."""
    w, h = SIZE
    x0, y0, x1, y1 = ZONE[0] * w, ZONE[1] * h, ZONE[2] * w, ZONE[3] * h
    out: dict = {}

    def add(key):
        out[key] = out.get(key, 0) + 1

    for points in tracks.values():
        visits, current = [], []
        for p in points:
            if current and (p[0] - current[-1][0]) / fps > lost_s:
                visits.append(current)
                current = []
            current.append(p)
        visits.append(current)
        for k, visit in enumerate(visits):
            side = {"h": 0, "v": 0}
            inside = None
            for _, x, y, name in visit:
                for line, d in (("h", y - 0.6 * h), ("v", 0.5 * w - x)):  # >0 on the "in" side
                    now = (1 if d > 0 else -1) if abs(d) > band else side[line]
                    if side[line] and now != side[line]:
                        add(("s", line, name, "in" if now > 0 else "out"))
                    side[line] = now
                if x0 <= x <= x1 and y0 <= y <= y1:
                    depth = min(x - x0, x1 - x, y - y0, y1 - y)
                else:
                    depth = -np.hypot(max(x0 - x, 0, x - x1), max(y0 - y, 0, y - y1))
                now = inside if abs(depth) <= band else depth > 0
                if now is not None and now != bool(inside):
                    add(("s", "bay", name, "enter" if now else "exit"))
                inside = now
            ended = k < len(visits) - 1 or (n_frames - 1 - visit[-1][0]) / fps > lost_s
            if inside and ended:
                add(("s", "bay", visit[-1][3], "exit"))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oracle_counts_equal_the_truth_on_the_synthetic_scene(seed):
    fps, n = 30.0, 300
    options = RegionOptions(
        lines=tuple(parse_line(s) for s in LINES),
        zones=(parse_zone("bay=" + ",".join(map(str, (0, 0.3, 0.4, 0.3, 0.4, 1, 0, 1)))),),
    )
    scene = SyntheticScene(*SIZE, seed=seed, fps=fps, objects=6)
    tracker = Tracker()
    counted = StreamCounter(options, "s", CLASS_NAMES)
    tracks: dict = {}
    for i in range(n):
        f = scene.frame(i)
        oracle = Detections(f.boxes, np.ones(len(f.boxes)), f.class_ids)  # no identities
        counted.update(tracker.update(oracle), i, i / fps, SIZE)
        for (x1, _, x2, y2), cid, ident in zip(f.boxes, f.class_ids, f.track_ids, strict=True):
            tracks.setdefault(int(ident), []).append((i, (x1 + x2) / 2, y2, CLASS_NAMES[cid]))
    truth = true_counts(tracks, n, fps, band=0.02 * min(SIZE), lost_s=1.0)
    assert sum(truth.values()) >= 8  # the scene does cross the lines and visit the zone
    assert flat_counts(counted) == truth
    assert count_error(flat_counts(counted), truth).error == 0


# --- streams, files and drawing -------------------------------------------------------------------


def frame(stream: str, index: int, truth: Detections | None = None) -> Frame:
    return Frame(np.zeros((240, 320, 3), np.uint8), index, index * 100_000_000, stream, truth=truth)


def test_two_streams_count_their_own_lines_and_zones(tmp_path):
    a = RegionOptions(lines=(parse_line("door=0,100,320,100"),))
    b = RegionOptions(zones=(parse_zone("bay=0,0,160,0,160,240,0,240"),))
    path = tmp_path / "events.jsonl"
    with Analytics({"a": a, "b": b}, names=["person"], outputs=[EventLog(path)]) as an:
        for i, y in enumerate((60, 90, 120, 150)):
            # The same boxes and ids in both streams: a's door sees a crossing, b's bay an entry.
            an.update(frame("a", i), dets([box_at(100, y)], [1]), t=i / 10)
            an.update(frame("b", i), dets([box_at(100, y)], [1]), t=i / 10)
            an.update(frame("c", i), dets([box_at(100, y)], [1]), t=i / 10)  # no regions
        assert not path.exists()  # written under a temporary name until closed
    rows = [json.loads(s) for s in path.read_text().splitlines()]
    assert [(r["stream"], r["kind"], r.get("line"), r.get("zone")) for r in rows] == [
        ("b", "enter", None, "bay"),
        ("a", "cross-in", "door", None),
    ]
    assert set(rows[0]) >= {"time", "stream", "frame", "track_id", "class", "score", "kind", "box"}
    assert rows[1]["frame"] == 2 and rows[1]["class"] == "person"
    assert set(an.counters) == {"a", "b"} and not list(tmp_path.glob(".*partial*"))


def test_summary_reports_the_counting_error_against_truth():
    options = RegionOptions(lines=(parse_line("door=0,100,320,100"),))
    an = Analytics(default=options, names=["person"])
    for i, y in enumerate((60, 90, 120, 150)):
        truth = dets([box_at(100, y), box_at(200, y)], [1, 2])  # two people cross
        an.update(frame("cam", i, truth), dets([box_at(100, y)], [5]), t=i / 10)  # one is seen
    text = an.summary()
    assert "counting error against the truth: 1 of 2 true counts (50.0%); counted 1" in text
    row = next(s for s in text.splitlines() if s.startswith("cam") and "line door" in s)
    assert row.split()[3:] == ["person", "1", "0", "2", "0"]


def test_overlay_draws_regions_and_counts_on_a_copy():
    options = RegionOptions(
        lines=(parse_line("door=0,0.5,1,0.5"),), zones=(parse_zone("bay=0,0,0.3,0,0.3,0.3"),)
    )
    an = Analytics(default=options)
    image = np.zeros((240, 320, 3), np.uint8)
    drawn = an.draw(image, "cam")
    assert image.max() == 0  # the input is untouched
    assert drawn[120, 200:300].max() > 100  # the line across the middle
    assert drawn[50, 85].max() > 0  # the shaded zone
    assert an.draw(image, "cam").shape == image.shape


def test_prometheus_text():
    an = Analytics(
        default=RegionOptions(zones=(parse_zone("bay=0,0,160,0,160,240,0,240"),)), names=["car"]
    )
    an.update(frame("cam", 0), dets([box_at(50, 100), box_at(60, 100)], [1, 2]), t=0.0)
    text = an.metrics()
    assert 'edge_zone_occupancy{source="cam",zone="bay",class="car"} 2' in text
    assert 'edge_zone_entries_total{source="cam",zone="bay",class="car"} 2' in text
    assert "# TYPE edge_line_crossings_total counter" in text


def test_the_loop_hook_attaches_events_and_a_drawing():
    from types import SimpleNamespace

    an = Analytics(default=RegionOptions(lines=(parse_line("door=0,100,320,100"),)), names=["p"])
    drawn = []
    for i, y in enumerate((60, 90, 120)):
        result = SimpleNamespace(
            stream="cam", frame=frame("cam", i), detections=dets([box_at(100, y)], [1]),
            events=[], overlay=[],
        )  # fmt: skip
        an.process(result)
        image = np.zeros((240, 320, 3), np.uint8)
        for overlay in result.overlay:
            overlay(image)  # draws in place, as the loop does on its own copy
        drawn.append(image)
    assert [e["event"] for e in result.events] == ["cross-in"] and result.events[0][
        "line"
    ] == "door"
    assert drawn[-1][100, 200:300].max() > 100


def test_dwell_is_measured_in_video_time_when_the_stream_has_an_fps():
    zone = parse_zone("bay=0,0,320,0,320,240,0,240")
    an = Analytics(default=RegionOptions(zones=(zone,), dwell_alert_s=1.0), fps={"cam": 10.0})
    kinds = []
    for i in range(12):  # captured 0.1 s apart per `frame`, but the clock is index / fps
        f = Frame(np.zeros((240, 320, 3), np.uint8), i, 5 * i, "cam")
        kinds += [(e.kind, e.frame) for e in an.update(f, dets([box_at(100, 100)], [1]))]
    assert kinds == [("enter", 0), ("dwell", 10)]


def test_snapshots_crop_the_object_of_each_event(tmp_path):
    import cv2

    from edge.analytics.snapshots import Snapshots

    image = np.zeros((240, 320, 3), np.uint8)
    image[70:100, 90:110] = (0, 0, 255)  # the object: a red box whose bottom-centre is (100, 100)
    zone = parse_zone("bay=0,0,320,0,320,240,0,240")
    with Analytics(default=RegionOptions(zones=(zone,)), snapshots=Snapshots(tmp_path / "s")) as an:
        f = Frame(image, 3, 0, "cam 1")
        events = an.update(f, dets([box_at(100, 100)], [1]))
    path = tmp_path / "s" / "cam_1" / "000003-1-enter-bay.jpg"
    assert events[0].extra == {"snapshot": str(path)} and path.is_file()
    crop = cv2.imread(str(path))
    assert crop.shape[:2] == (40, 27)  # 30 x 20 and 15% each side, clipped to whole pixels
    assert crop[20, 13, 2] > 200 and crop[20, 13, 0] < 60  # red in the middle


def test_event_file_errors_name_the_flag(tmp_path):
    from edge.errors import EdgeError

    with pytest.raises(EdgeError, match=r"--events .*no_dir/e.jsonl: cannot write"):
        EventLog(tmp_path / "no_dir" / "e.jsonl")
    with pytest.raises(EdgeError, match=r"--events .*: not a regular file"):
        EventLog(tmp_path)  # found at once, not after the run when the rename fails
    assert not list(tmp_path.iterdir())
