"""Evaluation as COCO does it: score predictions (`metrics`), report them (`report`), and produce
them by running a .onnx or .keras model over a dataset (`predict`).

Per epoch, training calls `predict_keras(model, dataset.val, dataset.names)` and then
`coco_metrics(predictions, dataset.val, dataset.names)`. Nothing here imports TensorFlow, Keras,
pycocotools or matplotlib at import time.
"""

from __future__ import annotations

from edge.evaluation.metrics import (
    IOU_THRESHOLDS,
    RECALL_THRESHOLDS,
    EvalResult,
    as_detections,
    coco_metrics,
)
from edge.evaluation.predict import (
    MODEL_SUFFIXES,
    Predictor,
    check_model_path,
    keras_predictor,
    open_predictor,
    predict_keras,
    predict_samples,
    read_image,
    session_predictor,
)
from edge.evaluation.report import format_table, write_json

__all__ = [
    "IOU_THRESHOLDS",
    "MODEL_SUFFIXES",
    "RECALL_THRESHOLDS",
    "EvalResult",
    "Predictor",
    "as_detections",
    "check_model_path",
    "coco_metrics",
    "format_table",
    "keras_predictor",
    "open_predictor",
    "predict_keras",
    "predict_samples",
    "read_image",
    "session_predictor",
    "write_json",
]
