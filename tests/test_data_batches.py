"""edge.data.batches: letterbox parity with the runtime, box-aware augmentation, batching."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.data.batches import (
    NO_AUGMENT,
    Augment,
    TrainBatches,
    benchmark,
    hsv_jitter,
    iterate,
    pad_targets,
)
from edge.data.dataset import Dataset, Sample
from edge.errors import DataError
from edge.runtime.preprocess import letterbox
from edge.training.toy import write_toy_dataset


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), n_train=6, n_val=0, size=(120, 90))


def test_without_augmentation_input_equals_the_runtime_letterbox(toy: Dataset) -> None:
    batches = TrainBatches(toy.train, 96, 2, augment=NO_AUGMENT, max_boxes=4, shuffle=False)
    images, targets = batches.batch(0, 0)
    assert images.shape == (2, 96, 96, 3) and images.dtype == np.float32
    assert targets.shape == (2, 4, 5) and targets.dtype == np.float32
    for row, sample in enumerate(toy.train[:2]):
        canvas, lb = letterbox(cv2.imread(str(sample.image_path)), (96, 96))
        np.testing.assert_array_equal(images[row], canvas[..., ::-1].astype(np.float32))  # RGB
        n = len(sample.boxes)
        np.testing.assert_allclose(targets[row, :n, 1:], lb.forward(sample.boxes), atol=1e-3)
        np.testing.assert_array_equal(targets[row, :n, 0], sample.class_ids)
        assert (targets[row, n:, 0] == -1).all()


def _saturation(pixel: np.ndarray) -> float:
    return float(pixel.max() - pixel.min())


@pytest.mark.parametrize("mosaic", [0.0, 1.0])
def test_augmented_boxes_still_frame_their_objects(toy: Dataset, mosaic: float) -> None:
    # Objects are saturated red/green on grey: after flips, zooms, shifts and mosaics the centre of
    # every target box must still be an object pixel.
    augment = Augment(hsv=(0.0, 0.0, 0.0), mosaic=mosaic, hflip=0.5, scale=0.5, translate=0.2)
    batches = TrainBatches(toy.train, 128, 6, augment=augment, max_boxes=16, seed=3)
    checked = 0
    for epoch in range(3):
        images, targets = batches.batch(epoch, 0)
        for image, rows in zip(images, targets, strict=True):
            for _, x1, y1, x2, y2 in rows[rows[:, 0] >= 0]:
                assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 128
                cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
                assert _saturation(image[cy, cx]) > 80, (epoch, (x1, y1, x2, y2))
                checked += 1
    assert checked >= 10


def test_batches_are_reproducible_and_change_with_the_epoch(toy: Dataset) -> None:
    batches = TrainBatches(toy.train, 64, 3, augment=Augment(), seed=1)
    a, ta = batches.batch(2, 1)
    b, tb = batches.batch(2, 1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ta, tb)
    c, _ = batches.batch(3, 1)
    assert not np.array_equal(a, c)


def test_every_batch_is_full_by_wrapping_around(toy: Dataset) -> None:
    batches = TrainBatches(toy.train, 64, 4, shuffle=False)
    assert len(batches) == 2
    images, _ = batches.batch(0, 1)  # samples 4, 5, then 0, 1 again
    assert images.shape[0] == 4
    with pytest.raises(IndexError):
        batches.batch(0, 2)


def test_pad_targets_keeps_the_largest_boxes() -> None:
    boxes = np.array([[0, 0, 2, 2], [0, 0, 10, 10], [0, 0, 5, 5]], np.float32)
    out = pad_targets(boxes, np.array([0, 1, 2]), 2)
    np.testing.assert_array_equal(out, [[1, 0, 0, 10, 10], [2, 0, 0, 5, 5]])
    out = pad_targets(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), 2)
    np.testing.assert_array_equal(out[:, 0], [-1, -1])


def test_hsv_jitter_with_zero_gains_keeps_the_image() -> None:
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    out = hsv_jitter(image, np.random.default_rng(0), (0.0, 0.0, 0.0))
    assert np.abs(out.astype(int) - image).max() <= 3  # HSV round trip rounding only
    assert out is not image


def test_an_unreadable_image_is_a_data_error_from_any_worker(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    sample = Sample(bad, 32, 32, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    batches = TrainBatches([sample], 32, 1)
    with pytest.raises(DataError, match="cannot read"):
        batches.batch(0, 0)
    with pytest.raises(DataError, match="cannot read"):
        list(iterate(batches, 0, workers=2))


def test_iterate_yields_every_batch_in_order(toy: Dataset) -> None:
    batches = TrainBatches(toy.train, 64, 2, shuffle=False)
    got = list(iterate(batches, 0, workers=2, prefetch=2))
    assert len(got) == 3
    np.testing.assert_array_equal(got[1][0], batches.batch(0, 1)[0])


def test_benchmark_reports_rates(toy: Dataset) -> None:
    stats = benchmark(TrainBatches(toy.train, 64, 2), steps=4, workers=2)
    assert stats["steps_per_s"] > 0 and stats["images_per_s"] == pytest.approx(
        2 * stats["steps_per_s"]
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hflip": 1.5}, "hflip"),
        ({"mosaic": -0.1}, "mosaic"),
        ({"scale": 1.0}, "scale"),
        ({"translate": 0.9}, "translate"),
        ({"hsv": (0.1, -1.0, 0.0)}, "hsv"),
    ],
)
def test_bad_augment_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Augment(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"imgsz": 16}, ValueError), ({"batch_size": 0}, ValueError), ({"max_boxes": 0}, ValueError)],
)
def test_bad_batch_settings(toy: Dataset, kwargs: dict, error: type) -> None:
    args = {"imgsz": 64, "batch_size": 2, **kwargs}
    with pytest.raises(error):
        TrainBatches(toy.train, **args)
    with pytest.raises(DataError):
        TrainBatches([], 64, 2)


def test_the_pipeline_imports_no_keras_or_tensorflow() -> None:
    import subprocess

    code = "import sys, edge.data.batches, edge.training; assert not {'keras', 'tensorflow'} & set(sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
