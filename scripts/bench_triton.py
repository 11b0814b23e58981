"""Local ONNX Runtime against the same model on a Triton Inference Server on this machine.

For 1, 4 and 8 synthetic streams: the model run here (one call for a frame of every stream), and
on a real tritonserver on 127.0.0.1 (scripts/triton_server.py) as one batched request per round
("triton batch") and as one request per stream in flight together, batched by the server's
dynamic batcher ("triton requests"). Prints total FPS and latency p50/p95 (capture to
detections), the inference call, its part outside the server (network: gRPC, copies), and the
server's own statistics for the row: images per execution (the batches it formed), time per
request in the server and in its queue.

    python scripts/bench_triton.py [--repo REPO --name default] [--streams 1 4 8] [--frames 60]

Without --repo it exports models/default.keras with `edge export --triton` into a temporary
repository first (needs TensorFlow, about a minute). --live FPS paces every stream like a camera.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_streams import run_once  # scripts/ is on sys.path when run as a script
from triton_server import TritonServer

from edge.runtime.remote import RemoteSession
from edge.runtime.session import ModelSession, SessionOptions

ROOT = Path(__file__).resolve().parents[1]


def export_default(folder: Path) -> Path:
    repo = folder / "repo"
    cmd = [sys.executable, "-m", "edge", "export", str(ROOT / "models" / "default.keras"), "-o",
           str(folder / "default.onnx"), "--triton", str(repo), "--no-verify", "--runs", "1"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    return repo


def bench(repo: Path, name: str, streams: list[int], frames: int, live: float | None) -> list[dict]:
    rows = []
    local = ModelSession(repo / name / "1" / "model.onnx", SessionOptions(device="cpu"))
    local.warm_up(local.input_size(), 5)
    with TritonServer(repo) as server, RemoteSession(f"triton://{server.url}/{name}") as remote:
        remote.warm_up(remote.input_size(), 5)
        for n in streams:
            cases = [("local", local, "loop" if n == 1 else "batched")]
            cases += [("triton batch", remote, "loop" if n == 1 else "batched")]
            cases += [("triton requests", remote, "per-frame")] if n > 1 else []
            for label, session, mode in cases:
                before = remote.server_stats()
                row = run_once(session, n, mode, frames, live)
                row["mode"] = label
                if session is remote:
                    s = remote.server_stats().since(before)
                    row["server"] = s.describe()
                    row["server_batch"] = s.inferences / max(s.executions, 1)
                    row["server_ms"] = s.request_ns / max(s.requests, 1) / 1e6
                    row["queue_ms"] = s.queue_ns / max(s.requests, 1) / 1e6
                rows.append(row)
                print(line(row), flush=True)
    return rows


def line(r: dict) -> str:
    server = (
        f"{r['server_batch']:>6.2f} {r['server_ms']:>9.2f} {r['queue_ms']:>8.2f}"
        if "server" in r
        else f"{'':>6} {'':>9} {'':>8}"
    )
    return (
        f"{r['streams']:>7} {r['mode']:<16} {r['fps']:>9.1f} {r['p50']:>8.1f} {r['p95']:>8.1f} "
        f"{r['inf_ms']:>8.2f} {r['net_ms']:>8.2f} {server}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", type=Path, help="model repository (edge export MODEL --triton REPO)")
    p.add_argument("--name", default="default", help="model in the repository (default: default)")
    p.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--frames", type=int, default=60, help="frames per stream")
    p.add_argument("--live", type=float, metavar="FPS", help="pace each stream at this FPS")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = args.repo or export_default(Path(tmp))
        print(f"model {args.name} from {repo}, {args.frames} frames per stream, "
              + (f"live at {args.live:g} FPS" if args.live else "as fast as frames come"))  # fmt: skip
        print(f"{'streams':>7} {'mode':<16} {'total FPS':>9} {'lat p50':>8} {'lat p95':>8} "
              f"{'call ms':>8} {'net ms':>8} {'batch':>6} {'server ms':>9} {'queue ms':>8}")  # fmt: skip
        rows = bench(repo, args.name, args.streams, args.frames, args.live)
    print("batch: images per server execution (mean batch); server ms: a request's time in the "
          "server (queue + compute), mean; all on 127.0.0.1, so net ms is gRPC and copies only")  # fmt: skip
    for r in rows:
        if "server" in r:
            print(
                f"  {r['streams']} streams, {r['mode']}: mean batch {r['server_batch']:.2f} ({r['server']})"
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
