"""Writers of tiny datasets in YOLO, COCO and VOC layout, for the data tests.

`TINY` is one dataset with boxes chosen so the YOLO numbers are exact fractions; every writer
produces the same images and boxes, so all three formats must load to the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

NAMES = ("cat", "dog")


@dataclass(frozen=True)
class Img:
    """A test image: file stem, size, (class id, pixel xyxy) boxes, and split (None: unsplit)."""

    stem: str
    width: int
    height: int
    boxes: tuple[tuple[int, tuple[float, float, float, float]], ...]
    split: str | None = None


TINY = (
    Img("a", 64, 48, ((0, (8, 6, 40, 30)), (1, (30, 20, 60, 46)))),
    Img("b", 32, 32, ((1, (0, 0, 32, 32)),)),
    Img("c", 40, 20, ()),  # an image without boxes
)


def with_splits(images: Sequence[Img], val: set[str]) -> tuple[Img, ...]:
    return tuple(
        Img(i.stem, i.width, i.height, i.boxes, "val" if i.stem in val else "train") for i in images
    )


def write_image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((height, width, 3), 127, np.uint8)
    assert cv2.imwrite(str(path), image)


def _sub(img: Img) -> str:
    return f"{img.split}/" if img.split else ""


def write_yolo(root: Path, images: Sequence[Img] = TINY, data_yaml: bool = True) -> Path:
    """images/[split/]stem.jpg + labels/[split/]stem.txt (+ data.yaml with names)."""
    for img in images:
        write_image(root / "images" / f"{_sub(img)}{img.stem}.jpg", img.width, img.height)
        label = root / "labels" / f"{_sub(img)}{img.stem}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        for cls, (x1, y1, x2, y2) in img.boxes:
            cx, cy = (x1 + x2) / 2 / img.width, (y1 + y2) / 2 / img.height
            w, h = (x2 - x1) / img.width, (y2 - y1) / img.height
            lines.append(f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
        label.write_text("".join(lines))
    if data_yaml:
        split = any(img.split for img in images)
        train, val = ("images/train", "images/val") if split else ("images", "")
        text = f"train: {train}\nnames: [{', '.join(NAMES)}]\n"
        (root / "data.yaml").write_text(text + (f"val: {val}\n" if val else ""))
    return root


def coco_json(images: Sequence[Img], prefix: str = "") -> dict:
    anns = []
    for image_id, img in enumerate(images, start=1):
        for cls, (x1, y1, x2, y2) in img.boxes:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cls + 1,  # COCO ids are 1-based
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "iscrowd": 0,
                }
            )
    return {
        "images": [
            {
                "id": i,
                "file_name": f"{prefix}{img.stem}.jpg",
                "width": img.width,
                "height": img.height,
            }
            for i, img in enumerate(images, start=1)
        ],
        "annotations": anns,
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(NAMES)],
    }


def write_coco(root: Path, images: Sequence[Img] = TINY) -> Path:
    """Unsplit: annotations.json + images/. Split: annotations/instances_<split>.json + <split>/."""
    if not any(img.split for img in images):
        for img in images:
            write_image(root / "images" / f"{img.stem}.jpg", img.width, img.height)
        (root / "annotations.json").write_text(json.dumps(coco_json(images)))
        return root
    for split in ("train", "val"):
        part = [img for img in images if img.split == split]
        for img in part:
            write_image(root / split / f"{img.stem}.jpg", img.width, img.height)
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco_json(part)))
    return root


def voc_xml(img: Img, filename: str | None = None, size: bool = True) -> str:
    objects = "".join(
        f"<object><name>{NAMES[cls]}</name><difficult>0</difficult><bndbox>"
        f"<xmin>{x1:g}</xmin><ymin>{y1:g}</ymin><xmax>{x2:g}</xmax><ymax>{y2:g}</ymax>"
        "</bndbox></object>"
        for cls, (x1, y1, x2, y2) in img.boxes
    )
    size_xml = (
        f"<size><width>{img.width}</width><height>{img.height}</height><depth>3</depth></size>"
        if size
        else ""
    )
    name = filename if filename is not None else f"{img.stem}.jpg"
    return f"<annotation><filename>{name}</filename>{size_xml}{objects}</annotation>"


def write_voc(root: Path, images: Sequence[Img] = TINY) -> Path:
    """images/stem.jpg + annotations/stem.xml (+ train.txt / val.txt when split)."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for img in images:
        write_image(root / "images" / f"{img.stem}.jpg", img.width, img.height)
        (root / "annotations" / f"{img.stem}.xml").write_text(voc_xml(img))
    for split in ("train", "val"):
        stems = [img.stem for img in images if img.split == split]
        if stems:
            (root / f"{split}.txt").write_text("\n".join(stems) + "\n")
    return root


WRITERS = {"yolo": write_yolo, "coco": write_coco, "voc": write_voc}
