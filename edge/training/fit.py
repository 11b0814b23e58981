"""`train`: from a Dataset to `best.keras` — setup, the (optionally frozen-backbone) fit phases,
and resuming. Keras is imported inside functions, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.data.dataset import Dataset, Sample
from edge.errors import DataError, EdgeError
from edge.training.train_options import TrainOptions

log = logging.getLogger(__name__)

CACHE_LIMIT_BYTES = 2**30  # decoded training images are kept in memory below this


@dataclass(frozen=True)
class TrainResult:
    """Where a run wrote its models, and its per-epoch logs (`history[name][i]`)."""

    out: Path
    best: Path
    last: Path
    epochs: int
    best_fitness: float
    history: dict[str, list[float]] = field(default_factory=dict)


def train(
    dataset: Dataset,
    out: str | Path,
    options: TrainOptions | None = None,
    *,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    every_process_saves: bool = False,
) -> TrainResult:
    """Train a detector on `dataset`, writing `last.keras`, `best.keras`, `results.csv` to `out`.

    With `resume`, the run in `out` continues where it stopped, with the options it was started
    with (only `workers`, `devices`, `verbose` and where this process sits in a multi-machine run
    are taken from `options`). `callbacks` are extra Keras callbacks, run after the built-in ones.
    With several processes only process 0 writes to `out`, unless `every_process_saves` (then
    give each process its own `out`, or put them on different machines).

    Raises DataError for an empty dataset, EdgeError for a non-finite loss, missing weights or
    a missing resume state, ValueError for options that do not fit the devices.
    """
    from edge.training.checkpoint import STATE_FILE, load_state

    options = options or TrainOptions()
    out = Path(out)
    state = None
    if resume:
        state = load_state(out / STATE_FILE)
        options = TrainOptions.from_json(state.options_json).but(
            workers=options.workers,
            devices=options.devices,
            verbose=options.verbose,
            coordinator=options.coordinator,
            num_processes=options.num_processes,
            process_id=options.process_id,
        )
        if state.epoch >= options.epochs:
            raise EdgeError(f"{out}: the run already finished its {options.epochs} epochs")
        log.info("resuming %s at epoch %d/%d", out, state.epoch + 1, options.epochs)
    _check_dataset(dataset)
    if options.init and Path(options.init).suffix.lower() != ".keras":
        from edge.training.hub_train import train_hub  # a KerasHub preset (folder or name)

        return train_hub(dataset, out, options, state, callbacks)
    out.mkdir(parents=True, exist_ok=True)
    import keras

    policy = keras.config.dtype_policy()  # --precision sets the global policy; put it back after
    try:
        return _train(dataset, out, options, state, callbacks, every_process_saves)
    finally:
        keras.config.set_dtype_policy(policy)


def _train(
    dataset: Dataset,
    out: Path,
    options: TrainOptions,
    state: Any,
    callbacks: Sequence[Any],
    every_process_saves: bool,
) -> TrainResult:
    run = _setup(dataset, out, options, state, every_process_saves)
    history: dict[str, list[float]] = {}
    start = state.epoch if state else 0
    for first, stop, frozen in _phases(start, options.epochs, options.freeze_backbone_epochs):
        run.model.backbone.trainable = not frozen
        with run.placement.scope():
            # Recompiling retraces the step for the new set of trainable weights; the optimizer,
            # built over every weight, keeps its state across the switch.
            run.model.compile(optimizer=run.model.optimizer, jit_compile=_jit(options))
            fitted = run.model.fit(
                run.feed(first),
                epochs=stop,
                initial_epoch=first,
                # The feed orders each epoch itself, by (seed, epoch) (TrainBatches.order);
                # fit's shuffle would permute it again with Python's global `random`, which a
                # resumed run re-seeds: its epochs would not see the uninterrupted run's order.
                shuffle=False,
                callbacks=[run.epoch_end, *callbacks],
                verbose=options.verbose if run.placement.chief else 0,
            )
        for key, values in fitted.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        if run.epoch_end.nan_at is not None:
            epoch, step, value = run.epoch_end.nan_at
            raise EdgeError(
                f"training stopped: the loss became {value} at epoch {epoch + 1}, step {step + 1}; "
                "try a lower --lr, --precision fp32, or check the labels"
            )
        if run.model.stop_training:
            break
    done = len(history.get("loss", [])) + start
    return TrainResult(
        out, out / "best.keras", out / "last.keras", done, run.epoch_end.best, history
    )


@dataclass
class _Run:
    model: Any
    placement: Any
    epoch_end: Any
    batches: Any
    options: TrainOptions

    def feed(self, epoch: int) -> Any:
        from edge.training.pydataset import Feed

        mosaic_until = max(self.options.epochs - self.options.close_mosaic, 0)
        return Feed(
            self.batches,
            epoch=epoch,
            mosaic_until=mosaic_until,
            workers=self.options.workers,
            clock=self.epoch_end.clock,
        )


def _setup(
    dataset: Dataset, out: Path, options: TrainOptions, state: Any, every_process_saves: bool
) -> _Run:
    import keras

    from edge.data.batches import TrainBatches
    from edge.model import KerasDetector
    from edge.training.callbacks import RESULTS_FILE, EpochEnd, truncate_rows
    from edge.training.checkpoint import remove_stale_temps, write_text
    from edge.training.distribute import place, set_precision
    from edge.training.optimizer import build_optimizer, schedule_of
    from edge.training.pydataset import FeedClock
    from edge.training.validate import Validator

    shapes = None
    if options.model_parallel > 1:  # the layout map needs every weight's path and shape
        shapes = {v.path: tuple(v.shape) for v in _model(dataset.names, options, state).weights}
        keras.utils.clear_session()  # the real model gets the same layer names again
    placement = place(
        options.devices,
        coordinator=options.coordinator,
        num_processes=options.num_processes,
        process_id=options.process_id,
        model_parallel=options.model_parallel,
        weight_shapes=shapes,
    )
    precision = set_precision(options.precision, placement)
    keras.utils.set_random_seed(options.seed)
    local_batch = options.batch // options.num_processes
    local_replicas = max(placement.replicas // options.num_processes, 1)
    if local_batch % local_replicas:
        raise ValueError(
            f"--batch {options.batch} must be a multiple of the {placement.replicas} devices"
        )
    samples = _shard(dataset.train, options.num_processes, options.process_id)
    batches = TrainBatches(
        samples,
        options.imgsz,
        local_batch,
        augment=options.augment,
        max_boxes=max_boxes_of(dataset.train, options),
        seed=options.seed + options.process_id,
        cache=cache_of(samples, options),
    )
    with placement.scope():
        model = _model(dataset.names, options, state)
        if state is None and not options.init:
            pretrained = options.weights is not None and options.model != "tiny"
            # Statistics of the whole first batch: every process must set the same values.
            first = placement.global_batch(batches.batch(0, 0)[0])
            model.calibrate_batch_norm(first, backbone=not pretrained)
        optimizer = build_optimizer(
            options.lr,
            options.epochs,
            len(batches),
            warmup_epochs=options.warmup_epochs,
            weight_decay=options.weight_decay,
            ema=options.ema,
        )
        model.compile(optimizer=optimizer, jit_compile=_jit(options))
        model.optimizer.build(model.trainable_variables)
        if state is not None:
            from edge.training.checkpoint import assign

            assign(model.optimizer.variables, state.optimizer, "optimizer")
    # A plain copy to save: no optimizer inside.
    twin = KerasDetector.from_config(model.get_config())
    writes = placement.chief or every_process_saves
    if writes:
        for path in remove_stale_temps(out):
            log.info("removed %s, left by a run that was killed", path.name)
        write_text(out / "options.json", options.to_json())
    log.info(
        "%s on %s (%d device(s), %s): %d parameters, %d train / %d val images, %d steps per epoch",
        model.backbone_name,
        placement.backend,
        placement.replicas,
        precision,
        model.count_params(),
        len(dataset.train),
        len(dataset.val),
        len(batches),
    )
    epoch_end = EpochEnd(
        out=out,
        twin=twin,
        validator=Validator(dataset.val, dataset.names, options.imgsz, local_batch)
        if dataset.val
        else None,
        schedule=schedule_of(model.optimizer),
        options_json=options.to_json(),
        epochs=options.epochs,
        best=state.best if state is not None else -math.inf,
        writes=writes,
        clock=FeedClock(options.workers),
        batch_size=options.batch,
    )
    if state is not None and writes:
        truncate_rows(out / RESULTS_FILE, state.epoch)
    return _Run(model, placement, epoch_end, batches, options)


def _model(names: Sequence[str], options: TrainOptions, state: Any) -> Any:
    from edge.model import KerasDetector, build_detector, load_detector, transfer_weights

    if state is not None:
        model = KerasDetector.from_config(state.model_config)
        from edge.training.checkpoint import assign

        assign(model.weights, state.weights, "weight")
        return model
    if options.init:
        source = load_detector(options.init)
        if source.backbone_name != options.model:
            log.info("--init: using its backbone %s (not %s)", source.backbone_name, options.model)
        model = KerasDetector(
            names,
            options.imgsz,
            source.backbone_name,
            width=source.width,
            depth=source.depth,
            activation=source.activation,
            bn_momentum=source.bn_momentum,
        )
        transfer_weights(source, model)
        return model
    weights = options.weights if options.model != "tiny" else None
    return build_detector(
        names,
        options.imgsz,
        options.model,
        weights=weights,
        width=options.width,
        depth=options.depth,
    )


def _jit(options: TrainOptions) -> Any:
    return "auto" if options.jit is None else options.jit


def _phases(start: int, epochs: int, frozen: int) -> list[tuple[int, int, bool]]:
    """(first, stop, frozen) fit phases covering epochs [start, epochs)."""
    split = min(frozen, epochs)
    phases = [(start, split, True), (max(start, split), epochs, False)]
    return [p for p in phases if p[0] < p[1]]


def _shard(samples: Sequence[Sample], num_processes: int, process_id: int) -> list[Sample]:
    """Every `num_processes`-th sample from `process_id` on, topped up from the start so that
    every process has as many (and so the same number of steps: each step is a collective)."""
    count = -(-len(samples) // num_processes)
    return [samples[(process_id + i * num_processes) % len(samples)] for i in range(count)]


def max_boxes_of(samples: Sequence[Sample], options: TrainOptions) -> int:
    most = max((len(s.boxes) for s in samples), default=1)
    if options.augment.mosaic > 0:
        most *= 4
    return int(min(max(most, 1), options.max_boxes))


def cache_of(samples: Sequence[Sample], options: TrainOptions) -> bool:
    if options.cache is not None:
        return options.cache
    return len(samples) * options.imgsz**2 * 3 <= CACHE_LIMIT_BYTES


def _check_dataset(dataset: Dataset) -> None:
    if not dataset.train:
        raise DataError(f"{dataset.root}: no training images")
    if not dataset.names:
        raise DataError(f"{dataset.root}: no class names")
