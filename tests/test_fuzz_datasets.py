"""Hostile dataset files: YOLO labels and data.yaml, COCO JSON and VOC XML, fuzzed with hypothesis.

Whatever the content, loading either works or fails cleanly: a DataError (or a ValueError) with a
one-line message, never another exception, never a hang, never a path outside the dataset folder.
The examples are the same on every run; for a longer, random hunt set EDGE_FUZZ_EXAMPLES=2000.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge.data.dataset import Dataset
from edge.data.load import load_dataset
from edge.errors import DataError

HUNT = os.environ.get("EDGE_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(HUNT or 150),
    deadline=3000,  # ms per example: generous for a loaded machine, still catches a hang
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=HUNT is None,  # the same examples on every run: CI failures reproduce
)
PNG = cv2.imencode(".png", np.full((24, 32, 3), 128, np.uint8))[1].tobytes()  # 32 x 24


def _clean(build: Callable[[Path], Path], skip_bad: bool) -> Dataset | None:
    """Build a dataset in a fresh folder and load it; only clean errors may come out."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        root.mkdir()
        target = build(root)
        try:
            ds = load_dataset(target, skip_bad=skip_bad)
        except (DataError, ValueError) as exc:
            message = str(exc)
            assert message.strip() and "\n" not in message, repr(message)
            return None
        for sample in (*ds.train, *ds.val):
            assert sample.image_path.resolve().is_relative_to(root.resolve())
            assert np.isfinite(sample.boxes).all()
            assert ((sample.class_ids >= 0) & (sample.class_ids < len(ds.names))).all()
        return ds


# --- YOLO ---------------------------------------------------------------------------------------

NASTY_NUMBERS = [
    "0", "1", "-1", "0.5", "1.0", "nan", "inf", "-inf", "1e18", "1e300", "1e999", "-0",
    "0x10", "1_0", "", "٣", "5e-324", "9" * 30,
]  # fmt: skip
token = st.one_of(
    st.sampled_from(NASTY_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.text(max_size=6),
)
label_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.lists(token, max_size=9).map(" ".join), max_size=6).map("\n".join),
)


def _yolo(label: str | bytes, names: bool) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        (root / "images").mkdir()
        (root / "labels").mkdir()
        for i in range(3):  # a split needs a few images
            (root / "images" / f"im{i}.png").write_bytes(PNG)
        (root / "labels" / "im1.txt").write_text("0 0.5 0.5 0.2 0.2\n")
        data = label if isinstance(label, bytes) else label.encode("utf-8", "surrogatepass")
        (root / "labels" / "im0.txt").write_bytes(data)
        if names:
            (root / "classes.txt").write_text("a\nb\n")
        return root

    return build


@FUZZ
@given(label=label_text, names=st.booleans(), skip_bad=st.booleans())
@example(label="1e18 0.5 0.5 0.1 0.1", names=False, skip_bad=False)  # 10^18 class names
@example(label="1e300 0.5 0.5 0.1 0.1", names=False, skip_bad=True)  # beyond int64
@example(label="0 nan 0.5 0.1 0.1", names=True, skip_bad=False)
@example(label="0 0.5 0.5 1e999 0.1", names=True, skip_bad=False)
def test_yolo_labels(label, names, skip_bad):
    _clean(_yolo(label, names), skip_bad)


@FUZZ
@given(data=st.binary(max_size=200), skip_bad=st.booleans())
@example(data=b"\xff\xfe0 0.5 0.5 0.1 0.1", skip_bad=False)
def test_yolo_label_bytes(data, skip_bad):
    _clean(_yolo(data, True), skip_bad)


path_text = st.one_of(
    st.sampled_from(
        [
            "images",
            "images/",
            "./images",
            "../images",
            "/etc",
            "/",
            "..",
            "x" * 300,
            "a\x00b",
            "images/../../x",
            "~",
            "",
            "train.txt",
            "C:\\windows",
        ]
    ),  # fmt: skip
    st.text(max_size=20),
)
yaml_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), path_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@FUZZ
@given(
    config=st.dictionaries(
        st.sampled_from(["path", "train", "val", "names", "nc", "test"]), yaml_value, max_size=5
    ),
    listing=st.text(max_size=100),
)
@example(config={"train": "x" * 300, "names": ["a"]}, listing="")
@example(config={"train": "train.txt", "names": ["a"]}, listing="../../../etc/passwd\n")
@example(config={"path": "/etc", "train": "images", "names": ["a"]}, listing="")
def test_yolo_data_yaml(config, listing):
    import yaml

    def build(root: Path) -> Path:
        _yolo("0 0.5 0.5 0.2 0.2", False)(root)
        (root / "train.txt").write_text(listing)
        (root / "data.yaml").write_text(yaml.safe_dump(config))
        return root / "data.yaml"

    _clean(build, False)


@FUZZ
@given(text=st.text(max_size=300))
@example(text="a: &a [*a]")  # a recursive alias
@example(text="train: !!python/object/apply:os.system ['echo hacked']")
def test_yolo_data_yaml_text(text):
    def build(root: Path) -> Path:
        _yolo("0 0.5 0.5 0.2 0.2", False)(root)
        (root / "data.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        return root / "data.yaml"

    _clean(build, False)


# --- COCO ---------------------------------------------------------------------------------------

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.sampled_from(["im0.png", "../im0.png", "/etc/passwd", "x" * 300, "a\x00b.png"]),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
small_id = st.one_of(st.integers(-2, 3), st.sampled_from(["1", 1.0, float("inf"), True, None]))


def _entry(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    return st.one_of(st.fixed_dictionaries({}, optional=fields), json_value)


coco_image = _entry(
    {
        "id": small_id,
        "file_name": json_leaf,
        "width": st.one_of(small_id, st.integers(0, 10**6)),
        "height": st.one_of(small_id, st.integers(0, 10**6)),
    }
)
coco_ann = _entry(
    {
        "id": small_id,
        "image_id": small_id,
        "category_id": small_id,
        "bbox": st.one_of(st.lists(json_leaf, max_size=5), json_value),
        "iscrowd": json_leaf,
    }
)
coco_cat = _entry({"id": small_id, "name": json_leaf})
number = st.one_of(
    st.integers(-5, 40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["3", None]),
)
# Near-valid documents reach the checks behind the first ones (boxes, ids, splits).
coco_near_valid = st.fixed_dictionaries(
    {
        "images": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.integers(1, 3),
                    "file_name": st.sampled_from(["im0.png", "im1.png", "im2.png", "gone.png"]),
                    "width": st.one_of(st.just(32), number),
                    "height": st.one_of(st.just(24), number),
                }
            ),
            min_size=1,
            max_size=4,
        ),
        "annotations": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.integers(0, 9),
                    "image_id": st.one_of(st.integers(1, 3), small_id),
                    "category_id": st.one_of(st.just(1), small_id),
                    "bbox": st.lists(number, min_size=3, max_size=5),
                },
                optional={"iscrowd": json_leaf},
            ),
            max_size=6,
        ),
        "categories": st.lists(
            st.fixed_dictionaries(
                {"id": st.one_of(st.integers(0, 3), small_id), "name": st.sampled_from("ab")}
            ),
            min_size=1,
            max_size=3,
        ),
    }
)
coco_doc = st.one_of(
    json_value,
    st.fixed_dictionaries(
        {
            "images": st.lists(coco_image, max_size=4),
            "annotations": st.lists(coco_ann, max_size=5),
            "categories": st.lists(coco_cat, max_size=3),
        }
    ),
    coco_near_valid,
)


def _coco(text: str) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        for i in range(3):
            (root / f"im{i}.png").write_bytes(PNG)
        (root / "ann.json").write_text(text, encoding="utf-8", errors="surrogatepass")
        return root / "ann.json"

    return build


@FUZZ
@given(doc=coco_doc, skip_bad=st.booleans())
@example(doc={"images": [1], "annotations": [], "categories": []}, skip_bad=False)
@example(
    doc={"images": [], "annotations": [], "categories": [{"id": float("inf"), "name": "a"}]},
    skip_bad=False,
)
@example(
    doc={
        "images": [{"id": 1, "file_name": "x" * 300, "width": 32, "height": 24}],
        "annotations": [],
        "categories": [{"id": 1, "name": "a"}],
    },
    skip_bad=True,
)
@example(
    doc={
        "images": [{"id": 1, "file_name": "../../../../etc/hostname"}],
        "annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 1, "name": "a"}],
    },
    skip_bad=False,
)
def test_coco_json(doc, skip_bad):
    _clean(_coco(json.dumps(doc)), skip_bad)


@FUZZ
@given(text=st.text(max_size=300))
@example(text="[" * 100_000)  # deep nesting
def test_coco_json_text(text):
    _clean(_coco(text), False)


# --- VOC ----------------------------------------------------------------------------------------

xml_text = st.one_of(
    st.sampled_from(NASTY_NUMBERS),
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=12),  # XML-legal
    st.text(max_size=12),
)


@st.composite
def voc_doc(draw: st.DrawFn) -> str:
    def tag(name: str, value: str | None) -> str:
        return "" if value is None else f"<{name}>{escape(value)}</{name}>"

    filename = draw(st.one_of(st.none(), st.sampled_from(["im0.png", "../im0.png", "x" * 300])))
    filename = draw(st.one_of(st.just(filename), xml_text))
    size = tag("width", draw(st.one_of(st.none(), xml_text))) + tag(
        "height", draw(st.one_of(st.none(), xml_text))
    )
    objects = ""
    for _ in range(draw(st.integers(0, 3))):
        box = "".join(
            tag(k, draw(st.one_of(st.none(), xml_text))) for k in ("xmin", "ymin", "xmax", "ymax")
        )
        objects += f"<object>{tag('name', draw(st.one_of(st.none(), xml_text)))}"
        objects += f"<bndbox>{box}</bndbox></object>"
    return f"<annotation>{tag('filename', filename)}<size>{size}</size>{objects}</annotation>"


def _voc(xml: str) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        (root / "annotations").mkdir()
        (root / "images").mkdir()
        for i in range(3):
            (root / "images" / f"im{i}.png").write_bytes(PNG)
        good = "<annotation><filename>im1.png</filename><object><name>a</name><bndbox>"
        good += "<xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>"
        (root / "annotations" / "im1.xml").write_text(good + "</annotation>")
        (root / "annotations" / "im0.xml").write_text(xml, encoding="utf-8", errors="surrogatepass")
        return root

    return build


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    "<annotation><filename>&lol2;</filename></annotation>"
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<annotation><filename>&xxe;</filename></annotation>"
)


@FUZZ
@given(xml=st.one_of(voc_doc(), st.text(max_size=300)), skip_bad=st.booleans())
@example(xml=BILLION_LAUGHS, skip_bad=True)
@example(xml=EXTERNAL_ENTITY, skip_bad=True)
@example(
    xml="<annotation><filename>im0.png</filename><size><width>1e999</width>"
    "<height>5</height></size></annotation>",
    skip_bad=False,
)
def test_voc_xml(xml, skip_bad):
    _clean(_voc(xml), skip_bad)


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, EXTERNAL_ENTITY])
def test_voc_refuses_entities(xml):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _voc(xml)(root)
        with pytest.raises(DataError, match="unsafe XML refused"):
            load_dataset(root)


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("coco", "../outside.png"),
        ("coco", "/tmp/outside.png"),
        ("voc", "../../outside.png"),  # VOC resolves names in images/
        ("voc", "/tmp/outside.png"),
        ("yolo", "../outside.png"),
    ],
)
def test_dataset_paths_cannot_leave_the_root(fmt, name):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        root.mkdir()
        (Path(tmp) / "outside.png").write_bytes(PNG)  # exists, but outside the dataset
        if fmt == "coco":
            doc = {
                "images": [{"id": 1, "file_name": name, "width": 32, "height": 24}],
                "annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}],
                "categories": [{"id": 1, "name": "a"}],
            }
            _coco(json.dumps(doc))(root)
        elif fmt == "voc":
            _voc(f"<annotation><filename>{name}</filename></annotation>")(root)
        else:
            _yolo("0 0.5 0.5 0.2 0.2", True)(root)
            (root / "train.txt").write_text(f"{name}\nimages/im0.png\n")
            (root / "data.yaml").write_text("train: train.txt\nnames: [a, b]\n")
        with pytest.raises(DataError, match="outside the dataset folder"):
            load_dataset(root)
