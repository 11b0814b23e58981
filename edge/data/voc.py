"""Reads Pascal VOC datasets: one XML per image in `annotations/`, the images in `images/`.

Coordinates are taken as written: VOC's 1-based `xmin ymin xmax ymax` become the pixel corners
`x1 y1 x2 y2` unchanged (the half-pixel shift is below labelling noise, and it keeps `xmax == width`
inside the image). `difficult` objects are kept as ordinary boxes. Splits come from `train.txt` /
`val.txt` (in the root or `ImageSets/Main/`), one annotation stem a line; with one list only, the
other images form the other split; with none, the split is deterministic (see `split_samples`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge.data.common import (
    IMAGE_SUFFIXES,
    Problems,
    build_dataset,
    check_box,
    check_declared_size,
    check_val_fraction,
    image_size,
    inside_root,
    require_image,
    split_samples,
)
from edge.data.dataset import Dataset, Sample
from edge.errors import (
    ANNOTATION_BYTES,
    CONFIG_BYTES,
    LIST_BYTES,
    DataError,
    read_bounded,
    read_text_bounded,
)

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

logger = logging.getLogger(__name__)

ANNOTATION_DIRS = ("annotations", "Annotations")
IMAGE_DIRS = ("images", "JPEGImages")
SPLIT_DIRS = (".", "ImageSets/Main")
NAMES_FILES = ("classes.txt", "labels.txt")


@dataclass(frozen=True)
class _Record:
    """One parsed annotation file; objects are (class name, pixel xyxy box)."""

    stem: str
    image: Path
    width: int
    height: int
    objects: tuple[tuple[str, tuple[float, float, float, float]], ...]


def find_annotation_dir(folder: Path) -> Path | None:
    for name in ANNOTATION_DIRS:
        d = folder / name
        if d.is_dir() and any(d.glob("*.xml")):
            return d
    return None


def read_voc(
    path: str | Path, *, skip_bad: bool = False, val_fraction: float = 0.2, seed: int = 0
) -> Dataset:
    """Read a Pascal VOC folder. Raises DataError for bad data, ValueError for bad arguments."""
    check_val_fraction(val_fraction)
    root = Path(path)
    annotation_dir = find_annotation_dir(root)
    if annotation_dir is None:
        raise DataError(f"{root}: no annotations/*.xml found")
    image_dir = next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), root)
    problems = Problems(skip_bad)
    records: list[_Record] = []
    skipped: set[str] = set()  # stems already reported as bad
    for xml_path in sorted(annotation_dir.glob("*.xml")):
        try:
            records.append(_parse(xml_path, root, image_dir, problems))
        except DataError as exc:
            problems.add(exc)
            skipped.add(xml_path.stem)
    names = _names(root, records)
    samples = {r.stem: _sample(r, names, problems) for r in records}
    train, val = _split(root, samples, skipped, problems, val_fraction, seed)
    return build_dataset(root, "voc", names, train, val, problems)


def _names(root: Path, records: list[_Record]) -> tuple[str, ...]:
    """Class names from classes.txt if present, else every name used, sorted."""
    for name in NAMES_FILES:
        if (root / name).exists():
            text = read_text_bounded(root / name, CONFIG_BYTES, str(root / name), DataError)
            lines = text.splitlines()
            return tuple(line.strip() for line in lines if line.strip())
    return tuple(sorted({name for r in records for name, _ in r.objects}))


def _sample(record: _Record, names: tuple[str, ...], problems: Problems) -> Sample:
    index = {name: i for i, name in enumerate(names)}
    boxes, ids = [], []
    for number, (name, box) in enumerate(record.objects, start=1):
        if name not in index:
            problems.add(
                DataError(f"{record.image}: object {number}: class {name!r} is not listed")
            )
            continue
        boxes.append(box)
        ids.append(index[name])
    return Sample(record.image, record.width, record.height, boxes, ids)


def _parse(xml_path: Path, root: Path, image_dir: Path, problems: Problems) -> _Record:
    annotation = _load_xml(xml_path)
    image = _image_path(annotation.findtext("filename"), xml_path, root, image_dir)
    width, height = (
        _int(annotation.findtext("size/width")),
        _int(annotation.findtext("size/height")),
    )
    if width > 0 and height > 0:
        check_declared_size(width, height, f"{xml_path}: <size>")
        require_image(image, str(xml_path))
    else:  # VOC files written by some tools leave the size out or zero
        width, height = image_size(image)
    objects = []
    for number, obj in enumerate(annotation.findall("object"), start=1):
        where = f"{xml_path}: object {number}"
        try:
            objects.append(_object(obj, width, height, where))
        except DataError as exc:
            problems.add(exc)
    return _Record(xml_path.stem, image, width, height, tuple(objects))


def _load_xml(xml_path: Path) -> Element:
    try:
        from defusedxml import DefusedXmlException
        from defusedxml.ElementTree import ParseError, fromstring
    except ImportError:
        raise DataError("reading VOC XML needs defusedxml: pip install 'edge[train]'") from None
    try:
        return fromstring(read_bounded(xml_path, ANNOTATION_BYTES, str(xml_path), DataError))
    except ParseError as exc:
        raise DataError(f"{xml_path}: malformed XML ({exc})") from None
    except DefusedXmlException as exc:
        raise DataError(f"{xml_path}: unsafe XML refused ({type(exc).__name__})") from None
    except FileNotFoundError:
        raise DataError(f"{xml_path}: no such file (removed while the set was read?)") from None


def _image_path(filename: str | None, xml_path: Path, root: Path, image_dir: Path) -> Path:
    where = str(xml_path)
    if filename and filename.strip():
        image = inside_root(root, image_dir, filename, where)
        if image.is_file() or image.suffix.lower() in IMAGE_SUFFIXES:
            return image
    # No filename, or one without an extension: look for an image named like the XML.
    stem = Path(filename.strip()).stem if filename and filename.strip() else xml_path.stem
    for suffix in (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG", ".bmp"):
        candidate = image_dir / f"{stem}{suffix}"
        if candidate.is_file():
            return inside_root(root, image_dir, candidate.name, where)
    raise DataError(f"{xml_path}: no image found for it in {image_dir}")


def _int(text: str | None) -> int:
    try:
        return int(float(text)) if text is not None else 0
    except (ValueError, OverflowError):  # "nan", "1e999": no usable size
        return 0


def _object(
    obj: Element, width: int, height: int, where: str
) -> tuple[str, tuple[float, float, float, float]]:
    name = (obj.findtext("name") or "").strip()
    if not name:
        raise DataError(f"{where}: object without a <name>")
    try:
        values = [float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
    except (TypeError, ValueError):
        raise DataError(f"{where}: <bndbox> needs numeric xmin, ymin, xmax, ymax") from None
    return name, check_box(values, width, height, where)


def _split(
    root: Path,
    samples: dict[str, Sample],
    skipped: set[str],
    problems: Problems,
    val_fraction: float,
    seed: int,
) -> tuple[list[Sample], list[Sample]]:
    lists = {split: _read_split_file(root, split) for split in ("train", "val")}
    if lists["train"] is None and lists["val"] is None:
        train, val = split_samples(list(samples.values()), root, val_fraction, seed)
        return list(train), list(val)
    chosen: dict[str, list[Sample]] = {"train": [], "val": []}
    for split, listing in lists.items():
        if listing is None:
            continue
        list_file, stems = listing
        for number, stem in stems:
            if stem in samples:
                chosen[split].append(samples[stem])
            elif stem not in skipped:
                problems.add(DataError(f"{list_file}:{number}: no usable annotation for {stem!r}"))
    missing = "val" if lists["val"] is None else "train" if lists["train"] is None else None
    if missing is not None:
        listed = {id(s) for group in chosen.values() for s in group}
        chosen[missing] = [s for s in samples.values() if id(s) not in listed]
    return chosen["train"], chosen["val"]


def _read_split_file(root: Path, split: str) -> tuple[Path, list[tuple[int, str]]] | None:
    for folder in SPLIT_DIRS:
        list_file = root / folder / f"{split}.txt"
        if list_file.exists():
            text = read_text_bounded(list_file, LIST_BYTES, str(list_file), DataError)
            lines = text.splitlines()
            # VOC's per-class lists have a second column; the stem is the first.
            stems = [(n, line.split()[0]) for n, line in enumerate(lines, 1) if line.strip()]
            return list_file, stems
    return None
