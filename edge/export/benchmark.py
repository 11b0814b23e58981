"""Model latency benchmarks: ONNX Runtime per provider and precision, and Keras beside it.

Each case is warmed up, then timed call by call with `perf_counter_ns`; results carry the machine
they were measured on so numbers are never quoted without their hardware.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge.errors import EdgeError

if TYPE_CHECKING:
    from edge.runtime.session import ModelSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchResult:
    """Latency of one way of running one model on one frame (batch 1)."""

    name: str  # e.g. "onnxruntime cpu fp32"
    runtime: str  # onnxruntime | keras-predict | keras-call
    device: str
    precision: str
    runs: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    fps: float  # 1000 / mean: frames per second, one frame at a time


@dataclass(frozen=True)
class BenchReport:
    model: str
    imgsz: tuple[int, int]
    machine: dict[str, str]
    results: list[BenchResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "imgsz": list(self.imgsz),
            "machine": self.machine,
            "results": [asdict(r) for r in self.results],
        }


def time_calls(fn: Callable[[], object], runs: int, warmup: int) -> np.ndarray:
    """Milliseconds of `runs` calls of `fn` after `warmup` untimed calls."""
    if runs < 1:
        raise ValueError(f"--runs must be at least 1, got {runs}")
    for _ in range(warmup):
        fn()
    out = np.empty(runs)
    for i in range(runs):
        t = time.perf_counter_ns()
        fn()
        out[i] = (time.perf_counter_ns() - t) / 1e6
    return out


def summarise(name: str, runtime: str, device: str, precision: str, ms: np.ndarray) -> BenchResult:
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    mean = float(ms.mean())
    return BenchResult(
        name,
        runtime,
        device,
        precision,
        len(ms),
        mean,
        float(p50),
        float(p95),
        float(p99),
        1000.0 / mean if mean > 0 else 0.0,
    )


def _precision_of(path: Path) -> str:
    stem = path.stem.lower()
    for p in ("int8", "fp16"):
        if stem.endswith(p) or f"-{p}" in stem or f"_{p}" in stem or f".{p}" in stem:
            return p
    return "fp32"


def variants(model: Path) -> list[Path]:
    """The model and its sibling precision variants written by `edge export` (name-fp16/-int8)."""
    found = [model]
    base = model.stem
    for suffix in ("fp16", "int8"):
        for sep in ("-", "_", "."):
            p = model.with_name(f"{base}{sep}{suffix}.onnx")
            if p.is_file() and p not in found:
                found.append(p)
    return found


def bench_onnx(
    model: Path,
    devices: list[str],
    imgsz: tuple[int, int] | None,
    runs: int,
    warmup: int,
    threads: int = 0,
) -> tuple[list[BenchResult], tuple[int, int]]:
    """Time each precision variant of `model` on each device whose provider really starts."""
    from edge.runtime.machine import provider_check
    from edge.runtime.session import PROVIDERS, ModelSession, SessionOptions

    starts = {k for k, v in provider_check().items() if v == "starts"}
    skipped = [d for d in devices if PROVIDERS[d] not in starts]
    if skipped:
        log.info("not timed (provider does not start here): %s", ", ".join(skipped))
    results: list[BenchResult] = []
    size = imgsz
    for path in variants(model):
        for device in (d for d in devices if d not in skipped):
            s = ModelSession(path, SessionOptions(device=device, threads=threads, warmup=0))
            x, size = bench_input(s, imgsz)
            ms = time_calls(lambda s=s, x=x: s.run(x), runs, warmup)
            prec = _precision_of(path)
            results.append(
                summarise(f"onnxruntime {s.device} {prec}", "onnxruntime", s.device, prec, ms)
            )
    assert size is not None
    return results, size


def bench_input(
    session: ModelSession, imgsz: tuple[int, int] | None
) -> tuple[np.ndarray, tuple[int, int]]:
    """The frame `edge bench` times `session` on (seeded noise in the model's layout and scale)
    and its (height, width): the model's fixed size, else `imgsz`, else its contract's."""
    size = session.input_size(imgsz)
    h, w = size
    shape = (1, 3, h, w) if session.contract.layout == "NCHW" else (1, h, w, 3)
    x = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
    if session.contract.scale != 1.0:
        x *= session.contract.scale
    return x, size


def bench_remote(
    device: str, imgsz: tuple[int, int] | None, runs: int, warmup: int, in_flight: int = 4
) -> tuple[list[BenchResult], tuple[int, int]]:
    """Time a model on a Triton server (`device` triton://HOST:PORT/MODEL): one frame per request,
    then `in_flight` requests at once (what several streams send; the server may batch them)."""
    from dataclasses import replace

    from edge.runtime.session import SessionOptions, open_session

    s = open_session(None, SessionOptions(device=device, warmup=0))
    try:
        size = s.input_size(imgsz)
        h, w = size
        shape = (1, 3, h, w) if s.contract.layout == "NCHW" else (1, h, w, 3)
        x = np.random.default_rng(0).uniform(0, 255, shape).astype(s.input_dtype)
        name = f"triton {s.address.model}"
        one = summarise(
            f"{name} 1 request",
            "triton",
            device,
            "server",
            time_calls(lambda: s.run(x), runs, warmup),
        )
        many = time_calls(lambda: s.run_many([x] * in_flight), max(1, runs // in_flight), warmup)
        at_once = summarise(f"{name} {in_flight} in flight", "triton", device, "server", many)
        at_once = replace(at_once, fps=in_flight * at_once.fps)  # frames/s: each call has several
    finally:
        s.close()
    return [one, at_once], size


def bench_keras(
    model_path: Path, imgsz: tuple[int, int] | None, runs: int, warmup: int
) -> tuple[list[BenchResult], Path, tuple[int, int]]:
    """Keras `predict` and a direct compiled call on one frame; also exports to ONNX for comparison."""
    import tempfile

    import keras

    try:
        from edge.model import load_detector
    except ImportError as exc:  # the model family is part of the training extra
        raise EdgeError(
            f"benchmarking a .keras model needs edge's training extra ({exc})"
        ) from None
    model = load_detector(model_path)
    h, w = imgsz or tuple(model.input_shape[1:3])
    x = np.random.default_rng(0).uniform(0, 255, (1, h, w, 3)).astype(np.float32)
    results = []
    ms = time_calls(lambda: model.predict(x, verbose=0), runs, warmup)
    results.append(
        summarise(f"keras predict ({keras.backend.backend()})", "keras-predict", "cpu", "fp32", ms)
    )
    call = _compiled_call(model)
    ms = time_calls(lambda: call(x), runs, warmup)
    results.append(
        summarise(
            f"keras compiled call ({keras.backend.backend()})", "keras-call", "cpu", "fp32", ms
        )
    )
    from edge.export import ExportOptions, export_model

    onnx_path = Path(tempfile.mkdtemp(prefix="edge-bench-")) / f"{model_path.stem}.onnx"
    export_model(model_path, onnx_path, ExportOptions(imgsz=(h, w), verify=False))
    return results, onnx_path, (h, w)


def _compiled_call(model: object) -> Callable[[np.ndarray], object]:
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(
            lambda x: model(x, training=False), jit_compile=False, reduce_retracing=True
        )
        return lambda x: [t.numpy() for t in keras.tree.flatten(fn(x))]
    if backend == "jax":
        import jax

        fn = jax.jit(lambda x: model(x, training=False))
        return lambda x: jax.block_until_ready(fn(x))
    return lambda x: model(x, training=False)


def format_table(report: BenchReport) -> str:
    m = report.machine
    lines = [
        f"model: {report.model}  input {report.imgsz[0]}x{report.imgsz[1]}, batch 1",
        f"machine: {m['cpu']}, {m['cores']} cores, GPUs: {m['gpus']}",
        f"{'case':<36}{'runs':>6}{'mean':>9}{'p50':>9}{'p95':>9}{'p99':>9}{'FPS':>9}",
    ]
    for r in report.results:
        lines.append(
            f"{r.name:<36}{r.runs:>6}{r.mean_ms:>9.2f}{r.p50_ms:>9.2f}{r.p95_ms:>9.2f}{r.p99_ms:>9.2f}{r.fps:>9.1f}"
        )
    ort = [
        r
        for r in report.results
        if r.runtime == "onnxruntime" and r.device == "cpu" and r.precision == "fp32"
    ]
    for r in report.results:
        if r.runtime.startswith("keras") and ort:
            lines.append(
                f"onnxruntime cpu fp32 is {r.p50_ms / ort[0].p50_ms:.1f}x faster than {r.name} (p50)"
            )
    return "\n".join(lines)


def write_json(report: BenchReport, path: Path) -> None:
    from edge.outputs import files

    files.write_text(path, "--json", json.dumps(report.to_dict(), indent=2), files.check_json)


def plot(report: BenchReport, path: Path) -> None:
    """A horizontal bar chart of p50 with p95 whiskers, one bar per case."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgeError("--plot needs matplotlib: pip install 'edge[plot]'") from None
    names = [r.name for r in report.results]
    p50 = np.array([r.p50_ms for r in report.results])
    p95 = np.array([r.p95_ms for r in report.results])
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(names) + 1.5))
    ax.barh(names, p50, xerr=[np.zeros_like(p50), p95 - p50], color="tab:blue", capsize=4)
    for i, v in enumerate(p50):
        ax.text(v, i, f" {v:.2f} ms", va="center")
    ax.invert_yaxis()
    ax.set_xlabel("latency per frame, ms (bar p50, whisker p95)")
    m = report.machine
    ax.set_title(
        f"{report.model} {report.imgsz[0]}x{report.imgsz[1]} on {m['cpu']} ({m['cores']} cores)",
        fontsize=9,
    )
    fig.tight_layout()
    from edge.outputs import files

    try:
        files.write_atomic(path, "--plot", lambda t: fig.savefig(t, dpi=100), files.check_nonempty)
    finally:
        plt.close(fig)
