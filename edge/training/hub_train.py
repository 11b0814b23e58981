"""`edge train --init PRESET` for KerasHub's D-FINE: edge's datasets and augmentation, D-FINE's own
loss, val mAP each epoch, `last.keras` / `best.keras` (KerasHub models) that `edge export` takes.

Two KerasHub 0.32 defects decide how batches are fed (both read from keras_hub/src/models/d_fine):
- no padding mask: `DFineObjectDetector.compute_loss` (d_fine_object_detector.py:481-490) counts
  every row of the [B, N] targets as an object (`num_targets_per_image` = N for every image), so
  a padded row would be matched to a query and learned as a box at (0, 0, 0, 0);
- with several images per batch the losses take each image's matched targets by its per-image
  column index from the whole batch's flattened rows, without the image's offset
  (d_fine_loss.py:262-272 in the VFL loss, 368-371 in the box losses, 475-478 in the local
  losses), so images 2..B are trained towards image 1's boxes.
So every step sees one image with exactly its own boxes (`dfine_targets`), and `--batch B`
accumulates the gradients of B such steps (the optimizer's `gradient_accumulation_steps`). The
batch norms of a batch of one would be noise: they are frozen (`_freeze_batch_norms`).
Validation predicts as `edge eval` does a KerasHub .keras (`edge.model.hub_detector.dfine_rows`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.data.dataset import Dataset, Sample
from edge.errors import EdgeError
from edge.training.train_options import TrainOptions

log = logging.getLogger(__name__)

CLIP_NORM = 0.1  # D-FINE's own recipe clips gradients at 0.1


def dfine_targets(targets: np.ndarray, imgsz: int) -> dict[str, np.ndarray]:
    """One image's edge targets [max_boxes, 5] (class, x1, y1, x2, y2 in input pixels, class -1
    in padded rows) -> D-FINE's {"boxes": [1, n, 4] cx cy w h in 0..1, "labels": [1, n]} holding
    the n real rows only (its loss would learn a padded row as an object)."""
    rows = targets[targets[:, 0] >= 0]
    xyxy = np.clip(rows[:, 1:5] / float(imgsz), 0.0, 1.0)
    boxes = np.stack(
        [
            (xyxy[:, 0] + xyxy[:, 2]) / 2,
            (xyxy[:, 1] + xyxy[:, 3]) / 2,
            xyxy[:, 2] - xyxy[:, 0],
            xyxy[:, 3] - xyxy[:, 1],
        ],
        axis=-1,
    )
    return {
        "boxes": boxes[None].astype(np.float32),
        "labels": rows[None, :, 0].astype(np.int32),
    }


def train_dfine(dataset: Dataset, out: str | Path, options: TrainOptions) -> Any:
    """Fine-tune the D-FINE preset `options.init` (a local preset folder or a preset name) on
    `dataset`; a new class head when its classes differ. Returns an `edge.training.TrainResult`."""
    import keras

    from edge.data.batches import TrainBatches
    from edge.export.hub_preset import NAMES_FILE, check_preset, load_detector
    from edge.model.hub_detector import DFINE, check_dfine_size, normalisation, retargeted
    from edge.training.checkpoint import write_text
    from edge.training.fit import TrainResult

    out = Path(out)
    check_hub_devices(keras.backend.backend(), options)
    hub_placement(options)
    preset = check_preset(options.init or "", flag="--init")
    keras.utils.set_random_seed(options.seed)
    source = load_detector(preset, flag="--init")
    if type(source).__name__ != DFINE:
        raise EdgeError(
            f"--init {preset.name}: a {type(source).__name__}; edge trains KerasHub's D-FINE "
            "presets (RetinaNet presets export with `edge export --preset`)"
        )
    size = (options.imgsz, options.imgsz)
    check_dfine_size(source.backbone, size)
    model = retargeted(keras, source, len(dataset.names), size)
    scale, offset = normalisation(model)
    samples = [s for s in dataset.train if len(s.boxes)]
    if not samples:
        raise EdgeError(f"{dataset.root}: no training image has a box")
    if len(samples) < len(dataset.train):
        log.info("%d train images without boxes left out", len(dataset.train) - len(samples))
    batches = TrainBatches(
        samples, options.imgsz, 1, augment=options.augment, max_boxes=options.max_boxes,
        seed=options.seed, cache=True,
    )  # fmt: skip
    _freeze_batch_norms(keras, model, batches, scale, offset)
    accumulate = options.batch if options.batch > 1 else None
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=options.lr,
            weight_decay=options.weight_decay,
            clipnorm=CLIP_NORM,
            gradient_accumulation_steps=accumulate,
        ),
        jit_compile=hub_jit(keras.backend.backend(), options),
    )
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "options.json", options.to_json())
    write_text(out / NAMES_FILE, json.dumps(list(dataset.names)))
    log.info(
        "D-FINE from %s: %d parameters, %d train / %d val images, %d steps per epoch "
        "(one image each, gradients of %d summed)",
        preset.name, model.count_params(), len(samples), len(dataset.val), len(batches),
        options.batch,
    )  # fmt: skip
    epoch_end = _epoch_end(keras, out, dataset.val, dataset.names)
    # keras.Model.fit, not KerasHub's: its PipelineModel.fit (keras_hub/src/utils/
    # pipeline_model.py:570) turns the input into a tf.data or grain dataset and maps the
    # preprocessor over it, which takes no Python feed; edge's feed is normalised here.
    fitted = keras.Model.fit(
        model,
        _feed(keras, batches, scale, offset),
        epochs=options.epochs,
        callbacks=[epoch_end],
        verbose=options.verbose,
    )
    history = {k: [float(v) for v in vals] for k, vals in fitted.history.items()}
    return TrainResult(
        out, out / "best.keras", out / "last.keras", options.epochs, epoch_end.best, history
    )


def hub_jit(backend: str, options: TrainOptions) -> bool:
    """XLA for D-FINE's train step: `--jit on/off`, else on under JAX and off under TensorFlow.
    Every new box count is a new shape: a jitted step is compiled again for each. Under JAX the
    alternative, eager, dispatches and compiles every op on its own, which costs more. Measured
    (tiny D-FINE of tests/hub_presets.py, 64 px, `train_on_batch`, CPU seconds on a busy CPU):
    JAX jit: 67 s for the first step (the compile), 0.9 s for the next with the same box count;
    JAX eager: the first step not done after 2 min. TensorFlow without XLA still runs the step
    as one graph (tf.function), so XLA would only add a compile per box count."""
    return backend == "jax" if options.jit is None else bool(options.jit)


def check_hub_devices(backend: str, options: TrainOptions) -> None:
    """KerasHub training runs on one device: several would each need one image with its own
    boxes per step. JAX's DataParallel computes the loss once over the global batch (SPMD), where
    D-FINE's loss mixes the images (see the module's docstring); TensorFlow's MirroredStrategy
    does compute it per replica (keras/src/backend/tensorflow/trainer.py: `train_step` runs in
    `strategy.run`), but its first-batch build averages the replicas' batches, which needs equal
    box counts, and D-FINE's loss is not divided by the replica count: not wired yet."""
    if options.devices in (None, 1):
        return
    why = (
        "keras' DataParallel computes the loss over the whole batch, and D-FINE's loss mixes "
        "the images of a batch"
        if backend == "jax"
        else "each device would need its own image and boxes per step"
    )
    raise EdgeError(
        f"--devices {options.devices}: KerasHub D-FINE trains on one device ({why}); "
        "use --devices 1 (--batch accumulates gradients instead)"
    )


def hub_placement(options: TrainOptions) -> Any:
    """One device (the first accelerator, else the CPU), and the precision it trains in: fp32.
    `--precision mixed` falls back to fp32 on a CPU, as edge's own training does; on an
    accelerator it is refused (a float16 D-FINE is neither loaded nor tested here)."""
    from edge.training.distribute import place

    placement = place(1)
    if options.precision == "mixed":
        if placement.accelerator:
            raise EdgeError(
                "--precision mixed: KerasHub D-FINE training runs in fp32; use --precision fp32"
            )
        log.warning("--precision mixed needs a GPU; training in fp32 on the CPU")
    return placement


def _freeze_batch_norms(
    keras: Any, model: Any, batches: Any, scale: np.ndarray, offset: np.ndarray
) -> None:
    """Batch norms run on their statistics, frozen (a batch of one would make them noise). A
    preset whose norms never saw data (statistics still 0 and 1: built from config, random
    weights) gets them from one pass over up to 16 training images first, as edge's own
    detectors are calibrated; a trained preset keeps its own."""
    norms = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]  # noqa: SLF001  # fmt: skip
    fresh = [
        n for n in norms
        if not np.any(keras.ops.convert_to_numpy(n.moving_mean))
        and np.all(keras.ops.convert_to_numpy(n.moving_variance) == 1.0)
    ]  # fmt: skip
    if fresh:
        count = min(len(batches), 16)
        x = np.concatenate([batches.batch(0, i, mosaic=False)[0] for i in range(count)])
        momenta = [n.momentum for n in norms]
        for n in norms:  # moving = moving * momentum + batch * (1 - momentum)
            n.momentum = 0.0 if n in fresh else 1.0
        model(x * scale + offset, training=True)
        for n, momentum in zip(norms, momenta, strict=True):
            n.momentum = momentum
        log.info("%d of %d batch norms had no statistics: set from %d images", len(fresh),
                 len(norms), count)  # fmt: skip
    for n in norms:
        n.trainable = False


def _feed(keras: Any, batches: Any, scale: np.ndarray, offset: np.ndarray) -> Any:
    """One normalised image and its own boxes per step (see the module's docstring)."""

    class Feed(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0

        def __len__(self) -> int:
            return len(batches)

        def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
            for step in range(len(batches)):  # augmentation may crop every box away: the next
                images, targets = batches.batch(self.epoch, (index + step) % len(batches))
                y = dfine_targets(targets[0], batches.imgsz)
                if y["labels"].shape[1]:
                    return images * scale + offset, y
            raise EdgeError("augmentation left no image with a box")

        def on_epoch_end(self) -> None:
            self.epoch += 1

    return Feed()


def dfine_map(model: Any, samples: Sequence[Sample], names: Sequence[str]) -> dict[str, float]:
    """{"map50", "map50_95"} of a D-FINE model on `samples`, as `edge eval` scores a .keras."""
    from edge.evaluation import coco_metrics, predict_keras

    if not samples:
        return {"map50": math.nan, "map50_95": math.nan}
    result = coco_metrics(predict_keras(model, samples, names, batch_size=1), samples, names)
    return {"map50": float(result.map50), "map50_95": float(result.map50_95)}


def _epoch_end(keras: Any, out: Path, val: Sequence[Sample], names: Sequence[str]) -> Any:
    """A callback: validate, log, write results.csv, last.keras and (when mAP50-95 improved)
    best.keras."""
    from edge.training.callbacks import RESULTS_FILE, append_row
    from edge.training.checkpoint import copy_file, save_model

    class EpochEnd(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best = -math.inf
            self.started = time.monotonic()

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = dict(logs or {})
            logs.update(dfine_map(self.model, val, names))
            save_model(self.model, out / "last.keras")
            fitness = logs["map50_95"] if math.isfinite(logs["map50_95"]) else -logs["loss"]
            improved = fitness > self.best
            if improved:
                self.best = fitness
                copy_file(out / "last.keras", out / "best.keras")
            append_row(out / RESULTS_FILE, epoch, logs, time.monotonic() - self.started)
            log.info(
                "epoch %d: loss %.4g, val mAP50 %.3f, mAP50-95 %.3f%s", epoch + 1,
                logs.get("loss", math.nan), logs["map50"], logs["map50_95"],
                " (best)" if improved else "",
            )  # fmt: skip

    return EpochEnd()
