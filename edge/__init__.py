"""edge: real-time object detection on edge devices.

Importing this package is cheap and never imports TensorFlow or Keras: the runtime path
(`edge run`) needs only numpy, OpenCV and ONNX Runtime.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
