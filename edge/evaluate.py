"""COCO-style detection metrics (mAP50-95, mAP50, per-class AP, PR curves) via pycocotools.

Pure and in memory: training calls `coco_metrics` every epoch and `edge eval` calls it once.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.contract import ModelContract
from edge.errors import DataError, EdgeError, ModelError
from edge.postprocess import PostprocessOptions, postprocess
from edge.preprocess import prepare
from edge.types import Detections

log = logging.getLogger(__name__)

# pycocotools' defaults: IoU 0.50:0.05:0.95 and 101 recall points.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
_ALL_AREAS = [0.0, 1e5**2]  # the 'all' area range; small/medium/large are not computed


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Metrics of a set of predictions against ground truth.

    Per-class arrays have one entry per name; a class with no ground truth box has AP `nan` and is
    left out of the means, as pycocotools does. `precision` is (IoU thresholds, recall thresholds,
    classes), COCO's interpolated precision at area 'all' and `max_dets`, `nan` for absent classes.
    """

    names: tuple[str, ...]
    map50_95: float
    map50: float
    ap50_95: np.ndarray  # (C,) float64
    ap50: np.ndarray  # (C,) float64
    num_truths: np.ndarray  # (C,) int64, ground-truth boxes per class
    num_predictions: int
    num_images: int
    iou_thresholds: np.ndarray  # (T,)
    recall_thresholds: np.ndarray  # (R,)
    precision: np.ndarray  # (T, R, C)

    def pr_curve(self, class_id: int, iou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """(recall, precision) of one class at the IoU threshold nearest `iou`."""
        if not 0 <= class_id < len(self.names):
            raise ValueError(f"class_id must be in [0, {len(self.names)}), got {class_id}")
        t = int(np.argmin(np.abs(self.iou_thresholds - iou)))
        return self.recall_thresholds.copy(), self.precision[t, :, class_id].copy()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (nan becomes None, since JSON has no nan)."""
        return {
            "map50_95": _finite_or_none(self.map50_95),
            "map50": _finite_or_none(self.map50),
            "num_images": self.num_images,
            "num_predictions": self.num_predictions,
            "num_truths": int(self.num_truths.sum()),
            "per_class": {
                name: {
                    "ap50_95": _finite_or_none(self.ap50_95[i]),
                    "ap50": _finite_or_none(self.ap50[i]),
                    "num_truths": int(self.num_truths[i]),
                }
                for i, name in enumerate(self.names)
            },
        }


def coco_metrics(
    predictions: Sequence[Detections],
    truths: Sequence[Any],
    names: Sequence[str],
    *,
    max_dets: int = 100,
) -> EvalResult:
    """Evaluate `predictions[i]` against `truths[i]` (a `Sample` or a `Detections`) per image.

    Boxes are absolute pixel xyxy of the same image on both sides. `max_dets` keeps the highest
    scoring predictions per image and class (COCO's 100). Raises ValueError when the sequences
    differ in length, a class id is outside `names`, or a prediction is not finite.
    """
    names = tuple(str(n) for n in names)
    if not names:
        raise ValueError("names must name at least one class")
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions but {len(truths)} ground truths")
    if max_dets < 1:
        raise ValueError(f"max_dets must be >= 1, got {max_dets}")
    truth = [_truth_arrays(t) for t in truths]
    _check_finite_and_ids(predictions, truth, len(names))
    gt_ids = [ids for _, ids in truth]
    num_truths = np.bincount(np.concatenate([np.zeros(0, np.int64), *gt_ids]), minlength=len(names))
    num_predictions = sum(len(d) for d in predictions)
    if num_truths.sum() == 0:  # nothing to find: AP is undefined for every class
        precision = np.full((len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(names)), np.nan)
    else:
        precision = _cocoeval_precision(predictions, truth, len(names), max_dets)
    return _result(names, precision, num_truths.astype(np.int64), num_predictions, len(truths))


def as_detections(truth: Any) -> Detections:
    """Ground truth (a `Sample` or `Detections`) as Detections with score 1, for drawing."""
    boxes, ids = _truth_arrays(truth)
    return Detections(boxes, np.ones(len(ids), np.float32), ids)


def _truth_arrays(truth: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(truth, Detections):
        return truth.xyxy.astype(np.float64), truth.class_id
    if hasattr(truth, "boxes") and hasattr(truth, "class_ids"):
        boxes = np.asarray(truth.boxes, np.float64).reshape(-1, 4)
        return boxes, np.asarray(truth.class_ids, np.int64).reshape(-1)
    raise ValueError(f"a ground truth must be a Sample or Detections, got {type(truth).__name__}")


def _check_finite_and_ids(
    predictions: Sequence[Detections],
    truth: Sequence[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
) -> None:
    for i, (boxes, ids) in enumerate(truth):
        _check_ids(ids, num_classes, f"truths[{i}]")
        if not np.isfinite(boxes).all():
            raise ValueError(f"truths[{i}] has non-finite boxes")
    for i, det in enumerate(predictions):
        _check_ids(det.class_id, num_classes, f"predictions[{i}]")
        if not (np.isfinite(det.xyxy).all() and np.isfinite(det.score).all()):
            raise ValueError(f"predictions[{i}] has non-finite boxes or scores")


def _check_ids(ids: np.ndarray, num_classes: int, where: str) -> None:
    if len(ids) and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(
            f"{where} has class ids {sorted(set(ids.tolist()))}; valid range is [0, {num_classes})"
        )


def _xywh(xyxy: np.ndarray) -> np.ndarray:
    """pycocotools' [x, y, w, h], in float64 so w and h are exact differences of the corners."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    wh = np.maximum(xyxy[:, 2:] - xyxy[:, :2], 0.0)  # a reversed box has no area, not negative
    return np.concatenate([xyxy[:, :2], wh], axis=1)


def _annotations(
    per_image: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
) -> list[dict[str, Any]]:
    """COCO annotation dicts; ids start at 1 because pycocotools reads id 0 as 'unmatched'."""
    anns: list[dict[str, Any]] = []
    for image_id, (xyxy, class_ids, scores) in enumerate(per_image, start=1):
        for j, (box, cls) in enumerate(zip(_xywh(xyxy).tolist(), class_ids.tolist(), strict=True)):
            ann = {
                "id": len(anns) + 1,
                "image_id": image_id,
                "category_id": int(cls),
                "bbox": box,
                "area": box[2] * box[3],
                "iscrowd": 0,
            }
            if scores is not None:
                ann["score"] = float(scores[j])
            anns.append(ann)
    return anns


def _cocoeval_precision(
    predictions: Sequence[Detections],
    truth: Sequence[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    max_dets: int,
) -> np.ndarray:
    """COCOeval's precision array (T, R, C) at area 'all', built in memory with its prints muted."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ModuleNotFoundError:
        raise EdgeError("evaluation needs pycocotools: pip install 'edge[train]'") from None

    images = [{"id": i} for i in range(1, len(truth) + 1)]
    categories = [{"id": c, "name": str(c)} for c in range(num_classes)]
    gt_anns = _annotations([(boxes, ids, None) for boxes, ids in truth])
    dt_anns = _annotations([(d.xyxy, d.class_id, d.score) for d in predictions])
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt, coco_dt = COCO(), COCO()
        # Built directly: COCO.loadRes cannot take an empty list of results.
        coco_gt.dataset = {"images": images, "categories": categories, "annotations": gt_anns}
        coco_dt.dataset = {"images": images, "categories": categories, "annotations": dt_anns}
        coco_gt.createIndex()
        coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.params.catIds = list(range(num_classes))
        ev.params.iouThrs = IOU_THRESHOLDS.copy()
        ev.params.recThrs = RECALL_THRESHOLDS.copy()
        ev.params.areaRng = [list(_ALL_AREAS)]
        ev.params.areaRngLbl = ["all"]
        ev.params.maxDets = [max_dets]
        ev.evaluate()
        ev.accumulate()
    precision = np.asarray(ev.eval["precision"][:, :, :, 0, -1], np.float64)
    return np.where(precision < 0, np.nan, precision)  # -1 marks a class with no ground truth


def _result(
    names: tuple[str, ...],
    precision: np.ndarray,
    num_truths: np.ndarray,
    num_predictions: int,
    num_images: int,
) -> EvalResult:
    present = ~np.isnan(precision[0, 0])  # pycocotools' own test: the class had truth to find
    ap_t = np.full((precision.shape[0], len(names)), np.nan)  # AP per IoU threshold and class
    ap_t[:, present] = precision[:, :, present].mean(axis=1)
    ap50_95 = ap_t.mean(axis=0)  # nan stays nan for absent classes
    ap50 = ap_t[0]
    return EvalResult(
        names=names,
        map50_95=float(np.mean(ap50_95[present])) if present.any() else math.nan,
        map50=float(np.mean(ap50[present])) if present.any() else math.nan,
        ap50_95=ap50_95,
        ap50=ap50,
        num_truths=num_truths,
        num_predictions=int(num_predictions),
        num_images=int(num_images),
        iou_thresholds=IOU_THRESHOLDS.copy(),
        recall_thresholds=RECALL_THRESHOLDS.copy(),
        precision=precision,
    )


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def format_table(result: EvalResult) -> str:
    """A plain-text table: the two means, then AP per class (`-` where a class has no truth)."""

    def cell(v: float) -> str:
        return f"{v:9.4f}" if math.isfinite(v) else f"{'-':>9}"

    width = max([5, *(len(n) for n in result.names)])
    lines = [
        f"{'class':<{width}} {'truths':>7} {'AP50-95':>9} {'AP50':>9}",
        f"{'all':<{width}} {int(result.num_truths.sum()):>7} "
        f"{cell(result.map50_95)} {cell(result.map50)}",
    ]
    for i, name in enumerate(result.names):
        lines.append(
            f"{name:<{width}} {int(result.num_truths[i]):>7} "
            f"{cell(result.ap50_95[i])} {cell(result.ap50[i])}"
        )
    lines.append(f"{result.num_images} images, {result.num_predictions} predictions")
    return "\n".join(lines)


def write_json(result: EvalResult, path: str | Path, **extra: Any) -> Path:
    """Write `result.to_dict()` (plus `extra` keys) to `path` atomically: temp file + os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**result.to_dict(), **extra}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


# --- running a model over a dataset --------------------------------------------------------------

Predictor = Callable[[np.ndarray], Detections]  # BGR image -> Detections in that image's pixels
MODEL_SUFFIXES = (".onnx", ".keras")


@contextlib.contextmanager
def open_predictor(
    model_path: str | Path,
    names: Sequence[str],
    *,
    conf: float = 0.001,
    iou: float = 0.6,
    device: str = "cpu",
    imgsz: tuple[int, int] | None = None,
) -> Iterator[Predictor]:
    """A `Predictor` for an exported `.onnx` (`edge.detector.Detector`) or a `.keras` model.

    `names` are the dataset's classes; the model must predict the same number. `imgsz` (height,
    width) is used only where the model's input size is dynamic. Raises ValueError
    for an unknown extension or thresholds out of range, ModelError for a missing, unloadable or
    mismatched model.
    """
    path = check_model_path(model_path)
    PostprocessOptions(conf=conf, iou=iou)  # validates the thresholds before any loading
    if path.suffix.lower() == ".keras":
        yield keras_predictor(_load_keras(path), names, imgsz=imgsz, conf=conf, iou=iou)
        return
    from edge.detector import Detector

    detector = Detector(path, device=device, imgsz=imgsz)
    _check_names(tuple(detector.names), tuple(names), path)
    try:
        yield lambda image: detector.detect(image, conf=conf, iou=iou)
    finally:
        close = getattr(detector, "close", None)
        if callable(close):
            close()


def check_model_path(path: str | Path) -> Path:
    """`path` if it names an existing .onnx or .keras file; ValueError or ModelError if not."""
    path = Path(path)
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ValueError(
            f"model must be one of {', '.join(MODEL_SUFFIXES)}, got {path.name!r} ({path.suffix!r})"
        )
    if not path.is_file():
        raise ModelError(f"model not found: {path}")
    return path


def keras_predictor(
    model: Any,
    names: Sequence[str],
    *,
    imgsz: tuple[int, int] | None = None,
    conf: float = 0.001,
    iou: float = 0.6,
) -> Predictor:
    """A `Predictor` around an in-memory Keras inference model, with the runtime's letterbox and
    post-processing: input float32 [1, H, W, 3] RGB 0..255, outputs `boxes` [1, N, 4] xyxy in input
    pixels and `scores` [1, N, C]. `imgsz` (height, width) is needed only if the input is dynamic.
    """
    import keras

    shape = tuple(model.inputs[0].shape)  # (None, H, W, 3)
    fixed = (shape[1], shape[2])
    size = fixed if all(isinstance(v, int) and v > 0 for v in fixed) else imgsz or fixed
    if not all(isinstance(v, int) and v > 0 for v in size):
        raise ValueError(f"the Keras model's input size is dynamic {shape}; pass imgsz=(h, w)")
    contract = ModelContract(names=tuple(names), imgsz=(int(size[0]), int(size[1])))
    options = PostprocessOptions(conf=conf, iou=iou)

    def predict(image: np.ndarray) -> Detections:
        tensor, lb = prepare(image, contract, contract.imgsz)
        out = model(tensor, training=False)
        if isinstance(out, dict):
            out = [out["boxes"], out["scores"]]
        arrays = [keras.ops.convert_to_numpy(o) for o in out]
        return postprocess(arrays, contract, lb, options)

    return predict


def _load_keras(path: Path) -> Any:
    import keras

    with contextlib.suppress(ModuleNotFoundError):  # registers the custom layers, once it exists
        import edge.model  # noqa: F401
    try:
        return keras.saving.load_model(path, compile=False)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"{path}: cannot load Keras model ({exc})") from None


def _check_names(model_names: tuple[str, ...], names: tuple[str, ...], path: Path) -> None:
    if len(model_names) != len(names):
        raise ModelError(
            f"{path} predicts {len(model_names)} classes but the dataset has {len(names)}"
        )
    if model_names != names:
        log.warning("%s class names %s differ from the dataset's %s", path, model_names, names)


def predict_samples(predict: Predictor, samples: Sequence[Any]) -> list[Detections]:
    """Run `predict` on each sample's image (read from `image_path`); DataError if unreadable."""
    out: list[Detections] = []
    for i, sample in enumerate(samples):
        out.append(predict(read_image(sample.image_path)))
        if (i + 1) % 200 == 0:
            log.info("evaluated %d/%d images", i + 1, len(samples))
    return out


def read_image(path: str | Path) -> np.ndarray:
    """A BGR image from disk; DataError if it cannot be read."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {path}")
    return image
