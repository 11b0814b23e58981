"""Training detectors (`edge train`): options, the input feed, the fit loop, checkpoints.

Importing this package does not import TensorFlow or Keras; `train` imports them when called.
"""

from __future__ import annotations

from edge.training.fit import TrainResult, train
from edge.training.train_options import DEFAULT_MODEL, MODELS, TrainOptions

__all__ = ["DEFAULT_MODEL", "MODELS", "TrainOptions", "TrainResult", "train"]
