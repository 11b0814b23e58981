"""The dataset report: counts, per-class boxes and box-size spread worked out by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from data_builders import TINY, WRITERS, with_splits

from edge.data.inspect import SplitStats, Spread, inspect_dataset
from edge.errors import DataError

# TINY's boxes: widths 32, 30, 32 px of images 64, 64, 32 wide; heights 24, 26, 32 px of 48, 48, 32.
EXPECTED_SPREAD = {
    "width_px": Spread(30.0, 32.0, 32.0),
    "height_px": Spread(24.0, 26.0, 32.0),
    "width_fraction": Spread(30 / 64, 0.5, 1.0),
    "height_fraction": Spread(0.5, 26 / 48, 1.0),
}


@pytest.mark.parametrize("fmt", ["yolo", "coco", "voc"])
def test_report_numbers(tmp_path: Path, fmt: str) -> None:
    root = WRITERS[fmt](tmp_path / fmt, with_splits(TINY, val={"b"}))
    report = inspect_dataset(root)
    assert report.format == fmt
    assert report.names == ("cat", "dog")
    assert report.splits == {"train": SplitStats(2, 2, 1), "val": SplitStats(1, 1, 0)}
    assert report.boxes_per_class == {"cat": {"train": 1, "val": 0}, "dog": {"train": 1, "val": 1}}
    for field, expected in EXPECTED_SPREAD.items():
        got = getattr(report, field)
        assert (got.min, got.median, got.max) == pytest.approx(
            (expected.min, expected.median, expected.max), abs=1e-3
        ), field
    assert report.problems == ()
    text = report.to_text()
    assert ["total", "3", "3", "1"] in [line.split() for line in text.splitlines()]
    assert ["dog", "1", "1", "2"] in [line.split() for line in text.splitlines()]
    assert text.endswith("problems: none")
    assert json.loads(json.dumps(report.to_dict()))["splits"]["val"]["images"] == 1


def test_report_collects_every_problem(tmp_path: Path) -> None:
    root = WRITERS["yolo"](tmp_path)
    with open(root / "labels" / "a.txt", "a") as f:
        f.write("7 0.5 0.5 0.1 0.1\n0 0.5 0.5\n")
    (root / "labels" / "c.txt").write_text("0 2 2 0.1 0.1\n")
    with pytest.raises(DataError):  # a strict load stops at the first
        from edge.data import load_dataset

        load_dataset(root)
    report = inspect_dataset(root, val_fraction=0.0)
    assert [p.split(": ", 1)[0].rsplit("/", 1)[-1] for p in report.problems] == [
        "a.txt:3",
        "a.txt:4",
        "c.txt:1",
    ]
    assert report.splits["train"] == SplitStats(3, 3, 1)
    assert "problems: 3" in report.to_text()


def test_unreadable_dataset_still_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        inspect_dataset(tmp_path / "nothing")
