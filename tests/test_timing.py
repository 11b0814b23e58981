from __future__ import annotations

from dataclasses import fields

import pytest

from edge.outputs.telemetry_file import RECORD_FIELDS
from edge.runtime.stats import Collector
from edge.runtime.timing import PARTS, SPANS, STAGES, FrameRecord, FrameTiming


def test_stage_names_are_written_once():
    timing = FrameTiming("cam", 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    assert [name for name, _, _ in timing.stages()] == list(STAGES)
    ms = {f.name for f in fields(FrameRecord) if f.name.endswith("_ms") and f.name != "t_ms"}
    assert ms == {f"{n}_ms" for n in (*STAGES, *PARTS, *SPANS)}
    assert tuple(f"{n}_ms" for n in (*STAGES, *PARTS, *SPANS)) == Collector.COLUMNS
    assert [name for name, _, _ in timing.parts()] == list(PARTS)
    assert set(RECORD_FIELDS) >= ms


def test_a_record_is_made_from_the_timing():
    ms = 1_000_000
    # captured 0; wait 1-2; prep 2-5; inference 7-17; post 20-21; render -24; sink -30 (ms)
    t = FrameTiming("cam", 3, 0, 1 * ms, 2 * ms, 5 * ms, 7 * ms, 17 * ms, 20 * ms, 21 * ms,
                    24 * ms, 30 * ms, batch=2)  # fmt: skip
    r = FrameRecord.of(t, t0_ns=-4 * ms, dropped=1, detections=5)
    assert (r.frame, r.source, r.t_ms, r.dropped, r.detections) == (3, "cam", 4.0, 1, 5)
    got = [r.wait_ms, r.preprocess_ms, r.inference_ms, r.postprocess_ms, r.render_ms, r.sink_ms]
    assert got == pytest.approx([1, 3, 10, 1, 3, 6])
    assert (r.age_ms, r.latency_ms, r.total_ms) == pytest.approx((7, 21, 30))


def test_the_network_part_lies_inside_the_inference_call():
    ms = 1_000_000
    t = FrameTiming("cam", 0, 0, 0, 0, 0, 7 * ms, 17 * ms, 20 * ms, 21 * ms, 24 * ms, 30 * ms,
                    network_ns=4 * ms)  # fmt: skip
    r = FrameRecord.of(t, t0_ns=0, dropped=0, detections=0)
    assert (r.inference_ms, r.network_ms) == pytest.approx((10, 4))
    assert t.parts() == [("network", 7 * ms, 11 * ms)]
    local = FrameRecord.of(FrameTiming("cam", 0, *([0] * 10)), 0, 0, 0)
    assert local.network_ms == 0.0  # a local model has no network part
