"""The synthetic dataset: layout, labels equal to the renderer's boxes, determinism, bad arguments."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.data import load_dataset
from edge.data.synth import _LogBar, _progress_bar, image_seed, write_synthetic, yolo_lines
from edge.errors import DataError
from edge.sources.synthetic import CLASS_NAMES, render_still


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_layout_and_labels_match_the_renderer(tmp_path: Path) -> None:
    yaml_path = write_synthetic(tmp_path / "s", images=5, seed=3, imgsz=64, val_fraction=0.4)
    assert yaml_path == tmp_path / "s" / "data.yaml"
    names = sorted(files_of(tmp_path / "s"))
    assert names == [
        "data.yaml",
        *(f"images/train/00000{i}.jpg" for i in range(3)),
        *(f"images/val/00000{i}.jpg" for i in (3, 4)),
        *(f"labels/train/00000{i}.txt" for i in range(3)),
        *(f"labels/val/00000{i}.txt" for i in (3, 4)),
    ]  # and no temporary files left behind
    dataset = load_dataset(yaml_path)
    assert dataset.names == CLASS_NAMES
    assert (len(dataset.train), len(dataset.val)) == (3, 2)
    for i, sample in enumerate((*dataset.train, *dataset.val)):
        frame = render_still(image_seed(3, i), 64, 64)
        assert (sample.width, sample.height) == (64, 64)
        np.testing.assert_allclose(sample.boxes, frame.boxes, atol=1e-3)
        np.testing.assert_array_equal(sample.class_ids, frame.class_ids)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    write_synthetic(tmp_path / "one", images=3, seed=7, imgsz=48)
    write_synthetic(tmp_path / "two", images=3, seed=7, imgsz=48)
    write_synthetic(tmp_path / "other", images=3, seed=8, imgsz=48)
    assert files_of(tmp_path / "one") == files_of(tmp_path / "two")
    assert files_of(tmp_path / "one") != files_of(tmp_path / "other")


@pytest.mark.parametrize(
    ("boxes", "ids", "size", "text"),
    [
        ([[0, 0, 32, 16]], [2], (64, 32), "2 0.250000 0.250000 0.500000 0.500000\n"),
        ([[-4, 8, 64, 40]], [0], (64, 32), "0 0.500000 0.625000 1.000000 0.750000\n"),  # clipped
        ([[5, 5, 5, 9]], [1], (64, 32), ""),  # zero width: dropped
        (np.zeros((0, 4)), [], (64, 32), ""),
    ],
)
def test_yolo_lines(boxes: list, ids: list, size: tuple[int, int], text: str) -> None:
    assert yolo_lines(np.asarray(boxes, np.float32), np.asarray(ids), *size) == text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"images": 0}, "images must be at least 1"),
        ({"images": 2, "imgsz": 16}, "imgsz must be in 32..4096"),
        ({"images": 2, "seed": -1}, "seed must be non-negative"),
        ({"images": 2, "val_fraction": 1.0}, r"val_fraction must be in \[0, 1\)"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_synthetic(tmp_path / "s", **kwargs)


def test_refuses_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        write_synthetic(tmp_path, images=1, imgsz=32)


def test_progress_falls_back_to_logging(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if tqdm were not installed
    bar = _progress_bar(20, enabled=True)
    assert isinstance(bar, _LogBar)
    with caplog.at_level(logging.INFO, logger="edge.data.synth"):
        for _ in range(20):
            bar.update(1)
    assert caplog.messages[0] == "synth: 2/20 images"
    assert caplog.messages[-1] == "synth: 20/20 images"
    assert len(caplog.messages) == 10
