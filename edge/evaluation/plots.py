"""Evaluation pictures: per-class PR curves (matplotlib, imported lazily) and a grid of
ground truth beside predictions (OpenCV)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.evaluation import EvalResult, as_detections, read_image
from edge.outputs import files
from edge.types import Detections

# How a plot file is written: (path, flag, write(tmp), check) -> path. By default at once, by the
# output policy; `edge eval` passes its OutputGroup's, so metrics and plots appear together.
Writer = Callable[..., Path]


def write_now(
    path: Path, flag: str, write: Callable[[Path], object], check: files.Check | None = None
) -> Path:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return files.write_atomic(path, flag, write, check)


TRUTH_COLOR = (0, 200, 0)  # BGR green
PREDICTION_COLOR = (0, 140, 255)  # BGR orange


def save_eval_plots(
    result: EvalResult,
    samples: Sequence[Any],
    predictions: Sequence[Detections],
    out_dir: str | Path,
    num_images: int = 8,
    cols: int = 2,
    show_conf: float = 0.25,
    writer: Writer = write_now,
) -> list[Path]:
    """PR curves per class plus `predictions.png`, a grid of the first `num_images` samples.

    mAP is computed from every prediction, but the grid draws only those scoring `show_conf` or
    more: a person wants to see what `edge run` would show, not the 0.001-threshold tail."""
    if num_images < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    paths = plot_pr_curves(result, out_dir, writer=writer)
    n = min(num_images, len(samples), len(predictions))
    if n:
        images = [read_image(s.image_path) for s in samples[:n]]
        truths = [as_detections(s) for s in samples[:n]]
        shown = [p.select(p.score >= show_conf) for p in predictions[:n]]
        grid = prediction_grid(images, truths, shown, result.names, cols=cols)
        paths.append(save_image(Path(out_dir) / "predictions.png", grid, writer))
    return paths


def plot_pr_curves(
    result: EvalResult, out_dir: str | Path, iou: float = 0.5, writer: Writer = write_now
) -> list[Path]:
    """Write `pr_<index>_<name>.png` per class that has ground truth; return the paths written.

    The curve is COCO's interpolated precision at 101 recall points at the IoU threshold nearest
    `iou`. Classes without ground truth have no curve and get no file.
    """
    try:  # no pyplot: no global backend to set, no figure registry to leak into
        from matplotlib.figure import Figure
    except ModuleNotFoundError:
        raise EdgeError("PR-curve plots need matplotlib: pip install 'edge[plot]'") from None

    out = Path(out_dir)
    paths: list[Path] = []
    for k, name in enumerate(result.names):
        recall, precision = result.pr_curve(k, iou)
        if np.isnan(precision).all():
            continue
        fig = Figure(figsize=(5, 4), dpi=100)
        ax = fig.add_subplot()
        t = result.iou_thresholds[int(np.argmin(np.abs(result.iou_thresholds - iou)))]
        ax.plot(recall, precision, color="tab:blue", linewidth=2)
        ax.fill_between(recall, precision, alpha=0.15, color="tab:blue")
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
        ax.set_title(f"{name}: AP@{t:.2f} = {float(np.mean(precision)):.3f}")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out / f"pr_{k:03d}_{_safe(name)}.png"
        paths.append(writer(path, "--plots", fig.savefig, files.check_nonempty))
    return paths


def draw_boxes(
    image: np.ndarray,
    boxes: Detections,
    names: Sequence[str],
    color: tuple[int, int, int],
    show_score: bool = True,
) -> np.ndarray:
    """A copy of `image` (BGR) with `boxes` drawn and labelled `name` or `name score`."""
    out = image.copy()
    thick = max(1, round(max(out.shape[:2]) / 400))
    for box, cls, score in zip(boxes.xyxy, boxes.class_id, boxes.score, strict=True):
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick, cv2.LINE_8)  # crisp
        name = names[cls] if 0 <= cls < len(names) else str(int(cls))
        label = f"{name} {score:.2f}" if show_score else name
        scale = 0.4 * thick
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(y1 - th - base, 0)
        cv2.rectangle(out, (x1, top), (x1 + tw, top + th + base), color, -1)
        cv2.putText(
            out, label, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA
        )
    return out


def comparison_tile(
    image: np.ndarray,
    truth: Detections,
    prediction: Detections,
    names: Sequence[str],
    height: int = 320,
) -> np.ndarray:
    """Ground truth (green, left) beside predictions (orange, right), scaled to `height` rows."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be H x W x 3 BGR, got shape {image.shape}")
    left = draw_boxes(image, truth, names, TRUTH_COLOR, show_score=False)
    right = draw_boxes(image, prediction, names, PREDICTION_COLOR)
    _caption(left, "ground truth", TRUTH_COLOR)
    _caption(right, f"predictions ({len(prediction)})", PREDICTION_COLOR)
    pair = np.concatenate([left, np.full((image.shape[0], 4, 3), 255, np.uint8), right], axis=1)
    width = max(1, round(pair.shape[1] * height / pair.shape[0]))
    return cv2.resize(pair, (width, height), interpolation=cv2.INTER_AREA)


def prediction_grid(
    images: Sequence[np.ndarray],
    truths: Sequence[Detections],
    predictions: Sequence[Detections],
    names: Sequence[str],
    cols: int = 2,
    height: int = 320,
) -> np.ndarray:
    """One image: a `comparison_tile` per image, `cols` per row, padded to the widest tile."""
    if not (len(images) == len(truths) == len(predictions)):
        raise ValueError(
            f"{len(images)} images, {len(truths)} truths and {len(predictions)} predictions differ"
        )
    if not images:
        raise ValueError("prediction_grid needs at least one image")
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    tiles = [
        comparison_tile(im, t, p, names, height)
        for im, t, p in zip(images, truths, predictions, strict=True)
    ]
    width = max(t.shape[1] for t in tiles)
    rows = math.ceil(len(tiles) / cols)
    grid = np.full((rows * (height + 8), cols * (width + 8), 3), 32, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = r * (height + 8) + 4, c * (width + 8) + 4
        grid[y : y + height, x : x + tile.shape[1]] = tile
    return grid


def save_image(path: str | Path, image: np.ndarray, writer: Writer = write_now) -> Path:
    """Write an image with OpenCV; raise EdgeError if it could not be written."""
    path = Path(path)

    def write(tmp: Path) -> None:
        if not cv2.imwrite(str(tmp), image):
            raise OSError(f"could not write image {path}")

    return writer(path, "--plots", write, files.check_nonempty)


def _caption(image: np.ndarray, text: str, color: tuple[int, int, int]) -> None:
    """Draw a caption into a copy this module made (never the caller's image)."""
    scale = max(0.5, image.shape[0] / 600)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(image, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), -1)
    cv2.putText(image, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "class"
