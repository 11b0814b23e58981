"""Datasets: one internal representation for YOLO, COCO and Pascal VOC, plus the synthetic set.

Nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

from edge.data.dataset import Dataset, Sample
from edge.data.load import FORMATS, detect_format, load_dataset

__all__ = ["FORMATS", "Dataset", "Sample", "detect_format", "load_dataset"]
