"""edge: real-time object detection on edge devices.

    import edge
    detector = edge.Detector()              # the bundled model; or edge.Detector("yolo11n.onnx")
    detections = detector.detect(image_bgr)  # -> edge.Detections
    for result in edge.stream("video.mp4"):  # the threaded loop of `edge run`
        ...

Importing this package is cheap and never imports TensorFlow or Keras: the public names load their
modules on first use (module `__getattr__`), and the runtime needs only numpy, OpenCV and ONNX Runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "Detector": "edge.detector",
    "Detections": "edge.types",
    "Frame": "edge.types",
    "stream": "edge.streaming",
    "EdgeError": "edge.errors",
    "ModelError": "edge.errors",
    "SourceError": "edge.errors",
}

__all__ = [
    "Detections",
    "Detector",
    "EdgeError",
    "Frame",
    "ModelError",
    "SourceError",
    "__version__",
    "stream",
]

if TYPE_CHECKING:
    from edge.detector import Detector
    from edge.errors import EdgeError, ModelError, SourceError
    from edge.streaming import stream
    from edge.types import Detections, Frame


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
