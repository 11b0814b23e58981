"""The detector family (Keras 3, backend-agnostic): build, convert for inference, describe.

    backbones.py       backbone names and where each is cut (plain data: no Keras)
    backbone.py, neck.py, head.py, blocks.py    the network's parts
    keras_detector.py  KerasDetector: the model, its contract, its inference form
    decode.py, boxes.py, assign.py, losses.py   box decoding, target assignment, the loss
    transfer.py        load_detector, transfer_weights
    hub_detector.py    KerasHub's RetinaNet and D-FINE as edge sees them (names, normalisation, sizes)

Importing this package is cheap: Keras loads when a name below is first used. Loading a saved
detector with `keras.saving.load_model` needs its classes registered: use `load_detector(path)`,
or `import edge.model.keras_detector` first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it
_LAZY = {
    "BACKBONES": "edge.model.backbones",
    "DEFAULT_BACKBONE": "edge.model.backbones",
    "NAMES": "edge.model.backbones",
    "STRIDES": "edge.model.backbone",
    "DecodeBoxes": "edge.model.decode",
    "anchor_points": "edge.model.decode",
    "KerasDetector": "edge.model.keras_detector",
    "build_detector": "edge.model.keras_detector",
    "contract_for": "edge.model.keras_detector",
    "inference_model": "edge.model.keras_detector",
    "DetectionLoss": "edge.model.losses",
    "load_detector": "edge.model.transfer",
    "transfer_weights": "edge.model.transfer",
}

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

if TYPE_CHECKING:
    from edge.model.backbone import STRIDES
    from edge.model.backbones import BACKBONES, DEFAULT_BACKBONE, NAMES
    from edge.model.decode import DecodeBoxes, anchor_points
    from edge.model.keras_detector import (
        KerasDetector,
        build_detector,
        contract_for,
        inference_model,
    )
    from edge.model.losses import DetectionLoss
    from edge.model.transfer import load_detector, transfer_weights


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edge.model' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
