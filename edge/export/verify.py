"""Does the exported file compute what Keras computes? Parity, CPU latency and mAP of both.

The ONNX side runs through `edge.runtime.session.ModelSession`, the runtime's own loader, so a file that
passes here also loads its contract and runs in `edge run`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import EdgeError
from edge.export.export_options import Tolerance

log = logging.getLogger(__name__)

EVAL_CONF = 0.001  # mAP thresholds, as `edge eval` uses
EVAL_IOU = 0.6
_CHUNK = 8  # images per Keras call / dynamic-batch ONNX call


class VerificationError(EdgeError):
    """The exported model disagrees with Keras beyond the tolerance; nothing was written."""


@dataclass(frozen=True)
class Parity:
    """|ONNX - Keras| over every anchor of every verification image: box pixels and scores."""

    max_box: float
    max_score: float
    mean_box: float
    mean_score: float
    images: int

    def within(self, tolerance: Tolerance, imgsz: tuple[int, int]) -> bool:
        box, score = self._measured(tolerance)
        return box <= tolerance.box_pixels(imgsz) and score <= tolerance.scores

    def describe(self, tolerance: Tolerance, imgsz: tuple[int, int]) -> str:
        box, score = self._measured(tolerance)
        stat = tolerance.statistic
        return (
            f"{stat} |Δbox| {box:.3g} px (limit {tolerance.box_pixels(imgsz):.3g} = "
            f"{tolerance.boxes:g} x {max(imgsz)} px), {stat} |Δscore| {score:.3g} "
            f"(limit {tolerance.scores:g}) over {self.images} images"
        )

    def _measured(self, tolerance: Tolerance) -> tuple[float, float]:
        if tolerance.statistic == "mean":
            return self.mean_box, self.mean_score
        return self.max_box, self.max_score


Outputs = tuple[np.ndarray, np.ndarray]  # boxes [N, A, 4], scores [N, A, C] for N images


def keras_outputs(model: Any, tensors: Sequence[np.ndarray]) -> Outputs:
    """The reference: the Keras inference model on the prepared images."""
    import keras

    boxes, scores = [], []
    for start in range(0, len(tensors), _CHUNK):
        out = model(np.concatenate(tensors[start : start + _CHUNK]), training=False)
        boxes.append(keras.ops.convert_to_numpy(out["boxes"]))
        scores.append(keras.ops.convert_to_numpy(out["scores"]))
    return np.concatenate(boxes), np.concatenate(scores)


def onnx_outputs(session: Any, tensors: Sequence[np.ndarray], dynamic_batch: bool) -> Outputs:
    """The exported model on the same images: batched when its batch is dynamic, else one by one."""
    step = _CHUNK if dynamic_batch else 1
    boxes, scores = [], []
    for start in range(0, len(tensors), step):
        out = session.run(np.concatenate(tensors[start : start + step]))
        boxes.append(np.asarray(out[0], np.float32))
        scores.append(np.asarray(out[1], np.float32))
    return np.concatenate(boxes), np.concatenate(scores)


def compare(reference: Outputs, got: Outputs) -> Parity:
    if reference[0].shape != got[0].shape or reference[1].shape != got[1].shape:
        raise VerificationError(
            f"output shapes differ: Keras {reference[0].shape} {reference[1].shape}, "
            f"ONNX {got[0].shape} {got[1].shape}"
        )
    db = np.abs(got[0].astype(np.float64) - reference[0])
    ds = np.abs(got[1].astype(np.float64) - reference[1])
    if not (np.isfinite(db).all() and np.isfinite(ds).all()):
        return Parity(float("inf"), float("inf"), float("inf"), float("inf"), len(reference[0]))
    return Parity(
        max_box=float(db.max()),
        max_score=float(ds.max()),
        mean_box=float(db.mean()),
        mean_score=float(ds.mean()),
        images=len(reference[0]),
    )


def median_latency_ms(session: Any, tensor: np.ndarray, runs: int, warmup: int = 3) -> float:
    """Median wall time of `runs` single-image inferences after `warmup` untimed ones."""
    for _ in range(warmup):
        session.run(tensor)
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        session.run(tensor)
        times.append(time.perf_counter_ns() - start)
    return float(np.median(times)) / 1e6


def keras_map(model: Any, samples: Sequence[Any], names: Sequence[str]) -> Any:
    """COCO mAP (an `edge.evaluation.EvalResult`) of the Keras model on `samples`."""
    from edge.evaluation import coco_metrics, predict_keras

    predictions = predict_keras(model, samples, names, conf=EVAL_CONF, iou=EVAL_IOU)
    return coco_metrics(predictions, samples, names)


def onnx_map(session: Any, samples: Sequence[Any], names: Sequence[str]) -> Any:
    """COCO mAP of the exported model, through the runtime's pre- and post-processing."""
    from edge.evaluation import coco_metrics, predict_samples, session_predictor

    predict = session_predictor(session, conf=EVAL_CONF, iou=EVAL_IOU)
    return coco_metrics(predict_samples(predict, samples), samples, names)
