"""Every GPU measurement in one command: report.json and report.md in --out.

    python scripts/gpu_check.py --out gpu_report                  # on a GPU machine (CUDA)
    python scripts/gpu_check.py --out /tmp/r --device cpu --quick # the same on the CPU, tiny sizes
    python scripts/gpu_check.py --prepare .gpu_models             # here, with TensorFlow: the
                                                                  # 640 model family exports

Sections: providers that start; latency of the bundled model and of a heavier model of our own
family at 640 (fp32/fp16, CPU and the device, with and without device binding and CUDA graphs);
`edge run` on a 1280x720 file (FPS, latency p50/p95, decode-only FPS of that file); 1..16 streams
batched and one frame per call (scripts/bench_streams.py); one epoch of training on synthetic data
with KERAS_BACKEND=jax (images/s, step rate against feed rate). A failing section records its error
and the others still run. Needs no TensorFlow at run time: models come as ONNX (--models).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "models" / "default.onnx"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="folder for report.json and report.md")
    p.add_argument("--device", choices=("cuda", "tensorrt", "cpu"), default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny sizes (CI, a first look)")
    p.add_argument("--models", type=Path, default=REPO / ".gpu_models", help="--prepare's folder")
    p.add_argument("--prepare", type=Path, metavar="DIR", help="export the 640 models here, exit")
    p.add_argument("--skip", nargs="*", default=[], choices=SECTIONS, help="sections to leave out")
    args = p.parse_args(argv)
    if args.prepare:
        prepare_models(args.prepare, quick=args.quick)
        return 0
    if args.out is None:
        p.error("--out is required (unless --prepare)")
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": machine(), "device": args.device, "quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for name, fn in SECTIONS.items():
            if name in args.skip:
                continue
            started = time.perf_counter()
            print(f"== {name}", flush=True)
            try:
                report[name] = fn(args, Path(tmp))
            except Exception as exc:  # one broken section must not lose the others' numbers
                report[name] = {"error": f"{type(exc).__name__}: {exc}"}
                traceback.print_exc()
            report.setdefault("seconds", {})[name] = round(time.perf_counter() - started, 1)
            write(report, args.out)  # after every section: a cut run keeps what it measured
    print(f"wrote {args.out / 'report.json'} and {args.out / 'report.md'}")
    return 0


def machine() -> dict[str, str]:
    import onnxruntime as ort

    from edge.runtime.machine import gpus

    return {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": str(os.cpu_count()),
        "onnxruntime": ort.__version__,
        "gpus": "; ".join(gpus()) or "none",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


# ---- providers ----------------------------------------------------------------------------
def providers(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from edge.runtime.providers import PACKAGE, probe

    return {name: probe(name).describe() for name in PACKAGE}


# ---- latency --------------------------------------------------------------------------------
def model_files(args: argparse.Namespace) -> dict[str, Path]:
    """The bundled model and its fp16, and --prepare's 640 models when present."""
    files = {"bundled fp32": BUNDLED}
    if (BUNDLED.parent / "default_fp16.onnx").is_file():
        files["bundled fp16"] = BUNDLED.parent / "default_fp16.onnx"
    for path in sorted(args.models.glob("heavy640*.onnx")) if args.models.is_dir() else []:
        files[path.stem.replace("heavy640", "heavy 640").replace("_", " ")] = path
    return files


def time_session(path: Path, device: str, bind: str, cuda_graph: bool, runs: int) -> dict:
    from edge.runtime.session import ModelSession, SessionOptions

    s = ModelSession(
        path, SessionOptions(device=device, bind=bind, cuda_graph=cuda_graph, warmup=0)
    )
    h, w = s.input_size()
    shape = (1, 3, h, w) if s.contract.layout == "NCHW" else (1, h, w, 3)
    x = np.random.default_rng(0).integers(0, 256, shape).astype(s.input_dtype)
    for _ in range(max(3, runs // 10)):
        s.run(x)
    ms = []
    for _ in range(runs):
        t = time.perf_counter_ns()
        s.run(x)
        ms.append((time.perf_counter_ns() - t) / 1e6)
    return {
        "ran_on": s.device,
        "input": f"{s.input_dtype.__name__} {list(shape)}",
        "input_memory": s.binding.input_memory if s.binding is not None else "numpy (no binding)",
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "runs": runs,
    }


def latency(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    runs = 10 if args.quick else 200
    cases = [("cpu", "off", False)]
    if args.device != "cpu":
        cases += [(args.device, "off", False), (args.device, "on", False)]
        if args.device == "cuda":
            cases.append(("cuda", "on", True))
    else:
        cases.append(("cpu", "on", False))  # the binding path, on the CPU
    out: dict[str, Any] = {}
    for label, path in model_files(args).items():
        for device, bind, graph in cases:
            key = f"{label} | {device} | bind {bind}" + (" | cuda graph" if graph else "")
            try:
                out[key] = time_session(path, device, bind, graph, runs)
            except Exception as exc:  # fp16 without CPU kernels, a graph that cannot be captured
                out[key] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return out


# ---- edge run on a 1280x720 file -------------------------------------------------------------
def make_video(path: Path, frames: int, size: tuple[int, int] = (1280, 720)) -> Path:
    import cv2

    from edge.sources.synthetic import SyntheticScene

    scene = SyntheticScene(*size, seed=7)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    for i in range(frames):
        writer.write(scene.frame(i).image)
    writer.release()
    return path


def decode_fps(path: Path) -> float:
    import cv2

    cap = cv2.VideoCapture(str(path))
    n, t = 0, time.perf_counter()
    while cap.read()[0]:
        n += 1
    cap.release()
    return n / (time.perf_counter() - t)


def video_run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    frames = 60 if args.quick else 600
    video = make_video(tmp / "720p.mp4", frames)
    telemetry = tmp / "run.jsonl"
    cmd = [sys.executable, "-m", "edge", "run", "--source", str(video), "--model", str(BUNDLED)]
    cmd += ["--device", args.device, "--telemetry", str(telemetry), "--no-show", "-q"]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"edge run exited {done.returncode}: {done.stderr.strip()[-500:]}")
    rows = [json.loads(line) for line in telemetry.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "latency_ms" in r]
    lat = np.array([r["latency_ms"] for r in rows])
    inf = np.array([r["inference_ms"] for r in rows])
    span_s = (rows[-1]["t_ms"] - rows[0]["t_ms"]) / 1000 if len(rows) > 1 else wall
    fps = (len(rows) - 1) / span_s if span_s > 0 else 0.0
    dec = decode_fps(video)
    bound = min(dec, 1000 / float(np.median(inf)))
    return {
        "frames": len(rows),
        "fps": round(fps, 1),
        "latency_p50_ms": round(float(np.percentile(lat, 50)), 2),
        "latency_p95_ms": round(float(np.percentile(lat, 95)), 2),
        "inference_p50_ms": round(float(np.median(inf)), 3),
        "decode_only_fps": round(dec, 1),
        "fraction_of_bound": round(fps / bound, 3),  # target >= 0.9 of min(decode, 1/inference)
        "process_wall_s": round(wall, 2),
    }


# ---- streams --------------------------------------------------------------------------------
def streams(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    out = tmp / "streams.json"
    counts = ["1", "2", "4"] if args.quick else ["1", "2", "4", "8", "16"]
    cmd = [sys.executable, str(REPO / "scripts" / "bench_streams.py"), "--json", str(out)]
    cmd += ["--frames", "8" if args.quick else "120", "--device", args.device, "--streams", *counts]
    dynamic = args.models / "default_dynamic.onnx"
    if dynamic.is_file():  # the bundled model with a dynamic batch (--prepare)
        cmd += ["--model", str(dynamic)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"bench_streams exited {done.returncode}: {done.stderr.strip()[-500:]}")
    rows = json.loads(out.read_text())
    by = {(r["streams"], r["mode"]): r for r in rows}
    speedup = {
        str(n): round(by[(n, "batched")]["fps"] / by[(n, "per-frame")]["fps"], 3)
        for n in sorted({r["streams"] for r in rows})
        if (n, "batched") in by and (n, "per-frame") in by and by[(n, "per-frame")]["fps"] > 0
    }
    return {"model": dynamic.name if dynamic.is_file() else "conv workload", "rows": rows,
            "batched_over_per_frame": speedup}  # fmt: skip


# ---- training -------------------------------------------------------------------------------
def training(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    images, imgsz, batch = (48, 64, 8) if args.quick else (4096, 320, 64)
    data = tmp / "synth"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    edge = [sys.executable, "-m", "edge"]
    subprocess.run(
        [*edge, "data", "synth", "--out", str(data), "--images", str(images), "--imgsz", str(imgsz),
         "--seed", "3", "--val-fraction", "0.05"],
        check=True, capture_output=True, env=env, timeout=1800,
    )  # fmt: skip
    feed = subprocess.run(
        [sys.executable, str(Path(__file__)), "--feed-probe", str(data), str(imgsz), str(batch)],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    if feed.returncode != 0:
        raise RuntimeError(f"feed probe failed: {feed.stderr.strip()[-500:]}")
    feed_rate = json.loads(feed.stdout.strip().splitlines()[-1])
    run = tmp / "train"
    model = "tiny" if args.quick else "mobilenet_v3_small"
    cmd = [*edge, "train", "--data", str(data), "--out", str(run), "--model", model, "--weights",
           "none", "--imgsz", str(imgsz), "--epochs", "1", "--batch", str(batch)]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"edge train exited {done.returncode}: {done.stderr.strip()[-500:]}")
    import csv

    row = list(csv.DictReader((run / "results.csv").read_text().splitlines()))[-1]
    epoch_s = float(row["seconds"])
    train_images = len(list((data / "images" / "train").glob("*"))) or images
    steps = -(-train_images // batch)
    return {
        "backend": "jax",
        "model": model,
        "imgsz": imgsz,
        "batch": batch,
        "train_images": train_images,
        "epoch_seconds": round(epoch_s, 2),  # includes the first step's compile and validation
        "images_per_s": round(train_images / epoch_s, 1),
        "steps_per_s": round(steps / epoch_s, 3),
        "feed_steps_per_s": round(feed_rate["steps_per_s"], 3),
        "feed_images_per_s": round(feed_rate["images_per_s"], 1),
        "feed_keeps_up": feed_rate["steps_per_s"] >= steps / epoch_s,
        "process_wall_s": round(wall, 1),
    }


def feed_probe(data: str, imgsz: int, batch: int) -> None:
    """Images/s through Keras fit with a no-op model: the input feed's ceiling (one JSON line)."""
    from edge.data import load_dataset
    from edge.data.batches import TrainBatches
    from edge.training.pydataset import benchmark_feed

    ds = load_dataset(Path(data))
    batches = TrainBatches(ds.train, imgsz, batch)
    print(json.dumps(benchmark_feed(batches, steps=max(4, len(batches)))))


SECTIONS = {
    "providers": providers,
    "latency": latency,
    "video_run": video_run,
    "streams": streams,
    "training": training,
}


# ---- models made in advance (needs TensorFlow: run here, carry the folder) --------------------
def prepare_models(folder: Path, quick: bool = False) -> None:
    """A heavier model of our family at 640 (fp32, fp16) and the bundled model with a dynamic
    batch, as ONNX, so the GPU machine needs no TensorFlow. Untrained weights: speed only."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from edge.cli.quiet import quiet_libraries

    quiet_libraries(verbose=False)  # as `edge export` does: no TensorFlow start-up lines
    logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)  # its optimiser tracebacks
    import keras

    import edge.model as em
    from edge.export import ExportOptions, export_model

    folder.mkdir(parents=True, exist_ok=True)
    size, backbone = (64, "tiny") if quick else (640, "mobilenet_v3_large")
    detector = em.build_detector(("a", "b", "c", "d"), size, backbone, None)
    src = folder / "heavy640.keras"
    detector.save(str(src))
    fast = {"calib_images": 2, "latency_runs": 2}
    export_model(src, folder / "heavy640.onnx", ExportOptions(precisions=("fp32", "fp16"), **fast))
    src.unlink()
    export_model(REPO / "models" / "default.keras", folder / "default_dynamic.onnx",
                 ExportOptions(batch="dynamic", **fast))  # fmt: skip
    del keras
    print("\n".join(str(p) for p in sorted(folder.glob("*.onnx"))))


# ---- report -----------------------------------------------------------------------------------
def write(report: dict[str, Any], out: Path) -> None:
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [f"# gpu_check: --device {report['device']}{' --quick' if report['quick'] else ''}",
             "", f"{m['date']}; {m['gpus']}; {m['platform']}, {m['cpus']} CPUs; "
             f"Python {m['python']}, onnxruntime {m['onnxruntime']}", ""]  # fmt: skip
    for section in SECTIONS:
        if section not in report:
            continue
        lines += [f"## {section}", ""]
        value = report[section]
        if "error" in value:
            lines += [f"failed: {value['error']}", ""]
            continue
        if section in ("latency",):
            lines += ["| model, device, binding | ran on | input | input memory | p50 ms | p95 ms |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
            for key, r in value.items():
                name = key.replace(" | ", ", ")
                if "error" in r:
                    lines.append(f"| {name} | failed: {r['error'][:120]} | | | | |")
                else:
                    lines.append(f"| {name} | {r['ran_on']} | {r['input']} | {r['input_memory']} | {r['p50_ms']} | {r['p95_ms']} |")  # fmt: skip
        elif section == "streams":
            lines += [f"model: {value['model']}", "", "| streams | mode | total FPS | batch | ms/call | lat p50 | lat p95 |", "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
            for r in value["rows"]:
                lines.append(f"| {r['streams']} | {r['mode']} | {r['fps']:.1f} | {r['batch']:.1f} | {r['inf_ms']:.2f} | {r['p50']:.1f} | {r['p95']:.1f} |")  # fmt: skip
            lines += ["", f"batched / per-frame throughput: {value['batched_over_per_frame']}"]
        else:
            lines += [f"- {k}: {v}" for k, v in value.items()]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--feed-probe":
        feed_probe(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        sys.exit(0)
    sys.exit(main())
