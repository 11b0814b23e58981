from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from onnx_models import fixed_detector

from edge.export.benchmark import BenchReport, format_table, summarise, time_calls, variants

REPO = Path(__file__).resolve().parents[1]


def test_time_calls_and_summary():
    calls = []
    ms = time_calls(lambda: calls.append(1), runs=5, warmup=2)
    assert len(calls) == 7 and ms.shape == (5,) and (ms >= 0).all()
    r = summarise("x", "onnxruntime", "cpu", "fp32", ms)
    assert r.runs == 5 and r.p50_ms <= r.p95_ms <= r.p99_ms
    with pytest.raises(ValueError, match="--runs"):
        time_calls(lambda: None, runs=0, warmup=0)


def test_variants_finds_precision_siblings(tmp_path):
    m = fixed_detector(tmp_path / "m.onnx")
    fixed_detector(tmp_path / "m_int8.onnx")
    assert [p.name for p in variants(m)] == ["m.onnx", "m_int8.onnx"]


def test_edge_bench_cli_writes_table_json_and_plot(tmp_path):
    m = fixed_detector(tmp_path / "m.onnx")
    out_json, out_png = tmp_path / "b.json", tmp_path / "b.png"
    r = subprocess.run(
        [sys.executable, "-m", "edge", "bench", "--model", str(m), "--runs", "5", "--warmup", "1",
         "--device", "cpu", "--json", str(out_json), "--plot", str(out_png)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "onnxruntime cpu fp32" in r.stdout and "cores" in r.stdout
    data = json.loads(out_json.read_text())
    assert data["results"][0]["runs"] == 5 and data["machine"]["cores"]
    assert out_png.read_bytes()[:4] == b"\x89PNG"
    bad = subprocess.run([sys.executable, "-m", "edge", "bench", "--model", str(tmp_path / "no.onnx")],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "no such file" in bad.stderr


def test_format_table_states_the_keras_ratio():
    ort = summarise(
        "onnxruntime cpu fp32", "onnxruntime", "cpu", "fp32", __import__("numpy").array([2.0])
    )
    keras = summarise(
        "keras predict", "keras-predict", "cpu", "fp32", __import__("numpy").array([40.0])
    )
    text = format_table(
        BenchReport("m", (64, 64), {"cpu": "c", "cores": "2", "gpus": "none"}, [ort, keras])
    )
    assert "20.0x faster than keras predict" in text


def test_bench_loop_script_runs_on_tiny_inputs(tmp_path):
    m = fixed_detector(tmp_path / "m.onnx", imgsz=(64, 64))
    out = tmp_path / "loop.json"
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_loop.py"), "--model", str(m), "--frames", "30",
         "--rounds", "2", "--hand-nospin", "--live-frames", "10", "--json", str(out),
         "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    rounds = data["models"]["m.onnx"]
    assert [row["round"] for row in rounds] == [1, 2]
    for row in rounds:
        for kind in ("nosave", "save"):
            hand, edge = row[f"hand_{kind}"], row[f"edge_{kind}"]
            assert hand["frames"] == edge["frames"] == 30
            assert row[f"ratio_{kind}"] == round(edge["fps"] / hand["fps"], 3)
            assert "ONNX Runtime thread" in edge["plan"]
            nospin = row[f"hand_nospin_{kind}"]
            assert row[f"ratio_nospin_{kind}"] == round(edge["fps"] / nospin["fps"], 3)
        assert (tmp_path / "work" / "hand.mp4").is_file() and (
            tmp_path / "work" / "edge.mp4"
        ).is_file()
    # The table has every round's ratio, per model and case, and the verdict against the target.
    lines = data["table"].splitlines()
    assert lines[0].startswith("| model | case | round 1 | round 2 | worst | target |")
    nosave = next(line for line in lines if "| no save |" in line)
    assert f"{rounds[0]['ratio_nosave']:.2f}x" in nosave and ">= 1.0x" in nosave
    assert data["table"] in r.stdout
    assert data["live"]["frames"] == 10


def test_bench_loop_refuses_a_missing_model_in_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_loop.py"), "--model", str(tmp_path / "no.onnx")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "no.onnx" in r.stderr


def test_edge_bench_keras_model_beside_onnxruntime(tmp_path):
    code = (
        "import edge.model as em\n"
        f"em.build_detector(('a', 'b'), imgsz=64, backbone='tiny').save({str(tmp_path / 'm.keras')!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
    r = subprocess.run(
        [sys.executable, "-m", "edge", "bench", "--model", str(tmp_path / "m.keras"), "--runs", "3",
         "--warmup", "1", "--device", "cpu", "--json", str(tmp_path / "b.json")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    kinds = [x["runtime"] for x in json.loads((tmp_path / "b.json").read_text())["results"]]
    assert kinds == ["onnxruntime", "keras-predict", "keras-call"]
    assert "faster than keras predict" in r.stdout
