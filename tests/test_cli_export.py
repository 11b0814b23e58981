"""`edge export` as a user runs it: export then `edge run` the file; bad input is one line, exit 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_export import tiny_detector_file

ENV = {**os.environ, "DISPLAY": "", "WAYLAND_DISPLAY": "", "PYTHONUNBUFFERED": "1"}
# TensorFlow's C++ logging writes these before Python can silence it.
_TF_NOISE = re.compile(
    r"^(WARNING: All log messages before absl|[IWE]\d{4} |To enable the following)"
)


def edge(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not _TF_NOISE.match(line)]


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("export converts through the TensorFlow backend")
    return tiny_detector_file(tmp_path_factory)


def test_export_then_run(tiny_keras: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.onnx"
    r = edge("export", str(tiny_keras), "-o", str(out), "--calib-images", "4", "--runs", "3")
    assert r.returncode == 0, r.stderr
    assert out.is_file() and f"wrote {out}" in r.stdout
    table = r.stdout.splitlines()
    header = next(line for line in table if line.startswith("precision"))
    assert "CPU ms" in header and "Δbox px max/mean" in header
    row = next(line for line in table if line.startswith("fp32")).split()
    assert row[1] == "tiny.onnx" and row[3] == "kB" and float(row[4]) > 0  # size, latency
    assert "verified against Keras on 4 synthetic frames" in r.stdout
    r = edge("run", "--model", str(out), "--max-frames", "3", "--no-show", "-q")
    assert r.returncode == 0, r.stderr
    assert "throughput" in r.stdout


def _plain_keras(path: Path) -> Path:
    import keras

    inputs = keras.Input((32, 32, 3))
    keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs)).save(path)
    return path


@pytest.mark.parametrize(
    ("case", "extra", "message"),
    [
        ("missing model", [], "model not found"),
        ("text file as .keras", [], "not a Keras model"),
        ("plain keras model", [], "not an edge detector"),
        ("onnx as input", [], "already ONNX; give a .keras model to convert, or --triton REPO"),
        ("empty calib folder", ["--calib-data", "{tmp}/calib"], "no images"),
        ("missing calib", ["--calib-data", "{tmp}/nowhere"], "no such file"),
        ("opset too old", ["--opset", "12"], "--opset must be in [13, 18]"),
        ("opset too new", ["--opset", "99"], "--opset must be in [13, 18]"),
        ("unknown precision", ["--precision", "fp8"], "--precision"),
        ("no calib images", ["--calib-images", "0"], "--calib-images"),
        ("output not onnx", ["-o", "{tmp}/out.pb"], "must end in .onnx"),
        ("size not /32", ["--imgsz", "50"], "multiple of 32"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    case: str, extra: list[str], message: str, tiny_keras: Path, tmp_path: Path
) -> None:
    model = tiny_keras
    if case == "missing model":
        model = tmp_path / "missing.keras"
    elif case == "text file as .keras":
        model = tmp_path / "notes.keras"
        model.write_text("just text\n")
    elif case == "plain keras model":
        model = _plain_keras(tmp_path / "plain.keras")
    elif case == "onnx as input":
        model = tmp_path / "model.onnx"
        model.write_bytes(b"\x08\x07")
    (tmp_path / "calib").mkdir()
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "out.onnx")]
    if "--calib-images" not in args:
        args += ["--calib-images", "2"]
    before = sorted(tmp_path.rglob("*"))
    r = edge("export", str(model), *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    errors = _errors(r.stderr)
    assert len(errors) == 1 and errors[0].startswith("edge export: error:"), r.stderr
    assert message in errors[0]
    assert sorted(tmp_path.rglob("*")) == before  # no output, no temporary files


def test_fast_failures_and_help_do_not_load_tensorflow(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from edge.cli import main\n"
        "import edge.export, edge.cli.export\n"
        f"rc = main(['export', {str(tmp_path / 'missing.keras')!r}])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'tf2onnx', 'jax'))\n"
        "assert rc == 2 and not heavy, (rc, heavy)\n"
        "print('clean')\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert r.returncode == 0 and "clean" in r.stdout, r.stderr
    r = edge("export", "--help")
    assert r.returncode == 0 and "--precision" in r.stdout and "--trt-cache" in r.stdout


def test_sigterm_during_export_exits_130_and_writes_nothing(
    tiny_keras: Path, tmp_path: Path
) -> None:
    # SIGTERM ended export with 143 (no handler); now every command unwinds as for Ctrl-C.
    import signal
    import time

    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.Popen(
        [sys.executable, "-m", "edge", "export", str(tiny_keras), "-o", str(out / "t.onnx"),
         "--precision", "fp32,fp16,int8", "--calib-images", "4", "--runs", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(out.iterdir()):  # the hidden staging folder: the variants are being built
        assert p.poll() is None and time.monotonic() < deadline, "export never started writing"
        time.sleep(0.01)
    p.send_signal(signal.SIGTERM)
    _, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stderr
    assert _errors(stderr)[-1] == "edge export: interrupted"
    assert list(out.iterdir()) == []  # no variant, no staging folder


def test_a_folder_in_the_way_of_any_variant_is_one_line_and_nothing_is_written(
    tiny_keras: Path, tmp_path: Path
) -> None:
    # fp32 was committed, then a traceback on the fp16 variant whose name was a folder.
    (tmp_path / "v_fp16.onnx").mkdir()
    (tmp_path / "v.onnx").write_bytes(b"old")
    r = edge("export", str(tiny_keras), "-o", str(tmp_path / "v.onnx"), "--precision",
             "fp32,fp16", "--runs", "1")  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert _errors(r.stderr) == [
        f"edge export: error: --output {tmp_path / 'v_fp16.onnx'}: is a folder; give a file "
        "name inside it"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.onnx", "v_fp16.onnx"]
    assert (tmp_path / "v.onnx").read_bytes() == b"old"
    assert list((tmp_path / "v_fp16.onnx").iterdir()) == []


def test_export_model_checks_every_variant_before_converting(tiny_keras: Path, tmp_path: Path):
    from edge.export import ExportOptions, export_model
    from edge.outputs.files import OutputError

    (tmp_path / "v_int8.onnx").mkdir()
    options = ExportOptions(precisions=("fp32", "int8"), calib_images=2, latency_runs=1)
    with pytest.raises(OutputError, match="v_int8.onnx: is a folder"):
        export_model(tiny_keras, tmp_path / "v.onnx", options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v_int8.onnx"]
