"""Reproduce the bundled default model: synthesise data, train, export, evaluate on a new seed.

    python scripts/make_default_model.py [--work /tmp/edge-default] [--epochs 18]
    python scripts/make_default_model.py --export-only   # the ONNX files from models/default.keras

Every step is an `edge` command with a fixed seed, so anyone can rebuild models/default.onnx,
default_fp16.onnx and default_int8.onnx (and models/default.keras, the starting point for
fine-tuning) on a CPU in well under an hour. `--export-only` keeps models/default.keras and
re-exports the three ONNX files from it (`edge export ... --precision fp32,fp16,int8`, calibrated
and scored on the held-out synthetic set of seed 2026), in a few minutes.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def edge(*args: str) -> None:
    cmd = [sys.executable, "-m", "edge", *args]
    print("$ edge " + " ".join(args), flush=True)
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/edge-default"))
    p.add_argument("--images", type=int, default=2400, help="synthetic training+val images")
    p.add_argument("--epochs", type=int, default=18)
    p.add_argument("--model", default="mobilenet_v3_small")
    p.add_argument("--width", type=int, default=32, help="neck/head channels")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--out", type=Path, default=REPO / "models")
    p.add_argument(
        "--export-only",
        action="store_true",
        help="no training: re-export --out/default.keras to the three ONNX files",
    )
    args = p.parse_args(argv)
    data, run, test = args.work / "data", args.work / "run", args.work / "test"
    for d in (data, test):
        if d.exists():
            shutil.rmtree(d)
    test_set(test, args.imgsz)
    if args.export_only:
        export(args.out / "default.keras", args.out, test)
        return 0
    edge(
        "data",
        "synth",
        "--out",
        str(data),
        "--images",
        str(args.images),
        "--seed",
        "1",
        "--imgsz",
        str(args.imgsz),
        "--val-fraction",
        "0.1",
    )
    train = [
        "train",
        "--data",
        str(data),
        "--out",
        str(run),
        "--model",
        args.model,
        "--weights",
        "none",
        "--imgsz",
        str(args.imgsz),
        "--epochs",
        str(args.epochs),
        "--batch",
        "16",
        "--seed",
        "0",
        "--width",
        str(args.width),
    ]
    if (run / "last.keras").exists():
        train.append("--resume")
    edge(*train)
    args.out.mkdir(exist_ok=True)
    export(run / "best.keras", args.out, test)
    shutil.copyfile(run / "best.keras", args.out / ".default.keras.partial")
    (args.out / ".default.keras.partial").replace(args.out / "default.keras")
    edge(
        "eval",
        "--model",
        str(args.out / "default.onnx"),
        "--data",
        str(test),
        "--json",
        str(args.work / "eval_default.json"),
    )
    return 0


def test_set(folder: Path, imgsz: int) -> None:
    """A fresh synthetic set with another seed: the held-out check of the target mAP50 >= 0.90,
    and the images export calibrates int8 on and scores every precision with."""
    edge(
        "data",
        "synth",
        "--out",
        str(folder),
        "--images",
        "600",
        "--seed",
        "2026",
        "--imgsz",
        str(imgsz),
        "--val-fraction",
        "0.5",
    )


def export(model: Path, out: Path, test: Path) -> None:
    """default.onnx, default_fp16.onnx and default_int8.onnx in `out`, verified against Keras."""
    edge(
        "export",
        str(model),
        "-o",
        str(out / "default.onnx"),
        "--precision",
        "fp32,fp16,int8",
        "--calib-data",
        str(test),
    )


if __name__ == "__main__":
    sys.exit(main())
