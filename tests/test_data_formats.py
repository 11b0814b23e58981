"""Reading YOLO, COCO and VOC into Dataset: hand-worked boxes, splits, every bad-data case."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from data_builders import (
    NAMES,
    TINY,
    WRITERS,
    Img,
    coco_json,
    voc_xml,
    with_splits,
    write_image,
)

from edge.data import Dataset, detect_format, load_dataset
from edge.data.common import split_samples
from edge.data.yolo import label_path, parse_line
from edge.errors import DataError

RACCOON = Path(__file__).parents[1] / ".." / "shared" / "datasets" / "raccoon"


def by_stem(dataset: Dataset) -> dict[str, tuple[list[list[float]], list[int], int, int]]:
    return {
        s.image_path.stem: (s.boxes.tolist(), s.class_ids.tolist(), s.width, s.height)
        for s in (*dataset.train, *dataset.val)
    }


# --- hand-worked conversions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "size", "expected"),
    [
        ("0 0.5 0.5 0.2 0.4", (100, 50), (0, (40.0, 15.0, 60.0, 35.0))),
        ("1 0.25 0.75 0.5 0.5", (64, 32), (1, (0.0, 16.0, 32.0, 32.0))),
        ("1.0 0.5 0.5 1 1", (10, 10), (1, (0.0, 0.0, 10.0, 10.0))),  # "1.0" is class 1
        # A pixel of overshoot is clipped: x from -0.32 to 64.32 in a 64-wide image.
        ("0 0.5 0.5 1.01 0.5", (64, 48), (0, (0.0, 12.0, 64.0, 36.0))),
        # A polygon line is read as its bounding box.
        ("1 0.1 0.2 0.5 0.1 0.3 0.6", (100, 100), (1, (10.0, 10.0, 50.0, 60.0))),
    ],
)
def test_yolo_line_to_pixel_xyxy(line: str, size: tuple[int, int], expected: tuple) -> None:
    class_id, box = parse_line(line, *size, num_classes=2, where="t.txt:1")
    assert class_id == expected[0]
    assert box == pytest.approx(expected[1], abs=1e-4)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.2", "t.txt:7: malformed label line '0 0.5 0.5 0.2'"),
        ("cat 0.5 0.5 0.2 0.2", "t.txt:7: malformed label line"),
        ("0 0.5 0.5 0.2 0.2 0.9", "t.txt:7: malformed label line"),
        ("0.5 0.5 0.5 0.2 0.2", "t.txt:7: class id '0.5' is not an integer"),
        ("2 0.5 0.5 0.2 0.2", "t.txt:7: class id 2 is out of range 0..1"),
        ("-1 0.5 0.5 0.2 0.2", "t.txt:7: class id -1 is out of range 0..1"),
        ("0 1.5 0.5 0.2 0.2", "t.txt:7: box (140, 40, 160, 60) lies outside the 100x100 image"),
        ("0 0.5 0.5 0 0.2", "t.txt:7: box (50, 40, 50, 60) has zero or negative size"),
        ("0 nan 0.5 0.2 0.2", "t.txt:7: box (nan, 40, nan, 60) has a non-finite coordinate"),
    ],
)
def test_yolo_bad_lines(line: str, message: str) -> None:
    with pytest.raises(DataError) as info:
        parse_line(line, 100, 100, num_classes=2, where="t.txt:7")
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("image", "label"),
    [
        ("d/images/train/x.jpg", "d/labels/train/x.txt"),
        ("images/a/images/y.png", "images/a/labels/y.txt"),  # the last `images` is replaced
        ("d/pics/z.jpeg", "d/pics/z.txt"),  # no images/ folder: next to the image
    ],
)
def test_yolo_label_path(image: str, label: str) -> None:
    assert label_path(Path(image)) == Path(label)


EXPECTED_TINY = {
    "a": ([[8, 6, 40, 30], [30, 20, 60, 46]], [0, 1], 64, 48),
    "b": ([[0, 0, 32, 32]], [1], 32, 32),
    "c": ([], [], 40, 20),
}


@pytest.mark.parametrize("fmt", ["yolo", "coco", "voc"])
def test_same_dataset_in_every_format_loads_the_same(tmp_path: Path, fmt: str) -> None:
    root = WRITERS[fmt](tmp_path / fmt)
    dataset = load_dataset(root, val_fraction=0.0)
    assert dataset.format == fmt
    assert dataset.names == NAMES
    assert dataset.problems == ()
    assert len(dataset.train) == 3 and dataset.val == ()
    got = by_stem(dataset)
    assert got.keys() == EXPECTED_TINY.keys()
    for stem, (boxes, ids, w, h) in EXPECTED_TINY.items():
        assert got[stem][2:] == (w, h)
        assert got[stem][1] == ids
        np.testing.assert_allclose(
            np.reshape(got[stem][0], (-1, 4)), np.reshape(boxes, (-1, 4)), atol=1e-3
        )
    sample = dataset.train[0]
    assert sample.boxes.dtype == np.float32 and sample.class_ids.dtype == np.int64


@pytest.mark.parametrize("fmt", ["yolo", "coco", "voc"])
def test_given_split_is_kept(tmp_path: Path, fmt: str) -> None:
    root = WRITERS[fmt](tmp_path / fmt, with_splits(TINY, val={"b"}))
    dataset = load_dataset(root)
    assert [s.image_path.stem for s in dataset.train] == ["a", "c"]
    assert [s.image_path.stem for s in dataset.val] == ["b"]


def test_yolo_folder_without_yaml_uses_classes_txt(tmp_path: Path) -> None:
    root = WRITERS["yolo"](tmp_path, with_splits(TINY, val={"a"}), data_yaml=False)
    (root / "classes.txt").write_text("cat\ndog\n")
    dataset = load_dataset(root)
    assert dataset.names == NAMES
    assert (len(dataset.train), len(dataset.val)) == (2, 1)


def test_yolo_folder_without_names_names_classes_by_id(tmp_path: Path) -> None:
    dataset = load_dataset(WRITERS["yolo"](tmp_path, data_yaml=False), val_fraction=0.0)
    assert dataset.names == ("0", "1")


def test_yolo_yaml_forms(tmp_path: Path) -> None:
    root = WRITERS["yolo"](tmp_path)
    (root / "list.txt").write_text("./images/a.jpg\nimages/b.jpg\n")
    (root / "data.yaml").write_text(
        "path: .\ntrain: list.txt\nval: [images/c.jpg]\nnames: {0: cat, 1: dog}\n"
    )
    dataset = load_dataset(root / "data.yaml")
    assert [s.image_path.stem for s in dataset.train] == ["a", "b"]
    assert [s.image_path.stem for s in dataset.val] == ["c"]
    assert dataset.names == NAMES


def test_voc_one_split_file_puts_the_rest_in_the_other(tmp_path: Path) -> None:
    root = WRITERS["voc"](tmp_path)
    (root / "val.txt").write_text("b\n")
    dataset = load_dataset(root)
    assert [s.image_path.stem for s in dataset.val] == ["b"]
    assert [s.image_path.stem for s in dataset.train] == ["a", "c"]


def test_voc_size_missing_is_read_from_the_image(tmp_path: Path) -> None:
    root = WRITERS["voc"](tmp_path)
    (root / "annotations" / "a.xml").write_text(voc_xml(TINY[0], size=False))
    assert by_stem(load_dataset(root, val_fraction=0.0))["a"][2:] == (64, 48)


def test_coco_roboflow_layout(tmp_path: Path) -> None:
    """train/_annotations.coco.json and valid/_annotations.coco.json, images beside them."""
    for split, folder in (("train", "train"), ("val", "valid")):
        part = [img for img in with_splits(TINY, val={"b"}) if img.split == split]
        for img in part:
            write_image(tmp_path / folder / f"{img.stem}.jpg", img.width, img.height)
        (tmp_path / folder / "_annotations.coco.json").write_text(json.dumps(coco_json(part)))
    dataset = load_dataset(tmp_path)
    assert dataset.format == "coco"
    assert [s.image_path for s in dataset.val] == [tmp_path / "valid" / "b.jpg"]
    assert by_stem(dataset)["a"][:2] == (EXPECTED_TINY["a"][0], [0, 1])


def test_coco_skips_crowd_and_maps_sparse_category_ids(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.jpg", 64, 48)
    (tmp_path / "ann.json").write_text(
        json.dumps(
            {
                "images": [{"id": 7, "file_name": "a.jpg", "width": 64, "height": 48}],
                "annotations": [
                    {"id": 1, "image_id": 7, "category_id": 90, "bbox": [1, 2, 10, 20]},
                    {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 5, 5], "iscrowd": 1},
                ],
                "categories": [{"id": 90, "name": "toothbrush"}, {"id": 3, "name": "car"}],
            }
        )
    )
    dataset = load_dataset(tmp_path / "ann.json", val_fraction=0.0)
    assert dataset.names == ("car", "toothbrush")  # in category id order
    assert by_stem(dataset)["a"][:2] == ([[1, 2, 11, 22]], [1])


# --- deterministic split --------------------------------------------------------------------------


def test_split_is_deterministic_with_exact_count(tmp_path: Path) -> None:
    images = [Img(f"im{i}", 16, 16, ((0, (1, 1, 9, 9)),)) for i in range(10)]
    root = WRITERS["yolo"](tmp_path, images)
    first = load_dataset(root, val_fraction=0.2, seed=3)
    again = load_dataset(root, val_fraction=0.2, seed=3)
    assert (len(first.train), len(first.val)) == (8, 2)
    assert [s.image_path for s in first.val] == [s.image_path for s in again.val]
    stems = sorted(s.image_path.stem for s in (*first.train, *first.val))
    assert stems == sorted(f"im{i}" for i in range(10))
    vals = {tuple(s.image_path.stem for s in load_dataset(root, seed=k).val) for k in range(5)}
    assert len(vals) > 1  # the seed matters


@pytest.mark.parametrize(
    ("n", "fraction", "n_val"), [(10, 0.2, 2), (10, 0.0, 0), (3, 0.1, 1), (2, 0.9, 1), (1, 0.5, 0)]
)
def test_split_counts(tmp_path: Path, n: int, fraction: float, n_val: int) -> None:
    from edge.data.dataset import Sample

    samples = [Sample(tmp_path / f"{i}.jpg", 8, 8, np.zeros((0, 4)), []) for i in range(n)]
    train, val = split_samples(samples, tmp_path, fraction, seed=0)
    assert (len(train), len(val)) == (n - n_val, n_val)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 2.0])
def test_bad_val_fraction(tmp_path: Path, fraction: float) -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        load_dataset(WRITERS["yolo"](tmp_path), val_fraction=fraction)


# --- bad data: strict raises naming the file, skip_bad skips and records ---------------------------


def _append(path: str, text: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        with open(root / path, "a") as f:
            f.write(text)

    return edit


def _write(path: str, text: str | bytes) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text)

    return edit


def _remove(path: str) -> Callable[[Path], None]:
    return lambda root: (root / path).unlink()


def _listed(*images: str) -> Callable[[Path], None]:
    """A data.yaml whose train entry is a list file naming `images`."""

    def edit(root: Path) -> None:
        (root / "list.txt").write_text("\n".join(images) + "\n")
        (root / "data.yaml").write_text("train: list.txt\nnames: [cat, dog]\n")

    return edit


def _coco_edit(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        data = json.loads((root / "annotations.json").read_text())
        change(data)
        (root / "annotations.json").write_text(json.dumps(data))

    return edit


def _voc_object(box: str, name: str = "cat") -> str:
    b = dict(zip(("xmin", "ymin", "xmax", "ymax"), box.split(), strict=True))
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in b.items())
    return f"<object><name>{name}</name><bndbox>{inner}</bndbox></object>"


def _voc_a(extra: str = "", filename: str = "a.jpg") -> Callable[[Path], None]:
    xml = voc_xml(TINY[0], filename=filename).replace("</annotation>", extra + "</annotation>")
    return _write("annotations/a.xml", xml)


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    "<annotation><filename>&lol2;</filename></annotation>"
)

# (id, format, edit, message the strict load starts with (after the root), (images, boxes) kept
# with skip_bad, problems recorded with skip_bad). TINY has 3 images and 3 boxes.
BAD = [
    (
        "yolo-short-line",
        "yolo",
        _append("labels/a.txt", "0 0.5 0.5 0.2\n"),
        "labels/a.txt:3: malformed label line",
        (3, 3),
        1,
    ),
    (
        "yolo-class-range",
        "yolo",
        _append("labels/b.txt", "2 0.5 0.5 0.2 0.2\n"),
        "labels/b.txt:2: class id 2 is out of range 0..1",
        (3, 3),
        1,
    ),
    # Issue 18: numbers that fit no class id, float or image (a traceback before).
    (
        "yolo-class-beyond-int64",
        "yolo",
        _append("labels/b.txt", "99999999999999999999 0.5 0.5 0.2 0.2\n"),
        "labels/b.txt:2: class id 100000000000000000000 is out of range 0..1",
        (3, 3),
        1,
    ),
    (
        "yolo-class-nan",
        "yolo",
        _append("labels/b.txt", "nan 0.5 0.5 0.2 0.2\n"),
        "labels/b.txt:2: class id 'nan' is not an integer",
        (3, 3),
        1,
    ),
    (
        "yolo-class-inf",
        "yolo",
        _append("labels/b.txt", "1" + "0" * 400 + " 0.5 0.5 0.2 0.2\n"),
        "labels/b.txt:2: class id '10000000000000000000' is not an integer",
        (3, 3),
        1,
    ),
    (
        "coco-bbox-beyond-float",
        "coco",
        _coco_edit(lambda d: d["annotations"][0].update(bbox=[10**400, 1, 2, 3])),
        "annotations.json: annotation 1: bbox must be numbers that fit a float",
        (3, 2),
        1,
    ),
    (
        "coco-size-huge",
        "coco",
        _coco_edit(lambda d: d["images"][1].update(width=10**30)),
        "annotations.json: image 2: image size 1000000000000000000000000000000x",
        (2, 2),
        1,
    ),
    (
        "voc-size-huge",
        "voc",
        _write(
            "annotations/b.xml",
            voc_xml(TINY[1]).replace(
                f"<width>{TINY[1].width}</width>", "<width>99999999999999999999</width>"
            ),
        ),
        "annotations/b.xml: <size>: image size 100000000000000000000x",
        (2, 2),
        1,
    ),
    (
        "voc-box-huge",
        "voc",
        _voc_a(_voc_object("1 2 1" + "0" * 400 + " 4")),
        "annotations/a.xml: object 3: box (1, 2, inf, 4) has a non-finite coordinate",
        (3, 3),
        1,
    ),
    (
        "yolo-outside",
        "yolo",
        _append("labels/b.txt", "0 0.5 1.5 0.2 0.2\n"),
        "labels/b.txt:2: box (12.8, 44.8, 19.2, 51.2) lies outside the 32x32 image",
        (3, 3),
        1,
    ),
    (
        "yolo-two-bad-lines",
        "yolo",
        _append("labels/a.txt", "x\n\n0 0.5 0.5 0.2 9\n"),
        "labels/a.txt:3: malformed label line 'x'",
        (3, 3),
        2,
    ),
    (
        "yolo-unreadable-image",
        "yolo",
        _write("images/b.jpg", b"not a jpeg"),
        "images/b.jpg: unreadable image",
        (2, 2),
        1,
    ),
    (
        "yolo-listed-image-missing",
        "yolo",
        _write("data.yaml", "train: [images/a.jpg, images/zz.jpg]\nnames: [cat, dog]\n"),
        "images/zz.jpg: image file is missing",
        (1, 2),
        1,
    ),
    (
        "yolo-listed-image-escapes",
        "yolo",
        _listed("images/a.jpg", "../../etc/passwd"),
        "list.txt:2: image path '../../etc/passwd' points outside the dataset folder",
        None,
        None,
    ),
    (
        "coco-image-missing",
        "coco",
        _remove("images/b.jpg"),
        "annotations.json: image 2: image file",
        (2, 2),
        1,
    ),
    (
        "coco-outside",
        "coco",
        _coco_edit(lambda d: d["annotations"][0].update(bbox=[50, 10, 30, 10])),
        "annotations.json: annotation 1: box (50, 10, 80, 20) lies outside the 64x48 image",
        (3, 2),
        1,
    ),
    (
        "coco-category",
        "coco",
        _coco_edit(lambda d: d["annotations"][0].update(category_id=9)),
        "annotations.json: annotation 1: category id 9 is not among the categories",
        (3, 2),
        1,
    ),
    (
        "coco-bbox-shape",
        "coco",
        _coco_edit(lambda d: d["annotations"][1].update(bbox=[1, 2, 3])),
        "annotations.json: annotation 2: bbox must be [x, y, width, height]",
        (3, 2),
        1,
    ),
    (
        "coco-image-id",
        "coco",
        _coco_edit(lambda d: d["annotations"][2].update(image_id=99)),
        "annotations.json: annotation 3: image id 99 is not among the images",
        (3, 2),
        1,
    ),
    (
        "coco-escape-dotdot",
        "coco",
        _coco_edit(lambda d: d["images"][1].update(file_name="../../b.jpg")),
        "annotations.json: image 2: image path '../../b.jpg' points outside the dataset folder",
        (2, 2),
        1,
    ),
    (
        "coco-escape-absolute",
        "coco",
        _coco_edit(lambda d: d["images"][1].update(file_name="/etc/passwd")),
        "annotations.json: image 2: image path '/etc/passwd' points outside the dataset folder",
        (2, 2),
        1,
    ),
    (
        "voc-image-missing",
        "voc",
        _remove("images/b.jpg"),
        "annotations/b.xml: image file",
        (2, 2),
        1,
    ),
    (
        "voc-outside",
        "voc",
        _voc_a(_voc_object("10 10 70 20")),
        "annotations/a.xml: object 3: box (10, 10, 70, 20) lies outside the 64x48 image",
        (3, 3),
        1,
    ),
    ("voc-overshoot-clipped", "voc", _voc_a(_voc_object("0 0 65 49")), None, (3, 4), 0),
    (
        "voc-bad-number",
        "voc",
        _voc_a(_voc_object("1 2 x 4")),
        "annotations/a.xml: object 3: <bndbox> needs numeric",
        (3, 3),
        1,
    ),
    (
        "voc-no-name",
        "voc",
        _voc_a(_voc_object("1 2 3 4", name="")),
        "annotations/a.xml: object 3: object without a <name>",
        (3, 3),
        1,
    ),
    (
        "voc-malformed-xml",
        "voc",
        _write("annotations/b.xml", "<annotation><filename>"),
        "annotations/b.xml: malformed XML",
        (2, 2),
        1,
    ),
    (
        "voc-entity-expansion",
        "voc",
        _write("annotations/b.xml", BILLION_LAUGHS),
        "annotations/b.xml: unsafe XML refused",
        (2, 2),
        1,
    ),
    (
        "voc-escape",
        "voc",
        _voc_a(filename="../../../a.jpg"),
        "annotations/a.xml: image path '../../../a.jpg' points outside the dataset folder",
        (2, 1),
        1,
    ),
    (
        "voc-unlisted-class",
        "voc",
        _write("classes.txt", "cat\n"),
        "images/a.jpg: object 2: class 'dog' is not listed",
        (3, 1),
        2,
    ),
    (
        "voc-split-names-missing",
        "voc",
        _write("train.txt", "a\nb\nc\nzz\n"),
        "train.txt:4: no usable annotation for 'zz'",
        (3, 3),
        1,
    ),
]


@pytest.mark.parametrize(
    ("fmt", "edit", "message", "kept", "n_problems"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_data_strict(
    tmp_path: Path, fmt: str, edit: Callable, message: str | None, kept: object, n_problems: object
) -> None:
    root = WRITERS[fmt](tmp_path / "ds")
    edit(root)
    if message is None:
        load_dataset(root, val_fraction=0.0)  # nothing wrong
        return
    with pytest.raises(DataError) as info:
        load_dataset(root, val_fraction=0.0)
    text = str(info.value)
    assert text.startswith(f"{root}/{message}"), text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("fmt", "edit", "message", "kept", "n_problems"),
    [case[1:] for case in BAD if case[4] is not None],
    ids=[case[0] for case in BAD if case[4] is not None],
)
def test_bad_data_skipped(
    tmp_path: Path,
    fmt: str,
    edit: Callable,
    message: str | None,
    kept: tuple[int, int],
    n_problems: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = WRITERS[fmt](tmp_path / "ds")
    edit(root)
    dataset = load_dataset(root, skip_bad=True, val_fraction=0.0)
    samples = (*dataset.train, *dataset.val)
    assert (len(samples), sum(len(s.boxes) for s in samples)) == kept
    assert len(dataset.problems) == n_problems
    if message is not None:
        assert dataset.problems[0].startswith(f"{root}/{message}")
        assert "skipped" in caplog.text


def test_overshoot_is_clipped(tmp_path: Path) -> None:
    root = WRITERS["voc"](tmp_path)
    _voc_a(_voc_object("0 0 65 49"))(root)
    boxes = by_stem(load_dataset(root, val_fraction=0.0))["a"][0]
    assert boxes[-1] == [0, 0, 64, 48]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda root: None, "no such file or folder"),
        (lambda root: _write("notes.md", "hi")(root), "unknown dataset format"),
        (lambda root: _write("data.csv", "a,b")(root), "unknown dataset format"),
        (
            lambda root: ((root / "images").mkdir(parents=True), (root / "labels").mkdir()),
            "no usable images found",
        ),
        (lambda root: WRITERS["yolo"](root, [Img("x", 8, 8, ())]), "1 images but not one box"),
        (lambda root: _write("data.yaml", "train: [")(root), "data.yaml: cannot read YAML"),
        (
            lambda root: _write("data.yaml", "train: ../elsewhere\nnames: [a]\n")(root),
            "data.yaml: train: image path '../elsewhere' points outside the dataset folder",
        ),
        (lambda root: _write("data.yaml", "names: [a]\n")(root), "data.yaml: no 'train' entry"),
        (
            lambda root: _write("data.yaml", "train: images\nnames: []\n")(root),
            "data.yaml: 'names' must be a non-empty list",
        ),
        (lambda root: _write("a.json", "{}")(root), "a.json: not a COCO detection file"),
    ],
    ids=[
        "missing",
        "unknown",
        "unknown-file-ext",
        "empty",
        "no-boxes",
        "bad-yaml",
        "yaml-escape",
        "yaml-no-train",
        "yaml-no-names",
        "not-coco",
    ],
)
def test_unusable_datasets_raise_even_with_skip_bad(
    tmp_path: Path, build: Callable, message: str
) -> None:
    root = tmp_path / "ds"
    build(root)
    with pytest.raises(DataError) as info:
        load_dataset(root, skip_bad=True)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_all_bad_names_the_first_problem(tmp_path: Path) -> None:
    root = WRITERS["yolo"](tmp_path, TINY[:1])
    _write("images/a.jpg", b"junk")(root)
    with pytest.raises(
        DataError, match=r"no usable images found \(1 skipped as bad, first: .*a.jpg"
    ):
        load_dataset(root, skip_bad=True)


def test_all_labels_bad_names_the_first_problem(tmp_path: Path) -> None:
    # "not one box" alone did not say why (edge data inspect printed nothing else).
    root = WRITERS["yolo"](tmp_path, TINY[:1])
    _write("labels/a.txt", "nan 0.5 0.5 0.2 0.2\n")(root)
    with pytest.raises(
        DataError, match=r"not one box \(1 skipped as bad, first: .*a.txt:1: class id 'nan'"
    ):
        load_dataset(root, skip_bad=True)


@pytest.mark.parametrize(
    ("files", "fmt"),
    [
        (["data.yaml"], "yolo"),
        (["annotations/x.xml"], "voc"),
        (["annotations/instances_train.json"], "coco"),
        (["train/_annotations.coco.json"], "coco"),
        (["images/", "labels/"], "yolo"),
        (["data.yaml", "annotations/x.xml"], "yolo"),  # data.yaml wins
    ],
)
def test_detect_format(tmp_path: Path, files: list[str], fmt: str) -> None:
    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            path.mkdir(exist_ok=True)
        else:
            path.write_text("")
    assert detect_format(tmp_path) == fmt


# --- the real photos -------------------------------------------------------------------------------


@pytest.mark.slow
def test_raccoon_voc() -> None:
    if not RACCOON.is_dir():
        pytest.skip(f"{RACCOON} not present")
    dataset = load_dataset(RACCOON)
    assert dataset.format == "voc"
    assert dataset.names == ("raccoon",)
    assert (len(dataset.train), len(dataset.val)) == (160, 40)
    assert sum(len(s.boxes) for s in (*dataset.train, *dataset.val)) == 217
    assert dataset.problems == ()
    first = {s.image_path.name: s for s in dataset.train}["raccoon-1.jpg"]
    assert (first.width, first.height) == (650, 417)
    assert first.boxes.tolist() == [[81, 88, 522, 408]]


@pytest.mark.parametrize("pillow", [True, False])
@pytest.mark.parametrize(("orientation", "size"), [(1, (40, 20)), (6, (20, 40))])
def test_image_size_is_the_decoded_size(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pillow: bool,
    orientation: int,
    size: tuple[int, int],
) -> None:
    image_module = pytest.importorskip("PIL.Image")
    import cv2

    from edge.data.common import image_size

    path = tmp_path / "x.jpg"
    exif = image_module.Exif()
    exif[0x0112] = orientation  # 6: stored 40x20, shown rotated by 90 degrees
    image_module.new("RGB", (40, 20)).save(path, exif=exif.tobytes())
    if not pillow:
        monkeypatch.setitem(sys.modules, "PIL", None)
    assert image_size(path) == size
    decoded = cv2.imread(str(path))
    assert (decoded.shape[1], decoded.shape[0]) == size
