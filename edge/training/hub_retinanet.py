"""`edge train --init PRESET` for KerasHub's RetinaNet: edge's datasets and augmentation, its own
focal and box losses, `--batch B` images a step (dispatched from `edge.training.hub_train`, which
also holds what both families share: the model, compiling, checkpoints, the epoch-end callback).

KerasHub 0.32's RetinaNet loss takes edge's padded targets as they are (read from keras_hub/src/
models/retinanet): its label encoder matches each anchor to the target row of the highest IoU
(retinanet_label_encoder.py:166-175) and makes it a positive only above 0.5; a padded row (box
0, 0, 0, 0, class -1) has IoU 0 with every anchor, so it is never one. The loss is normalised by
the positives of the whole batch (retinanet_object_detector.py:247-253), and an image without
boxes is all background. Boxes go in the model's `bounding_box_format` (yxyx unless the preset
says otherwise), in input pixels. Batch norms are frozen (`prepare_batch_norms`), as detection
fine-tuning of a ResNet does with small batches, a random preset's once set from images: left
learning, a tiny random RetinaNet's boxes after 2 epochs grew until fp32 ONNX and Keras differed
by 98 px (not studied; D-FINE's norms do learn, see there).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge.data.dataset import Dataset
from edge.training.pydataset import Feed
from edge.training.train_options import TrainOptions

log = logging.getLogger(__name__)

PRIOR = 0.01  # a new class head starts at this score (the focal loss paper's prior)
CLIP_NORM = 10.0  # the global clip norm of KerasHub's / KerasCV's RetinaNet training examples


def retinanet_targets(targets: np.ndarray, box_format: str, imgsz: int) -> dict[str, np.ndarray]:
    """edge's targets [B, max_boxes, 5] (class, x1, y1, x2, y2 in input pixels, class -1 in
    padded rows) -> RetinaNet's {"boxes": [B, max_boxes, 4] in `box_format`, "labels": [B,
    max_boxes]}; padded rows stay (0, 0, 0, 0) with class -1."""
    boxes = keras.utils.bounding_boxes.convert_format(
        targets[..., 1:5], source="xyxy", target=box_format, height=imgsz, width=imgsz
    )
    boxes = np.array(keras.ops.convert_to_numpy(boxes), np.float32)
    padded = targets[..., 0] < 0
    boxes[padded] = 0.0
    return {"boxes": boxes, "labels": targets[..., 0].astype(np.int32)}


class RetinaNetFeed(Feed):
    """edge's feed (worker threads, mosaic off for the last `--close-mosaic` epochs) with the
    preset's normalisation applied and the targets in RetinaNet's form."""

    def __init__(
        self, batches: Any, scale: np.ndarray, offset: np.ndarray, box_format: str, **kwargs: Any
    ) -> None:
        super().__init__(batches, **kwargs)
        self.scale, self.offset, self.box_format = scale, offset, box_format

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:  # type: ignore[override]
        images, targets = super().__getitem__(index)
        return images * self.scale + self.offset, retinanet_targets(
            targets, self.box_format, self.batches.imgsz
        )


def train_retinanet(
    dataset: Dataset,
    out: Path,
    options: TrainOptions,
    model: Any,
    state: Any = None,
    callbacks: Sequence[Any] = (),
) -> Any:
    """Fine-tune the RetinaNet `model` (`hub_model`'s) on `dataset`; a TrainResult."""
    from edge.data.batches import TrainBatches
    from edge.model.hub_detector import normalisation
    from edge.training.fit import cache_of, max_boxes_of
    from edge.training.hub_train import fit_hub, prepare_batch_norms, resumed_batch_norms

    scale, offset = normalisation(model)
    batches = TrainBatches(
        dataset.train, options.imgsz, options.batch, augment=options.augment,
        max_boxes=max_boxes_of(dataset.train, options), seed=options.seed,
        cache=cache_of(dataset.train, options),
    )  # fmt: skip
    if state is None:
        prepare_batch_norms(keras, model, batches, scale, offset, learn_fresh=False)
        _prior_bias(model)
    else:
        resumed_batch_norms(keras, model, state)
    optimizer = keras.optimizers.AdamW(
        learning_rate=options.lr, weight_decay=options.weight_decay, global_clipnorm=CLIP_NORM
    )
    log.info(
        "RetinaNet: %d parameters, %d train / %d val images, %d steps per epoch of %d images",
        model.count_params(), len(dataset.train), len(dataset.val), len(batches), options.batch,
    )  # fmt: skip
    feed = RetinaNetFeed(
        batches, scale, offset, model.bounding_box_format,
        epoch=state.epoch if state is not None else 0,
        mosaic_until=max(options.epochs - options.close_mosaic, 0), workers=options.workers,
    )  # fmt: skip
    return fit_hub(
        keras, model, optimizer, feed, dataset, out, options, state, callbacks, bool(options.jit)
    )


def _prior_bias(model: Any) -> None:
    """A class head whose last bias is all zero (new, or never trained: KerasHub starts it at
    0, a score of 0.5 on every anchor) starts at the score `PRIOR` instead."""
    bias = model.classification_head.prediction_layer.bias
    if not np.any(keras.ops.convert_to_numpy(bias)):
        bias.assign(np.full(bias.shape, -np.log((1 - PRIOR) / PRIOR), np.float32))
