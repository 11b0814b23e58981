"""`edge train --model-parallel`: JAX ModelParallel over a 2x2 (batch, model) mesh of four CPU
devices trains the same model as one device, and its .keras loads anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("jax")

from edge.model import load_detector  # noqa: E402

pytestmark = pytest.mark.slow

SCRIPT = """
import json, sys
from pathlib import Path
import keras, numpy as np
from edge.data.batches import NO_AUGMENT
from edge.training import TrainOptions, train
from edge.training.toy import write_toy_dataset
out, parts = Path(sys.argv[1]), int(sys.argv[2])
toy = write_toy_dataset(out / "toy", n_train=4, n_val=2, size=(96, 96))
options = TrainOptions(model="tiny", imgsz=64, epochs=4, batch=4, weights=None, augment=NO_AUGMENT,
                       workers=1, warmup_epochs=1, lr=1e-2, verbose=0, ema=False,
                       devices=4 if parts > 1 else 1, model_parallel=parts)
result = train(toy, out / f"mp{parts}", options)
d = keras.distribution.distribution()
sharded = []
if d is not None and type(d).__name__ == "ModelParallel":
    sharded = list(d._layout_map._layout_map)
x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
np.save(out / "x.npy", x)
np.save(out / f"boxes{parts}.npy", keras.saving.load_model(out / f"mp{parts}" / "last.keras").predict_on_batch(x)["boxes"])
print(json.dumps({"loss": result.history["loss"], "distribution": type(d).__name__ if d else None,
                  "mesh": list(d.device_mesh.shape) if d else None, "sharded": len(sharded)}))
"""


def _train(out: Path, parts: int) -> dict:
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "OMP_NUM_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), str(parts)],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_model_parallel_matches_one_device_and_loads_anywhere(tmp_path: Path) -> None:
    one = _train(tmp_path, 1)
    mp = _train(tmp_path, 2)
    assert mp["distribution"] == "ModelParallel" and mp["mesh"] == [2, 2]
    assert mp["sharded"] > 5  # conv kernels really split over the model axis
    a, b = np.array(one["loss"]), np.array(mp["loss"])
    assert np.isfinite(a).all() and len(a) == len(b) == 4 and a[-1] < a[0]
    np.testing.assert_allclose(b, a, rtol=2e-3)  # the same loss curve, up to float reordering
    # saved from sharded weights, loaded here (any backend, one device) and equal in what it predicts
    model = load_detector(tmp_path / "mp2" / "last.keras")
    x = np.load(tmp_path / "x.npy")
    boxes = keras.ops.convert_to_numpy(model.predict_on_batch(x)["boxes"])
    np.testing.assert_allclose(boxes, np.load(tmp_path / "boxes2.npy"), rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(boxes, np.load(tmp_path / "boxes1.npy"), rtol=1e-2, atol=0.5)


def test_model_parallel_needs_jax_and_a_divisible_mesh() -> None:
    from edge.errors import EdgeError
    from edge.training.distribute import place

    if keras.backend.backend() != "jax":
        with pytest.raises(EdgeError, match="needs the JAX backend"):
            place(model_parallel=2)
    from edge.training.train_options import TrainOptions

    with pytest.raises(ValueError, match="model_parallel must be >= 1"):
        TrainOptions(model_parallel=0)
