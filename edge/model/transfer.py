"""Loading saved detectors and carrying weights between detectors (fine-tuning, new classes)."""

from __future__ import annotations

import logging
from pathlib import Path

import keras

from edge.errors import ModelError, check_regular
from edge.model.keras_detector import KerasDetector

log = logging.getLogger(__name__)


def load_detector(path: str | Path) -> KerasDetector:
    """A KerasDetector from a `.keras` file (safe mode, uncompiled); ModelError if it is not one."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"a detector file must end in .keras, got {path.name!r}")
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    check_regular(path, f"model {path}", ModelError)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # keras raises many types for a bad archive
        raise ModelError(f"{path}: cannot load ({type(exc).__name__}: {exc})") from None
    if not isinstance(model, KerasDetector):
        raise ModelError(f"{path}: not an edge detector (a {type(model).__name__})")
    return model


def transfer_weights(source: KerasDetector, target: KerasDetector) -> list[str]:
    """Copy weights layer by layer where name and shapes agree; return the layers left as built.

    The backbone moves as one block. Layers whose shapes differ (the class predictor when the
    classes change) keep their fresh initialisation.
    """
    skipped = []
    for layer in target.layers:
        if not layer.weights:
            continue
        try:
            other = source.get_layer(layer.name)
        except ValueError:
            skipped.append(layer.name)
            continue
        new, old = layer.get_weights(), other.get_weights()
        if len(new) != len(old) or any(a.shape != b.shape for a, b in zip(new, old, strict=True)):
            skipped.append(layer.name)
            continue
        layer.set_weights(old)
    if skipped:
        log.info("kept fresh weights for %d layer(s): %s", len(skipped), ", ".join(skipped))
    return skipped
