"""A detector in one object: an ONNX model plus its pre- and post-processing, image in, boxes out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.postprocess import PostprocessOptions, postprocess
from edge.preprocess import prepare
from edge.session import ModelSession, SessionOptions
from edge.types import Detections


class Detector:
    """`Detector("model.onnx").detect(image_bgr)` -> Detections in the image's pixels."""

    def __init__(
        self,
        model: str | Path,
        device: str = "auto",
        imgsz: tuple[int, int] | None = None,
        **session_kw: object,
    ) -> None:
        self.session = ModelSession(model, SessionOptions(device=device, **session_kw))  # type: ignore[arg-type]
        self.contract = self.session.contract
        self.imgsz = self.session.input_size(imgsz)
        self.names = self.contract.names

    def detect(
        self,
        image_bgr: np.ndarray,
        conf: float = 0.25,
        iou: float = 0.45,
        classes: tuple[int, ...] | None = None,
    ) -> Detections:
        tensor, lb = prepare(image_bgr, self.contract, self.imgsz)
        outputs = self.session.run(tensor)
        return postprocess(
            outputs, self.contract, lb, PostprocessOptions(conf=conf, iou=iou, classes=classes)
        )
