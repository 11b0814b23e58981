"""`edge train --init PRESET` for a KerasHub D-FINE: targets in D-FINE's format without padded
rows, checkpoints that `edge export` and `edge eval` take, a short run that learns (slow), and
`--resume` of an interrupted run (`check_resume`, which the RetinaNet tests share).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cli_export import ENV

keras = pytest.importorskip("keras")
pytest.importorskip("keras_hub")
if keras.backend.backend() != "tensorflow":
    pytest.skip("KerasHub D-FINE training is tested on TensorFlow", allow_module_level=True)

import hub_presets  # noqa: E402

from edge.training.hub_train import dfine_targets  # noqa: E402


def edge(*args: str, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True,
                          env=env or ENV, timeout=timeout)  # fmt: skip


class StopAfter(keras.callbacks.Callback):
    """Interrupts training at the end of epoch `epoch` (after the run's own epoch end)."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.stop_epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.stop_epoch:
            raise KeyboardInterrupt


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_resume(data: Path, preset: Path, tmp_path: Path, batch: int) -> None:
    """A 2-epoch run of `preset` interrupted after epoch 1 and resumed (with its saved options)
    goes on at epoch 2, keeps one results.csv row per epoch (a row written after the state, as
    a kill between the two leaves, is replaced) and the optimizer's step count of the same run
    left uninterrupted, and its weights, optimizer state and losses (same seed;
    the feed depends only on seed, epoch and step: fit's own shuffle, drawn from Python's
    `random` that a new run re-seeds, once gave the resumed epoch another order)."""
    from edge.data.load import load_dataset
    from edge.training import TrainOptions, train
    from edge.training.checkpoint import STATE_FILE, load_state

    dataset = load_dataset(data)
    options = TrainOptions(
        data=str(data), init=str(preset), imgsz=64, epochs=2, batch=batch, workers=1, verbose=0
    )
    whole = train(dataset, tmp_path / "whole", options)
    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train(dataset, out, options, callbacks=[StopAfter(0)])
    assert load_state(out / STATE_FILE).epoch == 1
    first = _rows(out / "results.csv")
    assert [r["epoch"] for r in first] == ["0"]
    with open(out / "results.csv", "a", newline="") as f:
        f.write("1,9,9,9,9,9,9,9\r\n")  # epoch 2's row, its state never written
    # `edge train --resume` in a new process: the dataset and options saved in OUT
    r = edge("train", "--out", str(out), "--resume", "--epochs", "99", "--backend", "tensorflow")
    assert r.returncode == 0, r.stderr
    assert f"resuming {out} at epoch 2/2" in r.stderr  # the saved options win
    rows, ref = _rows(out / "results.csv"), _rows(tmp_path / "whole" / "results.csv")
    assert [r["epoch"] for r in rows] == ["0", "1"] and rows[0] == first[0]
    a, b = load_state(whole.out / STATE_FILE), load_state(out / STATE_FILE)
    assert a.epoch == b.epoch == 2 and len(a.weights) == len(b.weights)
    assert int(a.optimizer[0]) == int(b.optimizer[0]) > 0  # iterations: no step lost or redone
    assert float(rows[0]["loss"]) == pytest.approx(float(ref[0]["loss"]), rel=1e-4)
    assert np.isfinite(float(rows[1]["loss"]))
    assert float(rows[1]["loss"]) == pytest.approx(float(ref[1]["loss"]), rel=1e-4)
    for x, y in zip([*a.weights, *a.optimizer], [*b.weights, *b.optimizer], strict=True):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-6)
    assert (out / "best.keras").is_file() and not list(out.glob(".*tmp*"))


def _padded(rows: list[list[float]], max_boxes: int = 4) -> np.ndarray:
    out = np.zeros((max_boxes, 5), np.float32)
    out[:, 0] = -1.0
    if rows:
        out[: len(rows)] = rows
    return out


@pytest.mark.parametrize(
    ("rows", "boxes", "labels"),
    [
        # class 2, x1 16 y1 32 x2 48 y2 64 on a 64 px input: centre (0.5, 0.75), size 0.5 x 0.5
        ([[2, 16, 32, 48, 64]], [[0.5, 0.75, 0.5, 0.5]], [2]),
        (
            [[0, 0, 0, 64, 32], [1, 60, 60, 70, 70]],
            [[0.5, 0.25, 1, 0.5], [0.96875, 0.96875, 0.0625, 0.0625]],
            [0, 1],
        ),  # clipped to the input  # fmt: skip
        ([], np.zeros((0, 4)), []),  # only padding: no rows at all
    ],
)
def test_dfine_targets_hold_the_real_rows_only(rows, boxes, labels) -> None:
    y = dfine_targets(_padded(rows), 64)
    assert y["boxes"].shape == (1, len(labels), 4) and y["labels"].shape == (1, len(labels))
    np.testing.assert_allclose(y["boxes"][0], np.asarray(boxes, np.float32).reshape(-1, 4))
    assert y["labels"][0].tolist() == labels


def test_keras_hub_learns_a_padded_row_as_an_object_and_edges_targets_have_none() -> None:
    """KerasHub 0.32's D-FINE loss changes when a padded row (class -1, box 0) is added to an
    image's targets: it is matched like an object. The targets edge feeds for the padded edge
    rows give exactly the loss of the real boxes alone."""
    model = hub_presets.dfine(num_classes=3, size=64)
    x = np.random.default_rng(0).uniform(0, 1, (1, 64, 64, 3)).astype(np.float32)
    y_pred = model(x, training=False)
    real = {"boxes": np.array([[[0.5, 0.5, 0.25, 0.25]]], np.float32), "labels": np.array([[1]])}
    padded = {
        "boxes": np.array([[[0.5, 0.5, 0.25, 0.25], [0, 0, 0, 0]]], np.float32),
        "labels": np.array([[1, -1]]),
    }

    def loss(y: dict[str, np.ndarray]) -> float:
        return float(keras.ops.convert_to_numpy(model.compute_loss(x, y, y_pred, None)))

    assert abs(loss(padded) - loss(real)) > 1e-3  # the padded row counts for KerasHub
    ours = dfine_targets(_padded([[1, 24, 24, 40, 40]]), 64)  # the same box in edge's targets
    np.testing.assert_allclose(ours["boxes"], real["boxes"])
    assert loss(ours) == pytest.approx(loss(real), abs=1e-6)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "data"
    r = edge("data", "synth", "--out", str(root), "--images", "12", "--imgsz", "64")
    assert r.returncode == 0, r.stderr
    return root


@pytest.fixture(scope="module")
def coco_preset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hub_presets.save(hub_presets.dfine(80, 64), tmp_path_factory.mktemp("p") / "dfine")


@pytest.fixture(scope="module")
def short_run(synth: Path, coco_preset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    r = edge("train", "--data", str(synth), "--out", str(out), "--init", str(coco_preset),
             "--imgsz", "64", "--epochs", "1", "--batch", "2", "--backend", "tensorflow")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def small_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small") / "data"
    r = edge("data", "synth", "--out", str(root), "--images", "4", "--imgsz", "64")
    assert r.returncode == 0, r.stderr
    return root


@pytest.fixture(scope="module")
def jax_run(small_synth: Path, coco_preset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run under JAX (on the CPU; jitted, so each new box count compiles the step: three
    images without augmentation keep that to three compiles)."""
    out = tmp_path_factory.mktemp("run") / "jax"
    r = edge("train", "--data", str(small_synth), "--out", str(out), "--init", str(coco_preset),
             "--imgsz", "64", "--epochs", "1", "--batch", "2", "--no-augment",
             "--backend", "jax", env={**ENV, "JAX_PLATFORMS": "cpu"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def test_a_jax_run_writes_a_best_keras_that_tensorflow_evaluates(
    jax_run: Path, small_synth: Path
) -> None:
    header, row = (jax_run / "results.csv").read_text().splitlines()
    assert np.isfinite(float(dict(zip(header.split(","), row.split(","), strict=True))["loss"]))
    names = json.loads((jax_run / "names.json").read_text())
    r = edge("eval", "--model", str(jax_run / "best.keras"), "--data", str(small_synth))
    assert r.returncode == 0, r.stderr  # ENV's backend: TensorFlow loads what JAX saved
    rows = [line.split()[0] for line in r.stdout.splitlines() if line.split()]
    assert set(names + ["all"]) <= set(rows)


def test_a_jax_run_exports_within_the_fp32_parity_gate(
    jax_run: Path, small_synth: Path, tmp_path: Path
) -> None:
    # It failed the gate on scores (1.7e-3) while its boxes agreed: ONNX Runtime folded the zero
    # padding of HGNetV2's stem into a max pool (edge.export.max_pool).
    out = tmp_path / "jax.onnx"
    r = edge("export", str(jax_run / "best.keras"), "-o", str(out), "--calib-images", "8",
             "--runs", "2")  # fmt: skip
    assert r.returncode == 0, r.stderr  # the gate passed: every row within 1e-4
    assert any(line.startswith("fp32") for line in r.stdout.splitlines())
    assert edge("eval", "--model", str(out), "--data", str(small_synth)).returncode == 0


def test_a_run_writes_checkpoints_that_export_and_eval_take(short_run: Path, synth: Path) -> None:
    assert {"best.keras", "last.keras", "results.csv", "names.json"} <= {
        p.name for p in short_run.iterdir()
    }
    names = json.loads((short_run / "names.json").read_text())
    assert len(names) == 4  # the synthetic set's classes: a new head, not COCO's 80
    onnx_path = short_run / "best.onnx"
    r = edge("export", str(short_run / "best.keras"), "-o", str(onnx_path), "--calib-images", "2",
             "--runs", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(meta["names"]) == names and meta["output_format"] == "rtdetr"
    assert meta["edge.dataset"] == str(synth.resolve())  # the run's provenance
    tables = []
    for model in (short_run / "best.keras", onnx_path):
        r = edge("eval", "--model", str(model), "--data", str(synth))
        assert r.returncode == 0, r.stderr
        tables.append(
            [line for line in r.stdout.splitlines() if line.split()[0] in names + ["all"]]
        )
    assert len(tables[0]) == 5 and tables[0] == tables[1]  # the .keras and its export agree


def test_an_interrupted_run_resumes_at_its_next_epoch(
    synth: Path, coco_preset: Path, tmp_path: Path
) -> None:
    check_resume(synth, coco_preset, tmp_path, batch=2)


def test_batch_norms_without_statistics_are_set_from_images_and_learn(tmp_path: Path) -> None:
    """A preset built from config (random weights) has batch norms at mean 0, variance 1: frozen
    like that its features did not depend on the image, and frozen at statistics of random
    convolutions they go stale as those train. They get the statistics of training images and
    keep learning; norms that have statistics keep them, frozen."""
    from edge.data.batches import TrainBatches
    from edge.data.dataset import Sample
    from edge.training.hub_train import FRESH_MOMENTUM, prepare_batch_norms

    model = hub_presets.dfine(num_classes=3, size=64)
    norms = [n for n in model._flatten_layers() if isinstance(n, keras.layers.BatchNormalization)]
    trained = norms[0]
    trained.moving_mean.assign(np.full(trained.moving_mean.shape, 0.5, np.float32))
    import cv2

    rng = np.random.default_rng(0)
    samples = []
    for i in range(2):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 255, (64, 64, 3), np.uint8))
        box = np.array([[8.0, 8.0, 40.0, 40.0]], np.float32)
        samples.append(Sample(path, 64, 64, box, np.array([0], np.int64)))
    batches = TrainBatches(samples, 64, 1, seed=0)
    momentum = trained.momentum
    prepare_batch_norms(keras, model, batches, np.float32(1 / 255), np.float32(0.0))
    assert not trained.trainable and trained.momentum == momentum
    np.testing.assert_allclose(keras.ops.convert_to_numpy(trained.moving_mean), 0.5)
    later = norms[1:]
    assert all(np.any(keras.ops.convert_to_numpy(n.moving_mean) != 0) for n in later)
    assert all(n.trainable and n.momentum == FRESH_MOMENTUM for n in later)


@pytest.mark.parametrize(("backend", "why"), [("jax", "DataParallel"), ("tensorflow", "own image")])
def test_hub_training_on_several_devices_is_refused_with_the_reason(backend: str, why: str) -> None:
    from edge.errors import EdgeError
    from edge.training.hub_train import check_hub_devices
    from edge.training.train_options import TrainOptions

    for devices in (None, 1):
        check_hub_devices(backend, TrainOptions(devices=devices))
    with pytest.raises(EdgeError, match=f"^--devices 2: .*{why}.*use --devices 1"):
        check_hub_devices(backend, TrainOptions(devices=2))


def test_edge_train_refuses_a_preset_on_two_jax_devices_before_writing(
    synth: Path, coco_preset: Path, tmp_path: Path
) -> None:
    env = {**ENV, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = tmp_path / "run"
    r = edge("train", "--data", str(synth), "--out", str(out), "--init", str(coco_preset),
             "--imgsz", "64", "--devices", "2", "--backend", "jax", env=env)  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "edge train: error: --devices 2: KerasHub D-FINE trains on one device" in r.stderr
    assert not out.exists()


def test_mixed_precision_for_a_preset_trains_in_fp32_on_a_cpu(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from edge.training.hub_train import hub_placement
    from edge.training.train_options import TrainOptions

    with caplog.at_level("WARNING", logger="edge.training.hub_train"):
        placement = hub_placement(TrainOptions(precision="mixed"))
    if placement.accelerator:
        pytest.skip("an accelerator is visible")
    assert "--precision mixed needs a GPU; training in fp32 on the CPU" in caplog.text


def test_mixed_precision_for_a_preset_is_refused_on_an_accelerator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from edge.errors import EdgeError
    from edge.training import distribute
    from edge.training.hub_train import hub_placement
    from edge.training.train_options import TrainOptions

    gpu = distribute.Placement("tensorflow", ("/device:GPU:0",), accelerator=True)
    monkeypatch.setattr(distribute, "place", lambda devices: gpu)  # as a GPU machine places
    assert hub_placement(TrainOptions()) is gpu  # fp32 trains there
    with pytest.raises(EdgeError, match="^--precision mixed: .*use --precision fp32"):
        hub_placement(TrainOptions(precision="mixed"))
