"""`edge train --init PRESET` for KerasHub's D-FINE: edge's datasets and augmentation, D-FINE's own
loss, val mAP each epoch, `last.keras` / `best.keras` (KerasHub models) that `edge export` takes.
`train_hub` picks the family (RetinaNet: `edge.training.hub_retinanet`); both share `hub_model`,
`fit_hub` and its epoch end, which writes the resume state (`edge.training.checkpoint`) last, so
`edge train --resume` continues such a run.

Two KerasHub 0.32 defects decide how batches are fed (both read from keras_hub/src/models/d_fine):
- no padding mask: `DFineObjectDetector.compute_loss` (d_fine_object_detector.py:481-490) counts
  every row of the [B, N] targets as an object (`num_targets_per_image` = N for every image), so
  a padded row would be matched to a query and learned as a box at (0, 0, 0, 0);
- with several images per batch the losses take each image's matched targets by its per-image
  column index from the whole batch's flattened rows, without the image's offset
  (d_fine_loss.py:262-272 in the VFL loss, 368-371 in the box losses, 475-478 in the local
  losses), so images 2..B are trained towards image 1's boxes.
So every step sees one image with exactly its own boxes (`dfine_targets`), and `--batch B`
accumulates the gradients of B such steps (the optimizer's `gradient_accumulation_steps`). A
trained preset's batch norms are frozen; a random one's learn (`prepare_batch_norms`).
Validation predicts as `edge eval` does a KerasHub .keras (`edge.model.hub_detector.dfine_rows`).
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
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


def train_hub(
    dataset: Dataset,
    out: str | Path,
    options: TrainOptions,
    state: Any = None,
    callbacks: Sequence[Any] = (),
) -> Any:
    """`edge train --init PRESET`, or `--resume` of such a run (`state`: its resume state): the
    KerasHub detector trained by its family's recipe (D-FINE here, RetinaNet in
    `edge.training.hub_retinanet`). Returns an `edge.training.TrainResult`."""
    import keras

    from edge.model.hub_detector import is_retinanet

    keras.utils.set_random_seed(options.seed)
    model = hub_model(keras, dataset.names, options, state)
    if is_retinanet(model):
        from edge.training.hub_retinanet import train_retinanet

        return train_retinanet(dataset, Path(out), options, model, state, callbacks)
    return train_dfine(dataset, out, options, model=model, state=state, callbacks=callbacks)


def hub_model(keras: Any, names: Sequence[str], options: TrainOptions, state: Any) -> Any:
    """The detector to train: the preset `options.init` with a class head for `names` (a new
    one when its classes differ) at `--imgsz`, or the one a resume state holds."""
    from edge.export.hub_preset import check_preset, load_detector
    from edge.model.hub_detector import check_dfine_size, is_dfine, retargeted

    if state is not None:
        from edge.training.checkpoint import assign

        try:
            import keras_hub  # noqa: F401  (registers its classes for deserialising)
        except ModuleNotFoundError:
            raise EdgeError(
                f"--resume: a KerasHub run ({options.init}); needs KerasHub "
                "(pip install 'edge[kerashub]')"
            ) from None
        with warnings.catch_warnings():  # "compile() was not called": fit_hub compiles it
            warnings.simplefilter("ignore", UserWarning)
            model = keras.saving.deserialize_keras_object(state.model_config)
        assign(state_variables(model), state.weights, "weight")
        return model
    preset = check_preset(options.init or "", flag="--init")
    source = load_detector(preset, flag="--init")
    size = (options.imgsz, options.imgsz)
    if is_dfine(source):
        check_dfine_size(source.backbone, size)
    log.info("%s from %s", type(source).__name__, preset.name)
    return retargeted(keras, source, len(names), size)


def state_variables(model: Any) -> list[Any]:
    """What a resume state keeps of a KerasHub model: its weights, then the states of its random
    seed generators (D-FINE's denoising queries draw from one), so a resumed run draws on."""
    weights = {id(v) for v in model.weights}
    seeds = [
        v for v in model.variables
        if id(v) not in weights and v.path.endswith("seed_generator_state")
    ]  # fmt: skip
    return [*model.weights, *seeds]


def train_dfine(
    dataset: Dataset,
    out: str | Path,
    options: TrainOptions,
    *,
    model: Any = None,
    state: Any = None,
    callbacks: Sequence[Any] = (),
) -> Any:
    """Fine-tune a D-FINE (`model`, default: `hub_model` of the options) on `dataset`."""
    import keras

    from edge.data.batches import TrainBatches
    from edge.model.hub_detector import DFINE, normalisation
    from edge.training import hub_matcher

    hub_matcher.install()  # KerasHub 0.32's matcher mismatches queries and objects (see there)
    check_hub_devices(keras.backend.backend(), options)
    hub_placement(options)
    if model is None:
        keras.utils.set_random_seed(options.seed)
        model = hub_model(keras, dataset.names, options, state)
    if type(model).__name__ != DFINE:
        raise EdgeError(f"--init {options.init}: a {type(model).__name__}, not a D-FINE")
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
    if state is None:
        prepare_batch_norms(keras, model, batches, scale, offset)
    else:
        resumed_batch_norms(keras, model, state)
    accumulate = options.batch if options.batch > 1 else None
    optimizer = keras.optimizers.AdamW(
        learning_rate=options.lr,
        weight_decay=options.weight_decay,
        clipnorm=CLIP_NORM,
        gradient_accumulation_steps=accumulate,
    )
    log.info(
        "D-FINE: %d parameters, %d train / %d val images, %d steps per epoch "
        "(one image each, gradients of %d summed)",
        model.count_params(), len(samples), len(dataset.val), len(batches), options.batch,
    )  # fmt: skip
    start = state.epoch if state is not None else 0
    feed = _feed(keras, batches, scale, offset, start)
    return fit_hub(
        keras, model, optimizer, feed, dataset, Path(out), options, state, callbacks,
        jit_compile=hub_jit(keras.backend.backend(), options),
    )  # fmt: skip


def fit_hub(
    keras: Any,
    model: Any,
    optimizer: Any,
    feed: Any,
    dataset: Dataset,
    out: Path,
    options: TrainOptions,
    state: Any,
    callbacks: Sequence[Any] = (),
    jit_compile: bool = False,
) -> Any:
    """Compile (the optimizer's variables from `state` when resuming), write options.json and
    names.json, fit from the state's epoch on with the epoch-end callback; a TrainResult."""
    from edge.export.hub_preset import NAMES_FILE
    from edge.training.callbacks import RESULTS_FILE, truncate_rows
    from edge.training.checkpoint import assign, remove_stale_temps, write_text
    from edge.training.fit import TrainResult

    model.compile(optimizer=optimizer, jit_compile=jit_compile)
    start, best = 0, -math.inf
    if state is not None:
        model.optimizer.build(model.trainable_variables)
        assign(model.optimizer.variables, state.optimizer, "optimizer")
        start, best = state.epoch, state.best
    out.mkdir(parents=True, exist_ok=True)
    for path in remove_stale_temps(out):
        log.info("removed %s, left by a run that was killed", path.name)
    if state is not None:  # rows written after the state (a kill between the two) go
        truncate_rows(out / RESULTS_FILE, start)
    write_text(out / "options.json", options.to_json())
    write_text(out / NAMES_FILE, json.dumps(list(dataset.names)))
    epoch_end = _epoch_end(keras, out, dataset, options.to_json(), best)
    # keras.Model.fit, not KerasHub's: its PipelineModel.fit (keras_hub/src/utils/
    # pipeline_model.py:570) turns the input into a tf.data or grain dataset and maps the
    # preprocessor over it, which takes no Python feed; edge's feed is normalised.
    fitted = keras.Model.fit(
        model,
        feed,
        epochs=options.epochs,
        initial_epoch=start,
        shuffle=False,  # the feed's own order, so a resume is exact (edge.training.fit)
        callbacks=[epoch_end, *callbacks],
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


FRESH_MOMENTUM = 0.9  # norms that learn their statistics: a moving average over ~10 images


def prepare_batch_norms(
    keras: Any,
    model: Any,
    batches: Any,
    scale: np.ndarray,
    offset: np.ndarray,
    learn_fresh: bool = True,
) -> None:
    """A trained preset's batch norms run on their own statistics, frozen (D-FINE's recipe for a
    pretrained backbone). A preset whose norms never saw data (statistics still 0 and 1: built
    from config, random weights) gets them from one pass over up to 16 training images, and
    those norms keep learning them (batch statistics of each step's image, momentum
    FRESH_MOMENTUM): frozen, they go stale while the convolutions before them train from random,
    and a channel calibrated at a variance of 4e-5 amplified each change ~150x. Measured on a
    tiny random D-FINE at 128 px: the hybrid encoder's activations reached 1e9 within 12 epochs,
    its LayerNorm then left no trace of the image, and every image got the same boxes. With
    `learn_fresh` False those norms are frozen too (RetinaNet, see there)."""
    norms = _norms(keras, model)
    fresh = [
        n for n in norms
        if not np.any(keras.ops.convert_to_numpy(n.moving_mean))
        and np.all(keras.ops.convert_to_numpy(n.moving_variance) == 1.0)
    ]  # fmt: skip
    momenta = [n.momentum for n in norms]
    if fresh:
        count = min(len(batches), -(-16 // batches.batch_size))  # up to 16 images
        x = np.concatenate([batches.batch(0, i, mosaic=False)[0] for i in range(count)])
        count = len(x)
        for n in norms:  # moving = moving * momentum + batch * (1 - momentum)
            n.momentum = 0.0 if n in fresh else 1.0
        model(x * scale + offset, training=True)
        log.info("%d of %d batch norms had no statistics: set from %d images%s", len(fresh),
                 len(norms), count, ", and learnt in training" if learn_fresh else "")  # fmt: skip
    learning = fresh if learn_fresh else []
    for n, momentum in zip(norms, momenta, strict=True):
        n.trainable = n in learning
        n.momentum = FRESH_MOMENTUM if n in learning else momentum


def resumed_batch_norms(keras: Any, model: Any, state: Any) -> None:
    """A resumed model's batch norms as its run left them: those in the state's
    `learning_norms` learn (momentum FRESH_MOMENTUM), the others are frozen."""
    learning = set(state.extra.get("learning_norms", []))
    for n in _norms(keras, model):
        n.trainable = n.path in learning
        if n.trainable:
            n.momentum = FRESH_MOMENTUM


def _norms(keras: Any, model: Any) -> list[Any]:
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]  # noqa: SLF001  # fmt: skip


def _feed(keras: Any, batches: Any, scale: np.ndarray, offset: np.ndarray, epoch: int = 0) -> Any:
    """One normalised image and its own boxes per step (see the module's docstring), from
    `epoch` on."""

    class Feed(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = epoch

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
    """{"map50", "map50_95"} of a KerasHub detector (D-FINE, RetinaNet) on `samples`, as
    `edge eval` scores a .keras."""
    from edge.evaluation import coco_metrics, predict_keras

    if not samples:
        return {"map50": math.nan, "map50_95": math.nan}
    result = coco_metrics(predict_keras(model, samples, names, batch_size=1), samples, names)
    return {"map50": float(result.map50), "map50_95": float(result.map50_95)}


def _epoch_end(keras: Any, out: Path, dataset: Dataset, options_json: str, best: float) -> Any:
    """A callback: validate, log, write results.csv, last.keras, (when mAP50-95 improved)
    best.keras, and last the resume state (`edge.training.checkpoint`: a kill before it leaves
    a row that the resumed run truncates)."""
    from edge.training.callbacks import RESULTS_FILE, append_row
    from edge.training.checkpoint import (
        STATE_FILE,
        ResumeState,
        copy_file,
        save_model,
        save_state,
        to_numpy,
    )

    val, names = dataset.val, dataset.names

    class EpochEnd(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best = best
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
            state = ResumeState(
                epoch=epoch + 1,
                best=self.best,
                options_json=options_json,
                model_config=keras.saving.serialize_keras_object(self.model),
                weights=to_numpy(state_variables(self.model)),
                optimizer=to_numpy(self.model.optimizer.variables),
                extra={
                    "learning_norms": [n.path for n in _norms(keras, self.model) if n.trainable]
                },
            )
            save_state(out / STATE_FILE, state)
            log.info(
                "epoch %d: loss %.4g, val mAP50 %.3f, mAP50-95 %.3f%s", epoch + 1,
                logs.get("loss", math.nan), logs["map50"], logs["map50_95"],
                " (best)" if improved else "",
            )  # fmt: skip

    return EpochEnd()
