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
from edge.runtime.contract import ModelContract
from edge.runtime.postprocess import PostprocessOptions

log = logging.getLogger(__name__)

EVAL_CONF = 0.001  # mAP thresholds, as `edge eval` uses
EVAL_IOU = 0.6
KEPT = PostprocessOptions()  # what a user sees: `edge run`'s default threshold and NMS
MATCH_IOU = 0.5  # a Keras detection and an ONNX one are the same object
_CHUNK = 8  # images per Keras call / dynamic-batch ONNX call


class VerificationError(EdgeError):
    """The exported model disagrees with Keras beyond the tolerance; nothing was written."""


@dataclass(frozen=True)
class Agreement:
    """The detections a user sees (`edge run`'s default threshold and NMS) from Keras and from the
    file on every verification image, paired one to one (same class, IoU >= MATCH_IOU).

    `seen` counts each pair once and each unpaired detection of either side once; the box
    (pixels) and score differences are over the pairs."""

    seen: int
    paired: int
    max_box: float = 0.0
    mean_box: float = 0.0
    max_score: float = 0.0
    mean_score: float = 0.0

    @property
    def unpaired(self) -> int:
        return self.seen - self.paired

    def share(self) -> float:
        return self.paired / self.seen if self.seen else 1.0


@dataclass(frozen=True)
class Parity:
    """|ONNX - Keras| over every anchor of every verification image (box pixels and scores), and
    the agreement of the detections that survive the threshold and NMS."""

    max_box: float
    max_score: float
    mean_box: float
    mean_score: float
    images: int
    kept: Agreement | None = None

    def within(self, tolerance: Tolerance, imgsz: tuple[int, int]) -> bool:
        return not self.failures(tolerance, imgsz)

    def failures(self, tolerance: Tolerance, imgsz: tuple[int, int]) -> list[str]:
        """What is beyond `tolerance`, one phrase each; empty when the file passes."""
        t, limit = tolerance, tolerance.box_pixels(imgsz)
        out = []
        box, score = _pick(
            t.statistic, (self.max_box, self.mean_box, self.max_score, self.mean_score)
        )
        if not box <= limit or not score <= t.scores:
            out.append(
                f"{t.statistic} |Δbox| {box:.3g} px (limit {limit:.3g} = {t.boxes:g} x "
                f"{max(imgsz)} px), {t.statistic} |Δscore| {score:.3g} (limit {t.scores:g}) "
                f"over every output row of {self.images} images"
            )
        k = self.kept
        if t.agree is None or k is None:
            return out
        if k.unpaired > max(1, int((1.0 - t.agree) * k.seen + 1e-9)):
            out.append(
                f"{k.unpaired} of {k.seen} detections (score >= {KEPT.conf:g}, after NMS) are "
                f"found by only one of Keras and ONNX (at most {1 - t.agree:.0%} may be)"
            )
        box, score = _pick(t.kept_statistic, (k.max_box, k.mean_box, k.max_score, k.mean_score))
        if not box <= limit or not score <= t.paired_scores:
            out.append(
                f"{t.kept_statistic} |Δbox| {box:.3g} px (limit {limit:.3g}), "
                f"{t.kept_statistic} |Δscore| {score:.3g} (limit {t.paired_scores:g}) over the "
                f"{k.paired} detections both find"
            )
        return out


def _pick(statistic: str, values: tuple[float, float, float, float]) -> tuple[float, float]:
    max_box, mean_box, max_score, mean_score = values
    return (max_box, max_score) if statistic == "max" else (mean_box, mean_score)


Outputs = tuple[np.ndarray, np.ndarray]  # boxes [N, A, 4] xyxy px, scores [N, A, C] for N images


def keras_outputs(model: Any, tensors: Sequence[np.ndarray], contract: ModelContract) -> Outputs:
    """The reference: the Keras inference model on the prepared images, decoded as the runtime
    decodes the file's outputs (the model's outputs are named as the graph's)."""
    import keras

    from edge.export.convert import output_names

    names = output_names(contract)
    chunks = []
    for start in range(0, len(tensors), _CHUNK):
        out = model(np.concatenate(tensors[start : start + _CHUNK]), training=False)
        chunks.append([keras.ops.convert_to_numpy(out[n]) for n in names])
    raw = [np.concatenate([c[i] for c in chunks]) for i in range(len(names))]
    return _decoded(raw, contract)


def onnx_outputs(
    session: Any, tensors: Sequence[np.ndarray], dynamic_batch: bool, contract: ModelContract
) -> Outputs:
    """The exported model on the same images: batched when its batch is dynamic, else one by one."""
    step = _CHUNK if dynamic_batch else 1
    chunks = []
    for start in range(0, len(tensors), step):
        chunks.append(
            [np.asarray(o) for o in session.run(np.concatenate(tensors[start : start + step]))]
        )
    raw = [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]
    return _decoded(raw, contract)


def _decoded(raw: list[np.ndarray], contract: ModelContract) -> Outputs:
    """Every image's rows as xyxy input pixels and per-class scores (`postprocess.decode`)."""
    from edge.runtime.postprocess import decode

    rows = [decode(raw, contract, item=i) for i in range(len(raw[0]))]
    boxes = np.stack([np.asarray(b, np.float32) for b, _ in rows])
    scores = np.stack([np.asarray(s, np.float32) for _, s in rows])
    return boxes, scores


def in_reference_order(reference: Outputs, got: Outputs) -> Outputs:
    """`got` with each image's rows paired one to one with the reference rows they are closest
    to (smallest total difference) and put in their order. For models whose rows are a set (a
    DETR's queries): tied scores in its top-k may order the same queries differently in ONNX
    Runtime and TensorFlow, and the queries do not depend on their order."""
    from edge.runtime.tracking import assign

    if reference[0].shape != got[0].shape or reference[1].shape != got[1].shape:
        return got
    rows_ref = np.concatenate(reference, axis=-1).astype(np.float64)
    rows_got = np.concatenate(got, axis=-1).astype(np.float64)
    boxes, scores = got[0].copy(), got[1].copy()
    for i in range(len(rows_ref)):
        distance = np.abs(rows_ref[i][:, None, :] - rows_got[i][None, :, :]).max(axis=-1)
        rows, cols = assign(1.0 / (1.0 + distance), 0.0)
        if len(rows) == len(distance):  # every row paired
            boxes[i][rows], scores[i][rows] = got[0][i][cols], got[1][i][cols]
    return boxes, scores


def compare(reference: Outputs, got: Outputs, nms: bool = True) -> Parity:
    """Row by row, and the detections `edge run` keeps (with its NMS when `nms`)."""
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
        kept=agreement(reference, got, nms),
    )


def agreement(reference: Outputs, got: Outputs, nms: bool = True) -> Agreement:
    """Pair the detections `edge run` would keep from each side, image by image."""
    from edge.runtime.accuracy import box_iou
    from edge.runtime.postprocess import select
    from edge.runtime.tracking import assign

    seen = 0
    box_err: list[float] = []
    score_err: list[float] = []
    for i in range(len(reference[0])):
        a = select(reference[0][i], reference[1][i], KEPT, nms)
        b = select(got[0][i], got[1][i], KEPT, nms)
        iou = box_iou(a.xyxy, b.xyxy)
        iou[a.class_id[:, None] != b.class_id[None, :]] = 0.0
        rows, cols = assign(iou, MATCH_IOU)
        seen += len(a) + len(b) - len(rows)
        box_err += np.abs(a.xyxy[rows] - b.xyxy[cols]).max(axis=1, initial=0.0).tolist()
        score_err += np.abs(a.score[rows] - b.score[cols]).tolist()
    if not box_err:
        return Agreement(seen, 0)
    return Agreement(
        seen,
        len(box_err),
        max_box=max(box_err),
        mean_box=float(np.mean(box_err)),
        max_score=max(score_err),
        mean_score=float(np.mean(score_err)),
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


def keras_map(
    model: Any, samples: Sequence[Any], names: Sequence[str], contract: ModelContract
) -> Any:
    """COCO mAP (an `edge.evaluation.EvalResult`) of the Keras model on `samples`."""
    from edge.evaluation import coco_metrics, predict_keras

    predictions = predict_keras(
        model, samples, names, conf=EVAL_CONF, iou=EVAL_IOU, output_format=contract.output_format
    )
    return coco_metrics(predictions, samples, names)


def onnx_map(session: Any, samples: Sequence[Any], names: Sequence[str]) -> Any:
    """COCO mAP of the exported model, through the runtime's pre- and post-processing."""
    from edge.evaluation import coco_metrics, predict_samples, session_predictor

    predict = session_predictor(session, conf=EVAL_CONF, iou=EVAL_IOU)
    return coco_metrics(predict_samples(predict, samples), samples, names)
