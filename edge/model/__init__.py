"""The detector family (Keras 3, backend-agnostic): build, convert for inference, describe.

Importing this package imports Keras and registers every class a saved detector needs, so
`keras.saving.load_model("best.keras")` works after `import edge.model`.
"""

from __future__ import annotations

from edge.backbones import BACKBONES, DEFAULT_BACKBONE, NAMES
from edge.model.backbone import STRIDES
from edge.model.decode import DecodeBoxes, anchor_points
from edge.model.keras_detector import (
    KerasDetector,
    build_detector,
    contract_for,
    inference_model,
)
from edge.model.losses import DetectionLoss
from edge.model.transfer import load_detector, transfer_weights

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "NAMES",
    "STRIDES",
    "DecodeBoxes",
    "DetectionLoss",
    "KerasDetector",
    "anchor_points",
    "build_detector",
    "contract_for",
    "inference_model",
    "load_detector",
    "transfer_weights",
]
