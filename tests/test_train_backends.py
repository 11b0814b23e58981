"""Training under JAX and on two devices (TF MirroredStrategy, JAX DataParallel), in subprocesses:
the Keras backend and the device list are fixed when a process first imports them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edge.model import load_detector  # noqa: E402

# Each script trains the tiny detector on four toy images and prints one JSON line.
_COMMON = """
import json, sys
from pathlib import Path
from edge.data.pipeline import NO_AUGMENT
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
