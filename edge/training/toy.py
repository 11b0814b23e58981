"""A toy dataset of coloured boxes on plain backgrounds: smoke tests, overfit checks, benchmarks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.data.dataset import Dataset, Sample

TOY_NAMES = ("red", "green")
_COLOURS = ((40, 40, 220), (40, 200, 40))  # BGR


def write_toy_dataset(
    root: str | Path,
    n_train: int = 4,
    n_val: int = 2,
    size: tuple[int, int] = (96, 96),
    seed: int = 0,
) -> Dataset:
    """Write `n_train + n_val` PNGs (width, height = `size`) under `root`; return their Dataset."""
    if n_train < 1 or n_val < 0:
        raise ValueError(f"n_train must be >= 1 and n_val >= 0, got {n_train} and {n_val}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    samples = [_write(root / f"toy_{i:04d}.png", size, rng) for i in range(n_train + n_val)]
    return Dataset(
        root=root,
        format="toy",
        names=TOY_NAMES,
        train=tuple(samples[:n_train]),
        val=tuple(samples[n_train:]),
    )


def write_toy_yolo(
    root: str | Path,
    n_train: int = 4,
    n_val: int = 2,
    size: tuple[int, int] = (96, 96),
    seed: int = 0,
) -> Path:
    """The toy dataset in YOLO layout (images/, labels/, data.yaml) under `root`; returns `root`."""
    from edge.data.synth import yolo_lines

    root = Path(root)
    toy = write_toy_dataset(root / "png", n_train=n_train, n_val=n_val, size=size, seed=seed)
    for split, samples in (("train", toy.train), ("val", toy.val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for s in samples:
            (root / "images" / split / s.image_path.name).write_bytes(s.image_path.read_bytes())
            label = yolo_lines(s.boxes, s.class_ids, s.width, s.height)
            (root / "labels" / split / f"{s.image_path.stem}.txt").write_text(label)
    names = ", ".join(TOY_NAMES)
    (root / "data.yaml").write_text(f"train: images/train\nval: images/val\nnames: [{names}]\n")
    return root


def _write(path: Path, size: tuple[int, int], rng: np.random.Generator) -> Sample:
    w, h = size
    # A textured background: flat images give batch norms almost no variance to learn from.
    ramp = np.linspace(0, rng.uniform(-60, 60), w, dtype=np.float32)[None, :, None]
    base = rng.uniform(80, 170) + ramp + rng.normal(0, 18, (h, w, 3)).astype(np.float32)
    image = np.clip(base, 0, 255).astype(np.uint8)
    boxes, ids = [], []
    for _ in range(int(rng.integers(1, 3))):
        bw, bh = (int(v) for v in rng.uniform(0.25, 0.45, 2) * (w, h))
        x1, y1 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        cls = int(rng.integers(0, len(TOY_NAMES)))
        patch = np.asarray(_COLOURS[cls], np.float32) + rng.normal(0, 15, (bh, bw, 3))
        image[y1 : y1 + bh, x1 : x1 + bw] = np.clip(patch, 0, 255).astype(np.uint8)
        boxes.append((x1, y1, x1 + bw, y1 + bh))
        ids.append(cls)
    cv2.imwrite(str(path), image)
    return Sample(path, w, h, np.array(boxes, np.float32), np.array(ids, np.int64))
