"""edge.model: the detector family builds, round-trips through .keras (across backends), converts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edge.errors import EdgeError, ModelError  # noqa: E402
from edge.model import (  # noqa: E402
    NAMES,
    KerasDetector,
    build_detector,
    contract_for,
    inference_model,
    load_detector,
    transfer_weights,
)
from edge.runtime.contract import XYXY_SCORES, from_metadata  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIZE = 64
POINTS_64 = 8 * 8 + 4 * 4 + 2 * 2  # cells at strides 8, 16, 32


def _images(n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


@pytest.mark.parametrize("backbone", NAMES)
def test_each_backbone_builds_with_contract_shapes(backbone: str) -> None:
    model = build_detector(["a", "b", "c"], SIZE, backbone, weights=None)
    out = model.predict_on_batch(_images())
    assert out["boxes"].shape == (2, POINTS_64, 4)
    assert out["logits"].shape == (2, POINTS_64, 3)
    assert np.isfinite(out["boxes"]).all()
    x1, y1, x2, y2 = np.moveaxis(out["boxes"], -1, 0)
    assert (x2 > x1).all() and (y2 > y1).all()  # softplus distances are positive
    scores = inference_model(model).predict_on_batch(_images())["scores"]
    assert scores.shape == (2, POINTS_64, 3)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_inference_model_matches_training_outputs() -> None:
    model = build_detector(["a", "b"], SIZE, "tiny")
    train_out = model.predict_on_batch(_images())
    infer = inference_model(model)
    assert [t.name for t in infer.inputs] == ["images"]
    assert infer.output_names == ["boxes", "scores"]
    out = infer.predict_on_batch(_images())
    np.testing.assert_allclose(out["boxes"], train_out["boxes"], atol=1e-4)
    np.testing.assert_allclose(out["scores"], 1 / (1 + np.exp(-train_out["logits"])), atol=1e-5)


def test_contract_for_describes_raw_rgb_xyxy_scores() -> None:
    model = build_detector(["cat", "dog"], (64, 96), "tiny")
    contract = contract_for(inference_model(model))
    assert contract.names == ("cat", "dog")
    assert contract.imgsz == (64, 96)
    assert (contract.layout, contract.color, contract.scale) == ("NHWC", "RGB", 1.0)
    assert contract.mean == (0.0, 0.0, 0.0) and contract.std == (1.0, 1.0, 1.0)
    assert contract.output_format == XYXY_SCORES
    assert from_metadata(contract.to_metadata()).names == ("cat", "dog")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"names": [], "imgsz": 64}, "names"),
        ({"names": ["a"], "imgsz": 48}, "multiple of 32"),
        ({"names": ["a"], "imgsz": (64, 70)}, "multiple of 32"),
        ({"names": ["a"], "imgsz": 64, "backbone": "resnet"}, "backbone must be one of"),
        ({"names": ["a"], "imgsz": 64, "backbone": "tiny", "width": 4}, "width"),
        ({"names": ["a"], "imgsz": 64, "backbone": "tiny", "weights": "imagenet"}, "tiny"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_detector(**kwargs)


def test_imagenet_weights_offline_is_a_clear_edge_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from keras.src.utils import file_utils

    def offline(*args: object, **kwargs: object) -> None:
        raise Exception(
            "URL fetch failure on https://example/x.h5: None -- [Errno -2] Name or service not known"
        )

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(EdgeError, match="internet.*--weights"):
        build_detector(["a"], SIZE, "mobilenet_v3_small", weights="imagenet")


def test_backbone_weights_from_a_local_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        build_detector(["a"], SIZE, "mobilenet_v3_small", weights=str(tmp_path / "missing.h5"))
    source = build_detector(["a"], SIZE, "mobilenet_v3_small")
    path = tmp_path / "backbone.weights.h5"
    source.backbone.save_weights(path)
    model = build_detector(["a"], SIZE, "mobilenet_v3_small", weights=str(path))
    for a, b in zip(model.backbone.get_weights(), source.backbone.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_save_load_round_trip_in_safe_mode(tmp_path: Path) -> None:
    model = build_detector(["a", "b"], SIZE, "mobilenet_v3_small")
    reference = model.predict_on_batch(_images())
    path = tmp_path / "det.keras"
    model.save(path)
    build_detector(["x"], SIZE, "mobilenet_v3_small")  # moves Keras' automatic layer names on
    loaded = keras.saving.load_model(path)  # safe mode, no custom_objects
    assert isinstance(loaded, KerasDetector)
    assert loaded.names == ("a", "b") and loaded.imgsz == (SIZE, SIZE)
    out = loaded.predict_on_batch(_images())
    for key in ("boxes", "logits"):
        np.testing.assert_allclose(out[key], reference[key], atol=1e-4)


def test_files_saved_under_the_old_class_name_still_load(tmp_path: Path) -> None:
    # Before the rename the class was edge.model.detector.Detector, registered as "edge>Detector".
    model = build_detector(["a", "b"], SIZE, "tiny")
    reference = model.predict_on_batch(_images())
    model.save(tmp_path / "new.keras")
    with zipfile.ZipFile(tmp_path / "new.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    assert config["registered_name"] == "edge>KerasDetector"
    config.update(
        module="edge.model.detector", class_name="Detector", registered_name="edge>Detector"
    )
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "old.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    loaded = load_detector(tmp_path / "old.keras")
    assert isinstance(loaded, KerasDetector) and loaded.names == ("a", "b")
    np.testing.assert_allclose(
        loaded.predict_on_batch(_images())["boxes"], reference["boxes"], atol=1e-4
    )


def test_the_bundled_keras_model_loads() -> None:
    path = REPO / "models" / "default.keras"
    with zipfile.ZipFile(path) as archive:
        registered = json.loads(archive.read("config.json"))["registered_name"]
    assert registered in ("edge>Detector", "edge>KerasDetector")
    model = load_detector(path)
    assert isinstance(model, KerasDetector)
    h, w = model.imgsz
    image = np.random.default_rng(0).uniform(0, 255, (1, h, w, 3)).astype("float32")
    out = model.predict_on_batch(image)
    assert out["boxes"].shape[0] == 1 and np.isfinite(out["boxes"]).all()


def test_load_detector_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_detector(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match=".keras"):
        load_detector(tmp_path / "model.onnx")
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other.save(tmp_path / "dense.keras")
    with pytest.raises(ModelError, match="not an edge detector"):
        load_detector(tmp_path / "dense.keras")


def test_model_saved_under_tensorflow_loads_under_jax(tmp_path: Path) -> None:
    model = build_detector(["a", "b"], SIZE, "tiny")
    model.save(tmp_path / "det.keras")
    np.save(tmp_path / "x.npy", _images())
    np.save(tmp_path / "boxes.npy", model.predict_on_batch(_images())["boxes"])
    code = (
        "import sys, numpy as np, keras, edge.model.keras_detector\n"
        "d = sys.argv[1]\n"
        "m = keras.saving.load_model(d + '/det.keras')\n"
        "out = m.predict_on_batch(np.load(d + '/x.npy'))\n"
        "assert keras.backend.backend() == 'jax'\n"
        "np.testing.assert_allclose(out['boxes'], np.load(d + '/boxes.npy'), atol=1e-3)\n"
        "print('ok', type(m).__name__)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ok KerasDetector" in done.stdout


def test_transfer_weights_keeps_a_fresh_class_predictor_when_classes_change() -> None:
    source = build_detector(["a", "b"], SIZE, "tiny")
    target = build_detector(["a", "b", "c"], 96, "tiny")
    skipped = transfer_weights(source, target)
    assert skipped == ["head_cls_pred"]
    for a, b in zip(target.backbone.get_weights(), source.backbone.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        target.get_layer("head_reg_pred").get_weights()[0],
        source.get_layer("head_reg_pred").get_weights()[0],
    )
