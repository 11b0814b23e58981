"""`edge train --init PRESET` for a KerasHub RetinaNet: edge's padded targets in RetinaNet's
format (a padded row leaves its loss unchanged, so batches of several images train), and a short
run whose checkpoints `edge export` (its parity gate) and `edge eval` take, and `--resume`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from test_train_hub import check_resume, edge

keras = pytest.importorskip("keras")
pytest.importorskip("keras_hub")
if keras.backend.backend() != "tensorflow":
    pytest.skip("KerasHub RetinaNet training is tested on TensorFlow", allow_module_level=True)

import hub_presets  # noqa: E402

from edge.training.hub_retinanet import PRIOR, retinanet_targets  # noqa: E402


def _targets(rows: list[list[list[float]]], max_boxes: int = 3) -> np.ndarray:
    """edge's targets [B, max_boxes, 5] for per-image rows (class, x1, y1, x2, y2)."""
    out = np.zeros((len(rows), max_boxes, 5), np.float32)
    out[..., 0] = -1.0
    for i, image in enumerate(rows):
        if image:
            out[i, : len(image)] = image
    return out


def test_targets_are_in_the_models_box_format_and_padded_rows_stay_empty() -> None:
    t = _targets([[[2, 16, 8, 48, 40]], [[0, 0, 4, 10, 20], [1, 30, 30, 60, 62]]])
    y = retinanet_targets(t, "yxyx", 64)
    assert y["boxes"].shape == (2, 3, 4) and y["labels"].tolist() == [[2, -1, -1], [0, 1, -1]]
    np.testing.assert_allclose(y["boxes"][0, 0], [8, 16, 40, 48])  # x1 y1 x2 y2 -> y1 x1 y2 x2
    np.testing.assert_allclose(y["boxes"][1, 1], [30, 30, 62, 60])
    assert not y["boxes"][0, 1:].any() and not y["boxes"][1, 2].any()
    rel = retinanet_targets(t, "rel_xyxy", 64)["boxes"]
    np.testing.assert_allclose(rel[0, 0], [0.25, 0.125, 0.75, 0.625])
    assert not rel[0, 1:].any()


def test_a_padded_row_leaves_keras_hubs_retinanet_loss_unchanged() -> None:
    """KerasHub 0.32's RetinaNet loss for a batch of two images is the same with edge's padded
    rows as with the real boxes alone; an image of padding only adds background (the batch's
    loss changes, it is not learned as an object). So edge feeds whole batches."""
    model = hub_presets.retinanet(num_classes=3, size=64)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    y_pred = model(x, training=False)

    def loss(t: np.ndarray) -> float:
        y = retinanet_targets(t, model.bounding_box_format, 64)
        return float(keras.ops.convert_to_numpy(model.compute_loss(x, y, y_pred, None)))

    real = [[[1, 8, 8, 40, 40]], [[2, 10, 20, 50, 60]]]
    unpadded = loss(_targets(real, max_boxes=1))
    assert loss(_targets(real, max_boxes=5)) == pytest.approx(unpadded, rel=1e-6)
    # a box that is really there does change it: the loss is not blind to the rows
    assert abs(loss(_targets([real[0], [*real[1], [0, 0, 0, 32, 32]]])) - unpadded) > 1e-3


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "data"
    r = edge("data", "synth", "--out", str(root), "--images", "12", "--imgsz", "64")
    assert r.returncode == 0, r.stderr
    return root


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hub_presets.save(hub_presets.retinanet(3, 64), tmp_path_factory.mktemp("p") / "rn")


@pytest.fixture(scope="module")
def short_run(synth: Path, preset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    r = edge("train", "--data", str(synth), "--out", str(out), "--init", str(preset),
             "--imgsz", "64", "--epochs", "2", "--batch", "4", "--backend", "tensorflow")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "3 steps per epoch of 4 images" in r.stderr  # 10 train images, whole batches
    return out


def test_a_run_learns_and_writes_checkpoints_that_export_and_eval_take(
    short_run: Path, synth: Path
) -> None:
    assert {"best.keras", "last.keras", "results.csv", "names.json", "options.json"} <= {
        p.name for p in short_run.iterdir()
    }
    with open(short_run / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert float(rows[1]["loss"]) < float(rows[0]["loss"])
    assert all(0.0 <= float(r["map50"]) <= 1.0 for r in rows)
    names = json.loads((short_run / "names.json").read_text())
    assert len(names) == 4  # the synthetic set's classes: a new head, not the preset's 3
    onnx_path = short_run / "best.onnx"
    r = edge("export", str(short_run / "best.keras"), "-o", str(onnx_path), "--calib-images", "2",
             "--runs", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr  # edge export's own gate: the file matches Keras
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(meta["names"]) == names and meta["output_format"] == "xyxy_scores"
    tables = []
    for model in (short_run / "best.keras", onnx_path):
        r = edge("eval", "--model", str(model), "--data", str(synth))
        assert r.returncode == 0, r.stderr
        tables.append(
            [line for line in r.stdout.splitlines() if line.split()[0] in names + ["all"]]
        )
    assert len(tables[0]) == 5 and tables[0] == tables[1]  # the .keras and its export agree


def test_an_interrupted_run_resumes_and_ends_as_an_uninterrupted_one(
    synth: Path, preset: Path, tmp_path: Path
) -> None:
    check_resume(synth, preset, tmp_path, batch=4)


def test_a_new_class_head_starts_at_the_prior_and_a_trained_one_is_kept(tmp_path: Path) -> None:
    from edge.training.hub_retinanet import _prior_bias

    model = hub_presets.retinanet(num_classes=3, size=64)
    bias = model.classification_head.prediction_layer.bias
    assert not np.any(keras.ops.convert_to_numpy(bias))  # KerasHub starts it at 0: score 0.5
    _prior_bias(model)
    scores = 1 / (1 + np.exp(-keras.ops.convert_to_numpy(bias)))
    np.testing.assert_allclose(scores, PRIOR, rtol=1e-5)
    bias.assign(np.full(bias.shape, 0.3, np.float32))  # trained: left alone
    _prior_bias(model)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bias), 0.3)
