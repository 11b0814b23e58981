"""scripts/bench_models.py end to end at tiny sizes: it builds the KerasHub families (tiny stand-ins
from tests/hub_presets.py) as local presets, exports them and edge's own model with `edge export`,
takes extra --model files, times every case and prints one table with every row."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import onnx
from onnx_models import fixed_detector

from edge.runtime.contract import YOLOV8

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "bench_models.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=900
    )


def test_bench_models_tiny_prints_every_row(tmp_path):
    ref = fixed_detector(tmp_path / "ref.onnx", output_format=YOLOV8, dynamic=True)
    fixed = fixed_detector(tmp_path / "fixed.onnx", imgsz=(64, 64))
    out = tmp_path / "r.json"
    r = _run(
        "--work", str(tmp_path / "work"), "--tiny", "--no-verify", "--sizes", "64",
        "--rounds", "1", "--runs", "2", "--warmup", "0", "--model", f"yolov8n={ref}",
        "--model", f"other={fixed}", "--json", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in r.stdout.splitlines()
        if line.startswith("| ") and not line.startswith(("| model", "| ---"))
    }
    assert set(rows) == {"dfine_nano", "retinanet_r50", "edge", "yolov8n", "other"}
    for name, (params, p50, ratio) in rows.items():
        assert re.fullmatch(r"\d+\.\d\dM", params), (name, params)
        assert float(p50) > 0 and re.fullmatch(r"\d+\.\d\dx", ratio), (name, p50, ratio)
    assert rows["yolov8n"][2] == "1.00x"
    assert "round 1/1" in r.stderr and "load average" in r.stderr  # progress, on stderr
    # the families really went through save_to_preset and `edge export` at the asked size
    work = tmp_path / "work" / "tiny"
    for family in ("dfine_nano", "retinanet_r50"):
        assert (work / "presets" / family / "config.json").is_file()
        dims = onnx.load(str(work / f"{family}_64.onnx")).graph.input[0].type.tensor_type.shape.dim
        assert [d.dim_value for d in dims] == [1, 64, 64, 3]
    data = json.loads(out.read_text())
    assert {m["name"] for m in data["models"]} == set(rows)
    assert all(m["best_p50_ms"]["64"] > 0 for m in data["models"])


def test_bench_models_refuses_a_bad_model_flag(tmp_path):
    r = _run("--work", str(tmp_path), "--families", "", "--model", "yolov8n")
    assert (
        r.returncode == 2
        and r.stderr.strip()
        == "bench_models: error: --model yolov8n: give NAME=FILE.onnx with an existing .onnx file"
    )
