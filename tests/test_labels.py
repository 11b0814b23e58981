from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.data.yolo import parse_line
from edge.errors import DataError
from edge.sources.labels import is_image, label_path, list_images, parse_label_line, read_truth


@pytest.mark.parametrize(
    ("line", "cls", "box"),
    [
        ("0 0.5 0.5 0.2 0.4", 0, [80, 60, 120, 140]),  # 200x200 image: cx cy w h
        ("2 0.1 0.1 0.3 0.1 0.3 0.5 0.1 0.5", 2, [20, 20, 60, 100]),  # polygon: bounding box
        ("1  0.5 0.5 1 1 ", 1, [0, 0, 200, 200]),  # extra spaces
    ],
)
def test_one_parser_for_run_and_data(line, cls, box):
    got_cls, got_box = parse_label_line(line, 200, 200)
    assert got_cls == cls and got_box.tolist() == pytest.approx(box)
    data_cls, data_box = parse_line(line, 200, 200, 3, "t.txt:1")  # edge/data reads it the same
    assert data_cls == cls and list(data_box) == pytest.approx(box)


@pytest.mark.parametrize("line", ["0 0.5 0.5 0.2", "cat 0.5 0.5 0.2 0.2", "0 1 2 3 4 5"])
def test_malformed_lines(line):
    with pytest.raises(ValueError, match="malformed label line"):
        parse_label_line(line, 10, 10)
    with pytest.raises(DataError, match="t.txt:7: malformed label line"):
        parse_line(line, 10, 10, None, "t.txt:7")


def test_read_truth_keeps_good_lines_and_polygons(tmp_path: Path, caplog):
    label = tmp_path / "a.txt"
    label.write_text("0 0.5 0.5 0.5 0.5\nbad line\n1 0 0 0.5 0 0.5 0.5\n-1 0.5 0.5 0.1 0.1\n\n")
    truth = read_truth(label, 100, 50)
    assert truth is not None and truth.class_id.tolist() == [0, 1]
    np.testing.assert_allclose(truth.xyxy, [[25, 12.5, 75, 37.5], [0, 0, 50, 25]])
    assert "a.txt:2" in caplog.text and "a.txt:4" in caplog.text
    assert read_truth(tmp_path / "missing.txt", 10, 10) is None


def test_read_truth_skips_numbers_that_fit_no_class_or_box(tmp_path: Path, caplog):
    # Live accuracy reads these: a class id beyond int64 crashed it; nan boxes were scored.
    label = tmp_path / "a.txt"
    lines = [
        "99999999999999999999 0.5 0.5 0.5 0.5",
        "nan 0.5 0.5 0.5 0.5",
        "inf 0.5 0.5 0.5 0.5",
        "10000 0.5 0.5 0.5 0.5",
        "0 nan 0.5 0.5 0.5",
        "0 1e400 0.5 0.5 0.5",
        "1 0.5 0.5 0.5 0.5",
    ]
    label.write_text("\n".join(lines) + "\n")
    truth = read_truth(label, 100, 50)
    assert truth is not None and truth.class_id.tolist() == [1]
    for number in range(1, 7):
        assert f"a.txt:{number}: " in caplog.text
    assert "class id 100000000000000000000 is out of range 0..9999" in caplog.text
    assert "a.txt:5: box has a non-finite coordinate" in caplog.text


@pytest.mark.parametrize("line", ["nan 0.5 0.5 0.2 0.2", "inf 0.5 0.5 0.2 0.2", "0.5 1 1 1 1"])
def test_a_class_id_that_is_not_a_whole_number_is_refused(line):
    with pytest.raises(ValueError, match="is not an integer"):
        parse_label_line(line, 10, 10)


def test_image_listing_and_label_paths(tmp_path: Path):
    for name in ("b.PNG", "a.jpg", "c.txt", "d.webp"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "d.webp"]
    assert is_image(Path("x.TIFF")) and not is_image(Path("x.gif"))
    assert label_path(Path("d/images/train/a.jpg")) == Path("d/labels/train/a.txt")
