"""Benchmark several streams in one run: total throughput and latency against the stream count.

For 1, 2, 4 and 8 synthetic streams, runs the same model batched (one inference call for a frame
of every stream) and one frame per call, and for one stream the single-source loop as reference.
Without --model it builds a small convolutional detector with a dynamic batch dimension (a
stand-in with real per-image compute; its boxes are constant).

    python scripts/bench_streams.py [--model m.onnx] [--frames 60] [--live 30] [--streams 1 2 4 8]

--live FPS paces every stream like a camera (latency then shows whether the run keeps up);
otherwise frames are taken as fast as they come (throughput).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.runtime.contract import ModelContract
from edge.runtime.loop import Loop, LoopOptions
from edge.runtime.session import ModelSession, SessionOptions
from edge.runtime.stats import Collector
from edge.sources import SourceOptions, open_source


def workload_model(path: Path, imgsz: int = 320) -> Path:
    """Three stride-2 convolutions (3->24->48->96) on a dynamic batch; fixed boxes out."""
    rng = np.random.default_rng(0)
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["b", 3, imgsz, imgsz])
    nodes, inits, last = [], [], "images"
    for i, (cin, cout) in enumerate([(3, 24), (24, 48), (48, 96)]):
        w = rng.normal(0, 0.1, (cout, cin, 3, 3)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(
            helper.make_node("Conv", [last, f"w{i}"], [f"c{i}"], strides=[2, 2], pads=[1] * 4)
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        last = f"r{i}"
    nodes += [
        helper.make_node("ReduceMean", [last], ["m"], axes=[1, 2, 3], keepdims=1),  # [b,1,1,1]
        helper.make_node("Squeeze", ["m", "ax"], ["m3"]),
        helper.make_node("Mul", ["m3", "zero"], ["z"]),
        helper.make_node("Add", ["cb", "z"], ["boxes"]),
        helper.make_node("Add", ["cs", "z"], ["scores"]),
    ]
    boxes = np.array([[[20, 20, 80, 80], [100, 90, 180, 200]]], np.float32)
    inits += [
        numpy_helper.from_array(np.array([3], np.int64), "ax"),
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        numpy_helper.from_array(boxes, "cb"),
        numpy_helper.from_array((np.eye(2, 4, dtype=np.float32) * 0.9)[None], "cs"),
    ]
    outs = [
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["b", 2, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["b", 2, 4]),
    ]
    graph = helper.make_graph(nodes, "workload", [inp], outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    contract = ModelContract(
        names=("ball", "crate", "cone", "star"), imgsz=(imgsz, imgsz), layout="NCHW", scale=1 / 255
    )
    for k, v in contract.to_metadata().items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.save(model, str(path))
    return path


def run_once(
    session: ModelSession, streams: int, mode: str, frames: int, live: float | None
) -> dict:
    opts = SourceOptions(width=640, height=480, fps=live or 30.0, realtime=live is not None)
    options = LoopOptions(max_frames=frames, batch=mode == "batched")
    with contextlib.ExitStack() as stack:
        sources = [
            stack.enter_context(open_source("synthetic", replace(opts, synthetic_seed=i)))
            for i in range(streams)
        ]
        if mode == "loop":
            result = Loop(session, sources[0], [], options).run()
            collector, calls = result.collector, result.collector.frames
        else:
            loop = Loop(session, sources, [], options)
            loop.warm_up()
            result = loop.run()
            collector, calls = result.collector, sum(result.batch_sizes.values())
    return row(streams, mode, collector, calls)


def row(streams: int, mode: str, c: Collector, calls: int) -> dict:
    lat = c.stats("latency_ms")
    return {
        "streams": streams,
        "mode": mode,
        "frames": c.frames,
        "wall_s": c.wall_s,
        "fps": c.throughput,
        "per_stream": c.throughput / streams,
        "calls": calls,
        "batch": c.frames / max(calls, 1),
        "inf_ms": c.stats("inference_ms").mean,  # the call each frame was in
        "net_ms": c.stats("network_ms").mean,  # its part outside a model server (0: local)
        "p50": lat.p50,
        "p95": lat.p95,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="ONNX model (default: a built-in conv workload)")
    p.add_argument("--frames", type=int, default=60, help="frames per stream")
    p.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--live", type=float, metavar="FPS", help="pace each stream at this FPS")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads")
    p.add_argument("--device", default="cpu", help="ONNX Runtime device (default cpu)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or workload_model(Path(tmp) / "workload.onnx")
        session = ModelSession(model, SessionOptions(device=args.device, threads=args.threads))
        session.warm_up(session.input_size(), 5)
        print(f"model {model.name}, input {session.input_shape}, {args.frames} frames per stream, "
              + (f"live at {args.live:g} FPS" if args.live else "as fast as frames come"))  # fmt: skip
        head = f"{'streams':>7} {'mode':<9} {'frames':>6} {'wall s':>7} {'total FPS':>9} "
        head += f"{'FPS/stream':>10} {'calls':>6} {'batch':>5} {'ms/call':>8} {'lat p50':>8} {'lat p95':>8}"
        print(head)
        for n in args.streams:
            modes = (["loop"] if n == 1 else []) + ["batched", "per-frame"]
            for mode in modes:
                r = run_once(session, n, mode, args.frames, args.live)
                rows.append(r)
                print(
                    f"{r['streams']:>7} {r['mode']:<9} {r['frames']:>6} {r['wall_s']:>7.2f} "
                    f"{r['fps']:>9.1f} {r['per_stream']:>10.1f} {r['calls']:>6} {r['batch']:>5.1f} "
                    f"{r['inf_ms']:>8.2f} {r['p50']:>8.1f} {r['p95']:>8.1f}"
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
