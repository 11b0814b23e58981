"""The loop's choice of overlap and intra-op threads from stage times (edge/runtime/loop_plan.py):
fake measurements with known answers, then the Tuner on a real loop."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from onnx_models import fixed_detector

from edge.outputs.sinks import Sink
from edge.runtime.loop import Loop, LoopOptions
from edge.runtime.loop_plan import EXPLORE_BUDGET, PROBE_FRAMES, Plan, Probe, choose
from edge.runtime.session import ModelSession, SessionOptions
from edge.sources import SourceOptions, open_source


def probe(
    read=4.0,
    infer=8.0,
    finish=1.0,
    infer_cpu=None,
    threads=2,
    extra=0.3,
    other_cpu=None,
    spare=None,
):
    """A serial probe: the frame is its stages plus `extra` book-keeping; CPU time as a quiet
    machine gives it by default (inference 1.6 cores busy, everything else one)."""
    infer_cpu = infer * 1.6 if infer_cpu is None else infer_cpu
    other_cpu = read + finish + extra if other_cpu is None else other_cpu
    return Probe(
        frame=read + infer + finish + extra,
        read=read,
        infer=infer,
        finish=finish,
        infer_cpu=infer_cpu,
        cpu=infer_cpu + other_cpu,
        threads=threads,
        spare=spare,
    )


def plan_for(probes, cores=2, on_cpu=True, threads_fixed=False, rebuild_ms=100.0, left=None):
    return choose(probes, cores, on_cpu, threads_fixed, rebuild_ms, left)


def test_a_gpu_overlaps_whenever_there_is_work_to_hide():
    # Inference on the device: its CPU time is small and the cores are the other threads'.
    p = probe(read=1.0, infer=6.0, finish=0.5, infer_cpu=0.5, threads=16)
    plan = plan_for([p], cores=16, on_cpu=False)
    assert plan.overlap and plan.threads == 16 and not plan.explore
    assert plan.frame_ms == pytest.approx(6.0)  # the inference alone: everything else hidden
    assert plan.predicted["serial"] == pytest.approx(7.8)


def test_nothing_to_hide_stays_serial():
    # A live source read just before inference, no sinks: the frame is inference.
    p = probe(read=0.0, infer=8.0, finish=0.0, extra=0.0)
    plan = plan_for([p])
    assert not plan.overlap and plan.threads == 2 and not plan.explore


def test_a_live_source_hides_only_its_finishing():
    # A camera is read just before inference, overlapped or not: only the 2 ms of finishing
    # can move to another thread.
    p = Probe(
        frame=20.3,
        read=0.0,
        inline=10.0,
        infer=8.0,
        finish=2.0,
        infer_cpu=12.8,
        cpu=25.1,
        threads=2,
    )
    plan = plan_for([p])
    assert plan.overlap and plan.frame_ms == pytest.approx(18.0)


def test_yolo_without_saving_overlaps_on_both_threads():
    # Two cores, 8 ms inference on two threads using 12.8 ms of CPU, 4 ms decoding: overlapped,
    # the CPU time (12.8 + 5.3) / 2 = 9.05 ms bounds the frame, against 13.3 ms serial.
    p = probe(read=4.0, infer=8.0, finish=1.0, infer_cpu=12.8)
    plan = plan_for([p], left=None)
    assert plan.overlap and plan.threads == 2
    assert plan.frame_ms == pytest.approx((12.8 + 5.3) / 2)
    # CPU-bound, and the threads spend 4.8 ms of CPU beyond the 8 ms wall: a session with one
    # thread fewer is worth measuring on an unbounded source.
    assert plan.explore == 1


def test_fewer_threads_are_kept_when_measured_faster():
    # The bundled model with --save: measured with two threads, then with one.
    two = probe(read=5.0, infer=3.0, finish=7.0, infer_cpu=5.0)
    one = probe(read=5.0, infer=3.6, finish=7.0, infer_cpu=3.6, threads=1)
    plan = plan_for([two, one])
    assert plan.overlap and plan.threads == 1 and not plan.explore
    assert plan.frame_ms == pytest.approx(one.cpu / 2)
    assert plan.predicted["overlapped"] == pytest.approx(two.cpu / 2)


def test_the_given_session_is_kept_when_fewer_threads_are_no_faster():
    two = probe(read=4.0, infer=8.0, finish=1.0, infer_cpu=12.8)
    one = probe(read=4.0, infer=12.8, finish=1.0, infer_cpu=12.8, threads=1)
    plan = plan_for([two, one])
    assert plan.overlap and plan.threads == 2


def test_another_thread_count_is_tried_only_in_runs_long_enough_to_afford_it():
    # Finding out costs the new session and PROBE_FRAMES serial frames instead of overlapped
    # ones (13.3 - 9.05 ms each): at most 1% of the run's time left.
    p = probe(read=4.0, infer=8.0, finish=1.0, infer_cpu=12.8)
    cost = 100.0 + PROBE_FRAMES * (13.3 - 9.05)
    assert plan_for([p], rebuild_ms=100.0, left=None).explore == 1  # a live source
    long_enough = PROBE_FRAMES + int(cost / (EXPLORE_BUDGET * 9.05)) + 1
    assert plan_for([p], rebuild_ms=100.0, left=long_enough).explore == 1
    assert not plan_for([p], rebuild_ms=100.0, left=PROBE_FRAMES + 300).explore  # a short clip


def test_not_cpu_bound_means_no_new_session():
    # Inference 20 ms dominates: threads waiting cost nothing the frame would see.
    p = probe(read=2.0, infer=20.0, finish=1.0, infer_cpu=24.0)
    plan = plan_for([p])
    assert plan.overlap and not plan.explore


def test_threads_the_user_chose_are_kept():
    p = probe(read=4.0, infer=8.0, finish=1.0, infer_cpu=12.8)
    assert not plan_for([p], threads_fixed=True).explore
    assert not plan_for([probe(threads=1)]).explore  # one thread: none fewer
    assert not plan_for([p], on_cpu=False).explore


def test_one_core_ties_go_to_serial():
    # One core: the threads can only share it, the frame's CPU time is the floor of both.
    p = probe(read=4.0, infer=8.0, finish=1.0, infer_cpu=8.0, threads=1, extra=0.0)
    plan = plan_for([p], cores=1)
    assert not plan.overlap


def test_a_machine_others_keep_busy_stays_serial():
    # The same frame on a quiet machine overlaps: 13 ms hidden behind 60 ms of inference.
    quiet = probe(read=10.0, infer=60.0, finish=3.0, infer_cpu=20.0, other_cpu=10.0, spare=1.5)
    assert plan_for([quiet]).overlap
    # Other processes used every core the probe did not: 30 ms of CPU per 73.3 ms frame is all
    # the frame can get, overlapped or not, and serial is the least work.
    busy = probe(read=10.0, infer=60.0, finish=3.0, infer_cpu=20.0, other_cpu=10.0, spare=0.0)
    plan = plan_for([busy])
    assert not plan.overlap
    assert plan.predicted["overlapped"] == pytest.approx(busy.frame)
    # Half a core nobody used: the frame's 30 ms of CPU over 0.41 + 0.5 cores, 33 ms, hides
    # under the 60 ms of inference again.
    half = probe(read=10.0, infer=60.0, finish=3.0, infer_cpu=20.0, other_cpu=10.0, spare=0.5)
    assert plan_for([half]).overlap


def test_waiting_that_is_not_cpu_is_hidden_even_on_a_busy_machine():
    # A sink that waits 10 ms per frame (a network, a device) on a machine with no spare core:
    # the frame wanted a core for only 1.5 of its 11.5 ms, so its 2 ms of CPU fit beside the wait.
    p = Probe(frame=11.5, read=1.0, infer=0.2, finish=10.0, infer_cpu=0.2, cpu=2.0, threads=2,
              spare=0.0, busy=1.5)  # fmt: skip
    plan = plan_for([p])
    assert plan.overlap and plan.frame_ms == pytest.approx(10.0)
    # Taken as busy the whole frame, it would stay serial: the CPU then bounds at the frame.
    assert not plan_for([replace(p, busy=None)]).overlap


def test_a_model_on_a_server_has_no_local_threads_and_still_overlaps():
    # Triton: inference is a network wait (no CPU here), so reading and finishing hide behind it.
    p = probe(threads=0)
    assert p.threads == 0
    assert plan_for([replace(p, infer_cpu=0.0)], on_cpu=False).overlap


def test_bad_numbers_are_refused():
    with pytest.raises(ValueError, match="threads"):
        probe(threads=-1)
    with pytest.raises(ValueError, match="cores"):
        plan_for([probe()], cores=0)
    with pytest.raises(ValueError, match="probe"):
        plan_for([])
    with pytest.raises(ValueError, match="spare"):
        probe(spare=-1.0)


class Threads(Sink):
    """Which thread wrote each frame; optionally slow, like a video encoder (sleeping: no CPU)."""

    needs_image = False

    def __init__(self, sleep_s: float = 0.0) -> None:
        self.names: list[str] = []
        self.sleep_s = sleep_s

    def write(self, frame, detections, annotated) -> bool:
        self.names.append(threading.current_thread().name)
        time.sleep(self.sleep_s)
        return True


def synthetic():
    return open_source("synthetic", SourceOptions(width=128, height=96))


def test_a_slow_sink_is_overlapped_after_the_serial_probe(tiny_model):
    # 10 ms of waiting per frame in the sink and almost no CPU: the finishing thread hides it.
    sink = Threads(0.01)
    frames = PROBE_FRAMES + 12
    with synthetic() as src:
        loop = Loop(ModelSession(tiny_model), src, [sink], LoopOptions(max_frames=frames))
        result = loop.run()
    assert result.collector.frames == frames
    assert loop.plan is not None and loop.plan.overlap and loop.overlap
    probe = loop.tuner.probes[0]
    assert probe.finish >= 10.0 and probe.cpu < probe.frame
    serial = PROBE_FRAMES + 1  # the first frame starts the clock
    assert set(sink.names[:serial]) == {threading.current_thread().name}
    assert set(sink.names[serial + 2 :]) == {"finish"}


def test_with_no_core_spare_the_loop_stays_serial(tmp_path, monkeypatch):
    # The machine's idle time does not move during the probe (others use every spare cycle):
    # overlapped, the frame's CPU time can only spread over what the probe itself used, which
    # is the serial frame, and a tie goes to serial.
    import edge.runtime.loop_plan as loop_plan

    monkeypatch.setattr(loop_plan, "idle_ticks", lambda: 0)
    monkeypatch.setattr(loop_plan, "runnable_ns", lambda: -1)  # busy the whole frame
    sink = Threads()
    with synthetic() as src:
        session = ModelSession(fixed_detector(tmp_path / "m.onnx", slow=2))
        loop = Loop(session, src, [sink], LoopOptions(max_frames=PROBE_FRAMES + 6))
        loop.run()
    assert loop.plan is not None and not loop.plan.overlap and not loop.overlap
    assert loop.tuner.probes[0].spare == 0.0
    assert set(sink.names) == {threading.current_thread().name}


def test_the_tuner_measures_a_session_with_fewer_threads_and_keeps_the_faster(
    tmp_path, monkeypatch
):
    # The decision is faked (explore one thread, then keep it); the session is built for real.
    import edge.runtime.loop_plan as loop_plan

    seen: list[list[Probe]] = []

    def fake_choose(probes, cores, on_cpu, threads_fixed, rebuild_ms, frames_left):
        seen.append(list(probes))
        if len(probes) == 1:
            return Plan(True, probes[0].threads, probes[0].frame, {}, explore=1)
        return Plan(True, 1, probes[1].frame, {})

    monkeypatch.setattr(loop_plan, "choose", fake_choose)
    model = fixed_detector(tmp_path / "m.onnx", slow=1)
    frames = 2 * PROBE_FRAMES + 8
    with synthetic() as src:
        given = ModelSession(model, SessionOptions(threads=2, spinning=False))
        loop = Loop(given, src, [], LoopOptions(max_frames=frames))
        result = loop.run()
    assert result.collector.frames == frames
    assert [[p.threads for p in probes] for probes in seen] == [[2], [2, 1]]
    assert loop.session is not given and loop.session.intra_threads == 1
    assert loop.session.options.spinning is False  # the new session keeps the given options
    assert loop.plan is not None and loop.plan.threads == 1 and loop.overlap
