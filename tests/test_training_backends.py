"""Training under JAX and on two devices (TF MirroredStrategy, JAX DataParallel), and as two JAX
processes, in subprocesses: the Keras backend and the device list are fixed when a process first
imports them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edge.model import load_detector  # noqa: E402
from edge.training.toy import write_toy_yolo  # noqa: E402

# Each script trains the tiny detector on four toy images and prints one JSON line.
_COMMON = """
import json, sys
from pathlib import Path
from edge.data.batches import NO_AUGMENT
from edge.training import TrainOptions, train
from edge.training.toy import write_toy_dataset
out = Path(sys.argv[1])
toy = write_toy_dataset(out / "toy", n_train=4, n_val=2, size=(96, 96))
options = TrainOptions(model="tiny", imgsz=64, epochs=6, batch=4, weights=None, augment=NO_AUGMENT,
                       workers=1, warmup_epochs=1, lr=1e-2, verbose=0)
"""

JAX_TWO_DEVICES = (
    _COMMON
    + """
import keras, numpy as np
assert keras.backend.backend() == "jax"
result = train(toy, out / "two", options)  # automatic: every visible device
x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
np.save(out / "x.npy", x)
np.save(out / "boxes.npy", keras.saving.load_model(out / "two" / "best.keras").predict_on_batch(x)["boxes"])
distribution = keras.distribution.distribution()
print(json.dumps({"loss": result.history["loss"], "distribution": type(distribution).__name__,
                  "devices": len(distribution.device_mesh.devices)}))
"""
)

TF_TWO_DEVICES = (
    """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""
    + _COMMON
    + """
from edge.training.distribute import place
placement = place()  # automatic: every visible device
result = train(toy, out / "two", options.but(epochs=3))
print(json.dumps({"loss": result.history["loss"], "replicas": placement.replicas,
                  "strategy": type(placement.strategy).__name__}))
"""
)


def _run(code: str, out: Path, **env: str) -> dict:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_jax_trains_data_parallel_on_two_devices_and_tensorflow_loads_the_result(
    tmp_path: Path,
) -> None:
    result = _run(
        JAX_TWO_DEVICES,
        tmp_path,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    assert result["distribution"] == "DataParallel" and result["devices"] == 2
    loss = np.array(result["loss"])
    assert np.isfinite(loss).all() and loss[-1] < 0.9 * loss[0]
    model = load_detector(tmp_path / "two" / "best.keras")  # saved by JAX, loaded by TensorFlow
    boxes = model.predict_on_batch(np.load(tmp_path / "x.npy"))["boxes"]
    np.testing.assert_allclose(boxes, np.load(tmp_path / "boxes.npy"), rtol=1e-4, atol=1e-2)


def test_tensorflow_mirrors_over_two_cpu_devices(tmp_path: Path) -> None:
    result = _run(TF_TWO_DEVICES, tmp_path, KERAS_BACKEND="tensorflow")
    assert result["replicas"] == 2 and result["strategy"] == "MirroredStrategy"
    assert len(result["loss"]) == 3 and np.isfinite(result["loss"]).all()
    assert (tmp_path / "two" / "best.keras").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_jax_processes_train_one_model(tmp_path: Path) -> None:
    # Five images: shards of three and two, so the shorter one must be topped up to keep the
    # processes in step. Each process saves to its own folder; their states must be identical.
    data = write_toy_yolo(tmp_path / "yolo", n_train=5, n_val=1)
    common = ["--data", str(data), "--model", "tiny", "--imgsz", "64", "--epochs", "2"]
    common += ["--batch", "4", "--weights", "none", "--no-augment", "--workers", "1"]
    common += ["--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2"]
    common += ["--every-process-saves"]
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "OMP_NUM_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    logs = [tmp_path / f"log{i}.txt" for i in range(2)]
    procs = []
    for i, log in enumerate(logs):
        args = [*common, "--process-id", str(i), "--out", str(tmp_path / f"p{i}")]
        with open(log, "w") as f:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "edge", "train", *args],
                    env=env,
                    stdout=f,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        for p in procs:
            p.wait(timeout=400)
    finally:
        for p in procs:  # a process blocked in a collective ignores SIGTERM
            if p.poll() is None:
                p.kill()
                p.wait()
    for i, (p, log) in enumerate(zip(procs, logs, strict=True)):
        assert p.returncode == 0, f"process {i}:\n{log.read_text()[-4000:]}"
    with (
        np.load(tmp_path / "p0" / "last.state.npz") as a,
        np.load(tmp_path / "p1" / "last.state.npz") as b,
    ):
        arrays = [k for k in a.files if k != "meta"]  # meta holds each one's process id
        assert arrays == [k for k in b.files if k != "meta"] and len(arrays) > 100
        different = [k for k in arrays if not np.array_equal(a[k], b[k])]
    assert not different, f"{len(different)} of {len(arrays)} arrays differ: {different[:5]}"
    rows = [(tmp_path / f"p{i}" / "results.csv").read_text().splitlines() for i in range(2)]
    assert len(rows[0]) == 3  # a header and two epochs
    losses = [[r.split(",")[1] for r in rows[i][1:]] for i in range(2)]
    assert losses[0] == losses[1] and np.isfinite(np.array(losses[0], float)).all()
