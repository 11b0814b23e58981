"""`--device triton://HOST:PORT/MODEL` against a REAL Triton Inference Server on 127.0.0.1.

The server is the `tritonserver` binary of the nvidia-pytriton wheel (scripts/triton_server.py
fetches it once into the test cache), serving a repository written by `edge export --triton`
unchanged; ONNX Runtime runs inside it as a Python-based backend (scripts/triton_backend), since
Triton's C++ onnxruntime backend only ships in NVIDIA's containers. Everything between client and
server is Triton's own: gRPC protocol, dynamic batcher, statistics, shared memory, restarts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from batch_models import batch_detector

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "triton_server", REPO / "scripts" / "triton_server.py"
)
triton_server = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
sys.modules["triton_server"] = triton_server
_spec.loader.exec_module(triton_server)  # type: ignore[union-attr]


def edge(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`default`: the bundled model exported from models/default.keras with --triton (a dynamic
    batch); `tiny`: a small dynamic-batch detector whose batcher waits long enough (0.2 s) that
    requests sent together always share an execution."""
    work = tmp_path_factory.mktemp("triton")
    repo = work / "repo"
    bundled = (REPO / "models" / "default.onnx").read_bytes()
    r = edge("export", str(REPO / "models" / "default.keras"), "--triton", str(repo),
             "--no-verify", "--runs", "1", "--triton-kind", "cpu", timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    # Without -o the ONNX file goes into the repository only: nothing beside the .keras file
    # (that would be models/default.onnx, the bundled model) and no temporary folder left.
    assert (REPO / "models" / "default.onnx").read_bytes() == bundled
    assert sorted(p.name for p in work.iterdir()) == ["repo"]
    assert f"wrote {repo / 'default' / '1' / 'model.onnx'}" in r.stdout
    tiny = batch_detector(work / "tiny.onnx", imgsz=(64, 64))
    r = edge("export", str(tiny), "--triton", str(repo), "--triton-delay-us", "200000")
    assert r.returncode == 0, r.stderr
    return repo


@pytest.fixture(scope="module")
def server(repo: Path):
    with triton_server.TritonServer(repo) as s:
        yield s


def url(server, model: str = "default") -> str:
    return f"triton://{server.url}/{model}"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def same_detections(a: list[dict], b: list[dict]) -> None:
    key = lambda r: (r["source"], r["frame"])  # noqa: E731
    a, b = sorted(a, key=key), sorted(b, key=key)
    assert [key(r) for r in a] == [key(r) for r in b]
    for x, y in zip(a, b, strict=True):
        assert [d["class"] for d in x["detections"]] == [d["class"] for d in y["detections"]], key(
            x
        )
        for dx, dy in zip(x["detections"], y["detections"], strict=True):
            np.testing.assert_allclose(dx["box"], dy["box"], atol=1e-2)
            assert abs(dx["score"] - dy["score"]) < 1e-4


def test_the_server_loads_the_exported_repository(server, repo: Path) -> None:
    import tritonclient.grpc as grpcclient

    c = grpcclient.InferenceServerClient(server.url)
    index = {m["name"]: m["state"] for m in c.get_model_repository_index(as_json=True)["models"]}
    assert index == {"default": "READY", "tiny": "READY"}
    cfg = c.get_model_config("default", as_json=True)["config"]
    assert cfg["backend"] == "onnxruntime" and cfg["max_batch_size"] == 8
    assert cfg["dynamic_batching"]["preferred_batch_size"] == [4, 8]
    assert cfg["instance_group"][0]["kind"] == "KIND_CPU"
    meta = c.get_model_metadata("default", as_json=True)
    assert [i["shape"] for i in meta["inputs"]] == [["-1", "320", "320", "3"]]


@pytest.mark.parametrize("mode", [[], ["--no-batch"]], ids=["one-batch", "concurrent"])
def test_two_streams_give_the_local_detections(server, repo: Path, tmp_path: Path, mode) -> None:
    common = ["run", "--source", "synthetic", "--source", "synthetic", "--max-frames", "12",
              "--no-show", *mode]  # fmt: skip
    local = edge(*common, "--model", str(repo / "default" / "1" / "model.onnx"),
                 "--jsonl", str(tmp_path / "l.jsonl"))  # fmt: skip
    assert local.returncode == 0, local.stderr
    tele = tmp_path / "t.jsonl"
    trace = tmp_path / "trace.json"
    remote = edge(*common, "--device", url(server), "--jsonl", str(tmp_path / "r.jsonl"),
                  "--telemetry", str(tele), "--trace", str(trace))  # fmt: skip
    assert remote.returncode == 0, remote.stderr
    same_detections(read_jsonl(tmp_path / "r.jsonl"), read_jsonl(tmp_path / "l.jsonl"))
    out = remote.stdout
    assert "on triton://" in out and "server: " in out and "images in" in out
    calls = "12 x batch 2" if not mode else "24 x batch 1"
    assert f"inference calls: {calls}" in out
    rows = read_jsonl(tele)
    assert all(0 <= r["network_ms"] <= r["inference_ms"] + 1e-3 for r in rows)
    # the network part has its own track in the trace, inside each call it measured
    spans = [e for e in json.loads(trace.read_text()) if e.get("ph") == "X"]
    calls = {(e["pid"], e["args"]["frame"]): e for e in spans if e["name"] == "inference"}
    network = [e for e in spans if e["name"] == "network"]
    assert len(network) == sum(r["network_ms"] > 0 for r in rows)
    for e in network:
        call = calls[(e["pid"], e["args"]["frame"])]
        assert call["ts"] <= e["ts"] and e["ts"] + e["dur"] <= call["ts"] + call["dur"] + 0.01


def test_a_killed_and_restarted_server_is_an_outage(repo: Path, tmp_path: Path) -> None:
    local = edge("run", "--source", "synthetic", "--source", "synthetic", "--max-frames", "40",
                 "--no-show", "-q", "--model", str(repo / "default" / "1" / "model.onnx"),
                 "--jsonl", str(tmp_path / "l.jsonl"))  # fmt: skip
    assert local.returncode == 0, local.stderr
    with triton_server.TritonServer(repo) as s:
        tele = tmp_path / "t.jsonl"
        cmd = [sys.executable, "-m", "edge", "run", "--source", "synthetic", "--source",
               "synthetic", "--max-frames", "40", "--no-show", "--device", url(s), "--jsonl", "-",
               "--telemetry", str(tele), "--reconnect", "30"]  # fmt: skip
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout is not None
        lines = [p.stdout.readline() for _ in range(10)]  # frames are coming: pull the plug
        s.kill()
        time.sleep(1.0)
        s.start()
        rest, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    got = [json.loads(x) for x in lines + rest.splitlines() if x.strip()]
    same_detections(got, read_jsonl(tmp_path / "l.jsonl"))  # every frame, none lost
    assert "server outage 1: from" in err and "reconnected after" in err
    events = [r for r in read_jsonl(tele) if "event" in r]
    assert [e["event"] for e in events] == ["lost", "reconnected"]
    assert all(e["source"] == "server" for e in events)


def test_a_server_gone_for_good_ends_the_run_with_exit_3(repo: Path, tmp_path: Path) -> None:
    jsonl = tmp_path / "r.jsonl"
    with triton_server.TritonServer(repo) as s:
        cmd = [sys.executable, "-m", "edge", "run", "--max-frames", "100000", "--no-show",
               "--device", url(s), "--jsonl", str(jsonl), "--reconnect", "2", "--read-timeout", "2"]  # fmt: skip
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(8)
        s.kill()
        out, err = p.communicate(timeout=120)
    assert p.returncode == 3, err
    assert "gone for good" in err and "stopped by server lost" in out
    rows = read_jsonl(jsonl)  # written and complete up to the loss
    assert rows and all("detections" in r for r in rows)


def test_a_server_that_keeps_dropping_is_given_up_with_exit_3(repo: Path, tmp_path: Path) -> None:
    """Each outage has its own reconnect budget, so a server that comes back and drops again
    would be retried for ever: lost more than Drops.MOST times in the window, it is given up
    (exit 3), as a live source that keeps dropping is."""
    from edge.sources import Drops

    with triton_server.TritonServer(repo) as s:
        cmd = [sys.executable, "-m", "edge", "run", "--max-frames", "1000000", "--no-show",
               "--device", url(s), "--jsonl", "-", "--reconnect", "30"]  # fmt: skip
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout is not None and p.stderr is not None
        rows: list[str] = []

        def drain() -> None:
            for row in p.stdout:  # type: ignore[union-attr]
                rows.append(row)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        guard = threading.Timer(600, p.kill)  # a hang guard, not a speed limit
        guard.start()
        while p.poll() is None and not rows:
            time.sleep(0.2)  # until the first frames are out: the run is under way
        s.kill()
        s.start()
        drops = 1
        for line in p.stderr:  # each time frames flow again, pull the plug again
            if "reconnected after" in line:
                s.kill()
                drops += 1
                if drops > Drops.MOST:
                    break
                s.start()
        err = p.stderr.read()
        p.wait()
        guard.cancel()
        reader.join(timeout=60)
    assert drops == Drops.MOST + 1
    assert p.returncode == 3, err
    assert f"keeps dropping (lost {Drops.MOST + 1} times in" in err and "Traceback" not in err
    assert rows and all("detections" in json.loads(r) for r in rows)


@pytest.mark.parametrize("text", ["triton://h:\u00b2/m", "triton://h:1/m/\u00b2"])
def test_a_port_or_version_that_is_not_ascii_digits_is_refused_by_name(text: str) -> None:
    from edge.runtime.remote_address import TritonAddress

    with pytest.raises(ValueError, match="--device .*expected triton://"):
        TritonAddress.parse(text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_server_and_no_model_are_one_line_and_exit_2(server) -> None:
    r = edge("run", "--device", f"triton://127.0.0.1:{free_port()}/default", "--max-frames", "1")
    assert r.returncode == 2 and "no Triton server answers" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = edge("run", "--device", url(server, "nope"), "--max-frames", "1")
    assert r.returncode == 2 and "no ready model 'nope'" in r.stderr and "default" in r.stderr
    r = edge("run", "--device", "triton://127.0.0.1/", "--max-frames", "1")
    assert r.returncode == 2 and "triton://HOST:PORT/MODEL" in r.stderr


def test_shared_memory_carries_the_same_tensors_and_is_removed(server) -> None:
    import tritonclient.grpc as grpcclient

    from edge.runtime.remote import RemoteSession
    from edge.runtime.remote_address import RemoteOptions

    rng = np.random.default_rng(0)
    xs = [rng.integers(0, 255, (1, 320, 320, 3), dtype=np.uint8) for _ in range(3)]
    with RemoteSession(url(server), remote=RemoteOptions(shm="off")) as plain:
        assert plain.shm is None
        want = [c.outputs for c in plain.run_many(xs)]
    c = grpcclient.InferenceServerClient(server.url)
    with RemoteSession(url(server)) as s:  # auto: the server is on this host
        assert s.shm is not None and s.shm.has_outputs
        got = [call.outputs for call in s.run_many(xs)]
        regions = c.get_system_shared_memory_status(as_json=True).get("regions", {})
        ours = [name for name in regions if name.startswith(s.shm.prefix)]
        assert len(ours) == 6  # an input and an output region per request in flight
    for a, b in zip(got, want, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    left = c.get_system_shared_memory_status(as_json=True).get("regions", {})
    assert not [n for n in left if n in ours]
    assert not [f for f in os.listdir("/dev/shm") if f in ours]


def test_requests_in_flight_together_are_batched_by_the_server(server) -> None:
    from edge.runtime.remote import RemoteSession

    x = np.full((1, 64, 64, 3), 100, np.float32)
    with RemoteSession(url(server, "tiny")) as s:
        before = s.server_stats()
        for _ in range(3):
            calls = s.run_many([x + i for i in range(4)])
            # each request has its own image's answer (the tiny model shifts boxes by its mean)
            shifts = [c.outputs[0][0, 0, 0] - 8 for c in calls]
            np.testing.assert_allclose(shifts, [0.05 * (100 + i) for i in range(4)], rtol=1e-5)
        done = s.server_stats()
    assert done.inferences - before.inferences == 12
    assert done.executions - before.executions <= 6  # the batcher put requests together
    assert max(done.batches) > 1 and "mean batch" in done.describe()


def test_network_part_is_inside_the_call(server) -> None:
    from edge.runtime.remote import RemoteSession

    x = np.zeros((1, 64, 64, 3), np.float32)
    with RemoteSession(url(server, "tiny")) as s:
        deadline = time.monotonic() + 30
        while not s._server_ns and time.monotonic() < deadline:  # the first statistics window
            s.run_many([x])
        assert s._server_ns > 0
        for c in s.run_many([x, x]):
            assert 0 <= c.network_ns <= c.end_ns - c.start_ns


def test_detector_stream_info_bench_and_eval_use_the_server(
    server, repo: Path, tmp_path: Path
) -> None:
    import edge as edge_api

    image = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    local_model = repo / "default" / "1" / "model.onnx"
    with (
        edge_api.Detector(device=url(server)) as remote,
        edge_api.Detector(local_model, "cpu") as local,
    ):
        a, b = remote.detect(image, conf=0.05), local.detect(image, conf=0.05)
        assert remote.device == "triton" and len(a) == len(b) > 0
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-2)
    results = list(edge_api.stream("synthetic", device=url(server), max_frames=4))
    assert [r.frame.index for r in results] == [0, 1, 2, 3]
    info = edge("info", "--device", url(server))
    assert info.returncode == 0, info.stderr
    for text in ("Triton server", "max_batch_size 8", "dynamic batching", "ready True",
                 "edge contract: classes"):  # fmt: skip
        assert text in info.stdout, info.stdout
    bench = edge("bench", "--device", url(server), "--runs", "4", "--warmup", "1")
    assert bench.returncode == 0 and "triton default 4 in flight" in bench.stdout, bench.stderr
    data = tmp_path / "synth"
    assert (
        edge("data", "synth", "--out", str(data), "--images", "10", "--imgsz", "160").returncode
        == 0
    )
    maps = []
    for how in (["--device", url(server)], ["--model", str(local_model)]):
        out = tmp_path / f"m{len(maps)}.json"
        r = edge("eval", *how, "--data", str(data), "--json", str(out))
        assert r.returncode == 0, r.stderr
        maps.append(json.loads(out.read_text())["map50"])
    assert maps[0] == pytest.approx(maps[1], abs=1e-6)


def test_tritonclient_is_imported_only_for_a_triton_device(tmp_path: Path) -> None:
    code = (
        "import sys; from edge.cli import main; "
        "main(['run', '--max-frames', '2', '--no-show', '-q']); "
        "print('tritonclient' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.stdout.strip().splitlines()[-1] == "False", r.stdout + r.stderr


def test_bench_triton_script_runs_small(repo: Path) -> None:
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_triton.py"), "--repo", str(repo),
         "--name", "tiny", "--streams", "1", "2", "--frames", "6"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    for mode in ("local", "triton batch", "triton requests"):
        assert mode in r.stdout, r.stdout
    assert "mean batch" in r.stdout
