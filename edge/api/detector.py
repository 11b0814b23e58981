"""A detector in one object: an ONNX model plus its pre- and post-processing, image in, boxes out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.errors import ModelError
from edge.runtime.bundled import bundled_model
from edge.runtime.postprocess import PostprocessOptions, postprocess
from edge.runtime.preprocess import prepare
from edge.runtime.session import REMOTE, SessionOptions, open_session
from edge.types import Detections


class Detector:
    """`edge.Detector().detect(image_bgr)` -> `Detections` in the image's pixels.

    Args:
        model: an ONNX file: an `edge export`, or an Ultralytics detection export (YOLOv8/11 raw,
            end-to-end YOLO26/YOLOv10/`nms=True`, RT-DETR). None: the bundled model, which knows
            only the synthetic demo scene's four shapes. Not given with a triton:// device.
        device: "auto" (TensorRT, CUDA, then CPU), "cpu", "cuda" or "tensorrt"; or
            "triton://HOST:PORT/MODEL": the model runs on a Triton Inference Server (its contract
            comes from the server), pre- and post-processing here.
        imgsz: (height, width) for models with a dynamic input size.
        conf, iou, classes, max_det: the defaults of `detect` (score threshold, NMS overlap, the
            classes to keep by name or id, most boxes per image).
        threads: ONNX Runtime intra-op threads (0: its default).
        bind: IO binding, buffers on the device that runs the model: "auto" (on GPU providers),
            "on" (everywhere, the CPU included) or "off".

    `detect` may be called from several threads at once on one Detector; with binding, their
    inferences take turns (the bound buffers are one per Detector).

    Raises:
        ModelError: the file is missing, not ONNX, or not a detector edge can feed and decode
            (checked here, by one trial inference, not at the first image).
        ValueError: an argument out of range (a message naming it).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "auto",
        *,
        imgsz: tuple[int, int] | None = None,
        conf: float = 0.25,
        iou: float = 0.45,
        classes: Sequence[str | int] | None = None,
        max_det: int = 300,
        threads: int = 0,
        bind: str = "auto",
    ) -> None:
        remote = device.startswith(REMOTE)
        path = None if remote and model is None else bundled_model() if model is None else model
        if path is None and not remote:
            raise ModelError("no bundled model found; pass model='your.onnx'")
        self.session = open_session(
            path, SessionOptions(device=device, threads=threads, warmup=1, bind=bind)
        )
        self.contract = self.session.contract
        self.names: tuple[str, ...] = tuple(self.contract.names)
        self.imgsz: tuple[int, int] = self.session.input_size(imgsz)
        self.options = PostprocessOptions(
            conf=conf, iou=iou, classes=self._class_ids(classes), max_det=max_det
        )

    @property
    def device(self) -> str:
        """What actually runs the model: tensorrt, cuda or cpu."""
        return self.session.device

    def _class_ids(self, classes: Sequence[str | int] | str | int | None) -> tuple[int, ...] | None:
        if classes is None:
            return None
        wanted = [classes] if isinstance(classes, (str, int)) else list(classes)
        ids = []
        for c in wanted:
            if isinstance(c, str) and c in self.names:
                ids.append(self.names.index(c))
            elif isinstance(c, int) and 0 <= c < len(self.names):
                ids.append(c)
            else:
                raise ValueError(
                    f"classes: unknown class {c!r}; this model knows {', '.join(self.names)}"
                )
        return tuple(ids)

    def detect(
        self,
        image: np.ndarray,
        conf: float | None = None,
        iou: float | None = None,
        classes: Sequence[str | int] | None = None,
    ) -> Detections:
        """Detections in one BGR uint8 image (H x W x 3, OpenCV order), labelled with `names`.

        `conf`, `iou` and `classes` override the constructor's for this call.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or not image.size:
            raise ValueError(
                f"image must be an H x W x 3 uint8 BGR array, got shape {image.shape} {image.dtype}"
            )
        o = self.options
        if conf is not None or iou is not None or classes is not None:
            o = PostprocessOptions(
                conf=o.conf if conf is None else conf,
                iou=o.iou if iou is None else iou,
                classes=o.classes if classes is None else self._class_ids(classes),
                max_det=o.max_det,
                nonfinite=o.nonfinite,
            )
        tensor, lb = prepare(image, self.contract, self.imgsz)
        dets = postprocess(self.session.run(tensor), self.contract, lb, o)
        return dets.with_names(self.names)

    def __call__(self, image: np.ndarray) -> Detections:
        return self.detect(image)

    def close(self) -> None:
        """Release the model (ONNX Runtime frees it with the session; a server's connection is
        closed)."""
        if self.session is not None:
            self.session.close()
        self.session = None  # type: ignore[assignment]

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Detector({self.session.describe() if self.session else 'closed'}, {len(self.names)} classes)"
