"""scripts/gpu_check.py on the CPU at tiny sizes: every section produces real numbers."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.py"

pytestmark = pytest.mark.slow


def run_check(out: Path, *skip: str) -> dict:
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), "--device", "cpu", "--quick"]
    cmd += ["--models", str(out / "no-models"), *(["--skip", *skip] if skip else [])]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert (out / "report.md").read_text().startswith("# gpu_check: --device cpu --quick")
    return report


def positive(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_inference_sections(tmp_path):
    r = run_check(tmp_path, "training")
    assert r["providers"]["CPUExecutionProvider"] == "compiled in, starts"
    assert "CUDAExecutionProvider" in r["providers"]  # listed whatever the build
    lat = r["latency"]
    for key in ("bundled fp32 | cpu | bind off", "bundled fp32 | cpu | bind on"):
        assert lat[key]["ran_on"] == "cpu" and positive(lat[key]["p50_ms"])
        assert lat[key]["p95_ms"] >= lat[key]["p50_ms"]
        assert lat[key]["input"].startswith("uint8 [1, 320, 320, 3]")  # the bundled model's
    v = r["video_run"]
    assert v["frames"] == 60 and all(
        positive(v[k]) for k in ("fps", "latency_p50_ms", "decode_only_fps", "fraction_of_bound")
    )
    assert v["latency_p95_ms"] >= v["latency_p50_ms"]
    rows = r["streams"]["rows"]
    assert {(x["streams"], x["mode"]) for x in rows} >= {(4, "batched"), (4, "per-frame")}
    assert all(positive(x["fps"]) for x in rows)
    assert next(x for x in rows if x["streams"] == 4 and x["mode"] == "batched")["batch"] > 1
    assert positive(r["streams"]["batched_over_per_frame"]["4"])
    assert set(r["seconds"]) == {"providers", "latency", "video_run", "streams"}


def test_training_section(tmp_path):
    r = run_check(tmp_path, "providers", "latency", "video_run", "streams")
    t = r["training"]
    assert "error" not in t, t
    assert t["backend"] == "jax" and t["train_images"] > 0
    for key in ("images_per_s", "steps_per_s", "feed_steps_per_s", "feed_images_per_s"):
        assert positive(t[key]), key
    assert t["feed_keeps_up"] == (t["feed_steps_per_s"] >= t["steps_per_s"])
