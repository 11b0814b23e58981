"""What a dataset holds: images, boxes and classes per split, box sizes, and every problem found."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.data.dataset import Dataset, Sample
from edge.data.load import load_dataset


@dataclass(frozen=True)
class Spread:
    """Minimum, median and maximum of a quantity over all boxes."""

    min: float
    median: float
    max: float

    @classmethod
    def of(cls, values: np.ndarray) -> Spread:
        return cls(float(values.min()), float(np.median(values)), float(values.max()))


@dataclass(frozen=True)
class SplitStats:
    images: int
    boxes: int
    images_without_boxes: int


@dataclass(frozen=True)
class DatasetReport:
    """The summary `edge data inspect` prints; `to_dict` is its JSON form.

    Box sizes are in pixels and as a fraction of their image's width / height (None: no boxes).
    `boxes_per_class` maps each class name to its count per split.
    """

    root: str
    format: str
    names: tuple[str, ...]
    splits: dict[str, SplitStats]
    boxes_per_class: dict[str, dict[str, int]]
    width_px: Spread | None
    height_px: Spread | None
    width_fraction: Spread | None
    height_fraction: Spread | None
    problems: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_text(self) -> str:
        return "\n".join(_text_lines(self))


def inspect_dataset(path: str | Path, val_fraction: float = 0.2, seed: int = 0) -> DatasetReport:
    """Load a dataset collecting every problem instead of stopping at the first, and summarise it.

    Raises DataError only where nothing can be read (missing path, unknown format, no images).
    """
    report = summarise(load_dataset(path, skip_bad=True, val_fraction=val_fraction, seed=seed))
    missing = missing_manifest(Path(path), report.format)
    if missing:
        report = dataclasses.replace(report, problems=(missing, *report.problems))
    return report


def missing_manifest(path: Path, fmt: str) -> str | None:
    """A YOLO folder with neither data.yaml nor a class names file has no manifest: its class
    names are unknown, and it may be a dataset whose writing was interrupted."""
    from edge.data.yolo import NAMES_FILES, find_yaml

    if fmt != "yolo" or not path.is_dir() or find_yaml(path) is not None:
        return None
    if any((path / n).is_file() for n in NAMES_FILES):
        return None
    return (
        f"{path}: no data.yaml (nor {', '.join(NAMES_FILES)}): the manifest is missing, class names "
        "are unknown and the dataset may be incomplete (an interrupted `edge data synth`?)"
    )


def summarise(dataset: Dataset) -> DatasetReport:
    splits = {"train": dataset.train, "val": dataset.val}
    stats = {name: _split_stats(samples) for name, samples in splits.items()}
    per_class = {
        name: {split: int(np.sum(_class_ids(samples) == i)) for split, samples in splits.items()}
        for i, name in enumerate(dataset.names)
    }
    samples = (*dataset.train, *dataset.val)
    spreads: list[Spread | None] = [None] * 4
    if any(len(s.boxes) for s in samples):
        boxes = np.concatenate([s.boxes for s in samples])
        sizes = np.concatenate([np.tile([s.width, s.height], (len(s.boxes), 1)) for s in samples])
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        spreads = [Spread.of(v) for v in (w, h, w / sizes[:, 0], h / sizes[:, 1])]
    return DatasetReport(
        root=str(dataset.root),
        format=dataset.format,
        names=dataset.names,
        splits=stats,
        boxes_per_class=per_class,
        width_px=spreads[0],
        height_px=spreads[1],
        width_fraction=spreads[2],
        height_fraction=spreads[3],
        problems=dataset.problems,
    )


def _class_ids(samples: tuple[Sample, ...]) -> np.ndarray:
    return np.concatenate([s.class_ids for s in samples]) if samples else np.zeros(0, np.int64)


def _split_stats(samples: tuple[Sample, ...]) -> SplitStats:
    counts = [len(s.boxes) for s in samples]
    return SplitStats(len(samples), sum(counts), sum(c == 0 for c in counts))


def _text_lines(report: DatasetReport) -> list[str]:
    lines = [
        f"dataset  {report.root}  ({report.format})",
        f"classes  {len(report.names)}",
        "",
        f"{'split':<10}{'images':>8}{'boxes':>8}{'without boxes':>15}",
    ]
    for name, s in report.splits.items():
        lines.append(f"{name:<10}{s.images:>8}{s.boxes:>8}{s.images_without_boxes:>15}")
    total = [sum(getattr(s, f) for s in report.splits.values()) for f in ("images", "boxes")]
    empty = sum(s.images_without_boxes for s in report.splits.values())
    lines += [f"{'total':<10}{total[0]:>8}{total[1]:>8}{empty:>15}", ""]
    width = max([len("boxes per class"), *map(len, report.names)]) + 2
    lines.append(f"{'boxes per class':<{width}}{'train':>8}{'val':>8}{'total':>8}")
    for name, counts in report.boxes_per_class.items():
        row = "".join(f"{counts[s]:>8}" for s in ("train", "val"))
        lines.append(f"{name:<{width}}{row}{sum(counts.values()):>8}")
    lines.append("")
    if report.width_px is not None:
        lines.append(f"{'box size':<16}{'min':>9}{'median':>9}{'max':>9}")
        for label, spread, fmt in (
            ("width px", report.width_px, ".1f"),
            ("height px", report.height_px, ".1f"),
            ("width / image", report.width_fraction, ".3f"),
            ("height / image", report.height_fraction, ".3f"),
        ):
            assert spread is not None
            values = "".join(f"{v:>9{fmt}}" for v in (spread.min, spread.median, spread.max))
            lines.append(f"{label:<16}{values}")
        lines.append("")
    if not report.problems:
        lines.append("problems: none")
    else:
        lines.append(f"problems: {len(report.problems)}")
        lines += [f"  {p}" for p in report.problems]
    return lines
