from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx_models import fixed_detector
from test_sources import write_images, write_video

ENV = {**os.environ, "DISPLAY": "", "WAYLAND_DISPLAY": "", "PYTHONUNBUFFERED": "1"}


def edge(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        timeout=timeout,
    )


def test_run_writes_video_jsonl_and_telemetry(tmp_path, tiny_model):
    out = tmp_path / "out.mp4"
    r = edge(
        "run",
        "--model",
        str(tiny_model),
        "--max-frames",
        "12",
        "--width",
        "160",
        "--height",
        "120",
        "--save",
        str(out),
        "--jsonl",
        str(tmp_path / "d.jsonl"),
        "--telemetry",
        str(tmp_path / "t.csv"),
    )
    assert r.returncode == 0, r.stderr
    assert "CPUExecutionProvider" in r.stdout and "throughput" in r.stdout and "p95" in r.stdout
    assert "precision" in r.stdout  # synthetic source: live accuracy against its ground truth
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 12 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 160
    lines = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert len(lines) == 12 and lines[0]["frame"] == 0
    # the fixed model says (8,8)-(24,24) in its 64x64 input: x2.5 into the 160x120 frame, minus padding
    box = lines[0]["detections"][0]["box"]
    assert box == pytest.approx([20.0, 20.0 - 20.0, 60.0, 60.0 - 20.0], abs=0.6)
    assert lines[0]["detections"][0]["class"] == "a"
    tele = (tmp_path / "t.csv").read_text().splitlines()
    assert len(tele) == 13 and "inference_ms" in tele[0] and "age_ms" in tele[0]
    assert not list(tmp_path.glob(".*partial*"))  # no temporary files left behind


def test_run_on_video_file_and_folder(tmp_path, tiny_model):
    video = write_video(tmp_path / "v.avi", 9)
    r = edge(
        "run",
        "--model",
        str(tiny_model),
        "--source",
        str(video),
        "--jsonl",
        str(tmp_path / "v.jsonl"),
        "-q",
    )
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "v.jsonl").read_text().splitlines()) == 9
    write_images(tmp_path / "imgs", 3)
    r = edge("run", "--model", str(tiny_model), "--source", str(tmp_path / "imgs"), "-q")
    assert r.returncode == 0 and "frames: 3" in r.stdout


def test_run_ultralytics_style_model(tmp_path):
    m = fixed_detector(tmp_path / "yolo.onnx", names=("person", "car"), output_format="yolov8")
    r = edge(
        "run",
        "--model",
        str(m),
        "--max-frames",
        "3",
        "--classes",
        "car",
        "--jsonl",
        str(tmp_path / "d.jsonl"),
    )
    assert r.returncode == 0, r.stderr
    dets = json.loads((tmp_path / "d.jsonl").read_text().splitlines()[0])["detections"]
    assert [d["class"] for d in dets] == ["car"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "missing.onnx"], "no such file"),
        (["--model", "{bad}"], "not a loadable ONNX model"),
        (["--model", "{plain}"], "no detector metadata"),
        (["--model", "{wrong}"], "match no layout"),
        (["--model", "{tiny}", "--source", "missing.mp4"], "no such file"),
        (["--model", "{tiny}", "--source", "77", "--reconnect", "0"], "camera 77"),
        (["--model", "{tiny}", "--conf", "2"], "--conf"),
        (["--model", "{tiny}", "--max-frames", "0"], "--max-frames"),
        (["--model", "{tiny}", "--max-frames", "-3"], "--max-frames"),
        (["--model", "{tiny}", "--device", "gpu"], "--device"),
        (["--model", "{tiny}", "--classes", "zebra"], "unknown class 'zebra'"),
        (["--model", "{tiny}", "--classes", "\u00b2"], "unknown class"),  # isdigit, not int
        (["--model", "{tiny}", "--source", "99999999999999999999"], "camera index out of range"),
        (["--model", "{tiny}", "--telemetry", "t.txt"], ".jsonl or .csv"),
        (["--model", "{tiny}", "--save", "nodir/out.mp4"], "does not exist"),
        (["--model", "{tiny}", "--imgsz", "32"], "fixed input of 64x64"),
        (["--model", "{tiny}", "--source", "{empty}"], "folder has no images"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, tiny_model, args, needle):
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    fixed_detector(tmp_path / "plain.onnx", metadata={})
    # a model claiming 3 classes whose scores have 2: no decoder understands it
    fixed_detector(
        tmp_path / "wrong.onnx",
        metadata={"edge.contract": "1", "names": '["a","b","c"]', "imgsz": "[64,64]"},
    )
    (tmp_path / "empty").mkdir()
    subst = {
        "{bad}": "bad.onnx",
        "{plain}": "plain.onnx",
        "{wrong}": "wrong.onnx",
        "{tiny}": str(tiny_model),
        "{empty}": "empty",
    }
    r = edge(
        "run",
        *[subst.get(a, a) for a in args],
        "--max-frames" if "--max-frames" not in args else "--seed",
        "2",
        cwd=tmp_path,
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_sigint_finalises_video_and_telemetry(tmp_path):
    model = fixed_detector(tmp_path / "slow.onnx", slow=6)
    out, tele = tmp_path / "out.mp4", tmp_path / "t.jsonl"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge",
            "run",
            "--model",
            str(model),
            "--max-frames",
            "100000",
            "--width",
            "160",
            "--height",
            "120",
            "--save",
            str(out),
            "--telemetry",
            str(tele),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    deadline = time.monotonic() + 60  # start-up can take seconds on a loaded machine
    stem = f".{tele.stem}.*partial*"
    while not any(p.read_text().count("\n") >= 5 for p in tmp_path.glob(stem)):
        assert time.monotonic() < deadline and p.poll() is None, "edge run wrote no telemetry"
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    assert "stopped by signal" in stdout
    rows = [json.loads(x) for x in tele.read_text().splitlines()]
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == len(rows) > 5  # every processed frame is in the playable video and the telemetry


def test_no_tensorflow_or_keras_on_the_runtime_path(tmp_path, tiny_model):
    code = (
        "import sys\n"
        "from edge.cli import main\n"
        f"rc = main(['run', '--model', {str(tiny_model)!r}, '--max-frames', '2', '-q'])\n"
        "main(['info'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx', 'jax'))\n"
        "assert rc == 0 and not heavy, heavy\n"
        "print('clean')\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert r.returncode == 0 and "clean" in r.stdout, r.stderr


def test_help_lists_every_command():
    r = edge("--help")
    assert r.returncode == 0
    for cmd in ("run", "info", "telemetry"):
        assert cmd in r.stdout
    assert edge("run", "--help").returncode == 0


def test_telemetry_plot_cli(tmp_path, tiny_model):
    tele = tmp_path / "t.jsonl"
    assert (
        edge(
            "run", "--model", str(tiny_model), "--max-frames", "5", "--telemetry", str(tele), "-q"
        ).returncode
        == 0
    )
    r = edge("telemetry", "plot", str(tele), "-o", str(tmp_path / "lat.png"))
    assert r.returncode == 0 and (tmp_path / "lat.png").stat().st_size > 1000
    r = edge("telemetry", "plot", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and "no such file" in r.stderr


def test_latest_frame_under_slow_model_keeps_latency_flat(tmp_path):
    # A live-like source at 120 FPS and a model slower than the frame interval: frames are dropped,
    # and frame age at inference stays about one frame interval instead of growing.
    model = fixed_detector(tmp_path / "slow.onnx", slow=30)
    tele = tmp_path / "t.jsonl"
    r = edge(
        "run",
        "--model",
        str(model),
        "--realtime",
        "--fps",
        "120",
        "--width",
        "96",
        "--height",
        "72",
        "--max-frames",
        "40",
        "--threads",
        "1",
        "--telemetry",
        str(tele),
        "-q",
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in tele.read_text().splitlines()]
    inf = np.median([x["inference_ms"] for x in rows])
    age = np.array([x["age_ms"] for x in rows[5:]])
    assert rows[-1]["dropped"] > 0
    assert np.median(age) < 1000 / 120 + inf + 10
    assert np.median(age[-10:]) < np.median(age[:10]) + 10  # no growth over the run


@pytest.mark.parametrize(
    "argv",
    [
        ("-v", "run", "--max-frames", "2"),  # global flag before the sub-command
        ("-v", "--max-frames", "2"),  # global flag, then run's flags: the demo
        ("--max-frames", "2"),  # run's flags alone: the demo
    ],
)
def test_global_flags_may_come_before_the_command(tiny_model, argv):
    r = edge(*argv, "--model", str(tiny_model), "--no-show")
    assert r.returncode == 0, r.stderr
    assert "frames" in r.stdout and "stopped by max_frames" in r.stdout


# A display that is gone: OpenCV's Qt cannot connect and, asked for a window, aborts the process.
GONE = {**ENV, "DISPLAY": ":99"}


def test_a_display_that_is_gone_means_no_window_and_one_line(tmp_path, tiny_model):
    args = ["run", "--model", str(tiny_model), "--source", "synthetic", "--max-frames", "5"]
    r = subprocess.run(
        [sys.executable, "-m", "edge", *args, "--jsonl", "d.jsonl"],
        capture_output=True, text=True, env=GONE, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("no window ("), r.stderr
    assert "running headless" in lines[0]
    assert "q in the window" not in r.stdout  # the run was told it has no window
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 5


@pytest.mark.parametrize("display", [":99", ""])  # gone, and none at all
def test_show_without_a_usable_display_is_one_line_naming_show(tmp_path, tiny_model, display):
    args = ["run", "--model", str(tiny_model), "--source", "synthetic", "--max-frames", "5"]
    r = subprocess.run(
        [sys.executable, "-m", "edge", *args, "--show"],
        capture_output=True, text=True, env={**ENV, "DISPLAY": display}, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("edge run: error: --show: cannot open a window ("), lines[0]
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.onnx"]  # nothing written


def test_the_library_display_refuses_instead_of_aborting():
    code = "from edge.outputs.sinks import Display\ntry:\n    Display()\nexcept Exception as e:\n"
    code += "    print(type(e).__name__, e)"
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=GONE, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("EdgeError --show: cannot open a window"), r.stdout
