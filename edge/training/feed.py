"""Keras' view of the input pipeline: a PyDataset whose worker threads build `TrainBatches`."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from edge.data.batches import TrainBatches


class Feed(keras.utils.PyDataset):
    """Batches of `TrainBatches` for `fit`, built by `workers` threads (OpenCV frees the GIL).

    `epoch` advances at each epoch end; mosaic is off from epoch `mosaic_until` on.
    """

    def __init__(
        self,
        batches: TrainBatches,
        *,
        epoch: int = 0,
        mosaic_until: int | None = None,
        workers: int = 4,
        max_queue_size: int = 8,
    ) -> None:
        super().__init__(
            workers=max(workers, 1), use_multiprocessing=False, max_queue_size=max_queue_size
        )
        self.batches = batches
        self.epoch = epoch
        self.mosaic_until = mosaic_until

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        mosaic = self.mosaic_until is None or self.epoch < self.mosaic_until
        return self.batches.batch(self.epoch, index, mosaic=mosaic)

    def on_epoch_end(self) -> None:
        self.epoch += 1


@keras.saving.register_keras_serializable(package="edge")
class NoOp(keras.Model):
    """A model that does (almost) nothing: `fit` on it times the input path alone."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.w = self.add_weight(shape=(), initializer="zeros", name="w")

    def call(self, images: Any) -> Any:
        return keras.ops.mean(images[:, :1, :1, :1]) * self.w

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        return y_pred + 0.0 * keras.ops.mean(keras.ops.cast(y[..., :1], "float32"))


def benchmark_feed(batches: TrainBatches, *, steps: int = 20, workers: int = 4) -> dict[str, float]:
    """Images per second through Keras `fit` with a no-op model: the pipeline's ceiling in training.

    Runs as many epochs as `steps` needs, so epoch ends (and the feed's restarts) are counted.
    """
    import time

    model = NoOp()
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    model.fit(Feed(batches, workers=workers), epochs=1, steps_per_epoch=1, verbose=0)  # trace
    epochs = -(-steps // len(batches))
    start = time.perf_counter_ns()
    model.fit(Feed(batches, workers=workers), epochs=epochs, verbose=0)
    seconds = (time.perf_counter_ns() - start) / 1e9
    done = epochs * len(batches)
    return {
        "steps_per_s": done / seconds,
        "images_per_s": done * batches.batch_size / seconds,
        "seconds": seconds,
    }
