"""Keras' view of the input pipeline: a PyDataset whose worker threads build `TrainBatches`."""

from __future__ import annotations

import threading
import time
from typing import Any

import keras
import numpy as np

from edge.data.batches import TrainBatches


class FeedClock:
    """Seconds each batch took to build (decode, augment), over the worker threads: how fast the
    feed could go, to set beside how fast the training step goes."""

    def __init__(self, workers: int) -> None:
        self.workers = max(workers, 1)
        self._seconds: list[float] = []
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._seconds.append(seconds)

    def take(self) -> tuple[int, float]:
        """(batches built, their mean build seconds) since the last call."""
        with self._lock:
            done, self._seconds = self._seconds, []
        return len(done), (sum(done) / len(done) if done else 0.0)

    def steps_per_s(self, mean_seconds: float) -> float:
        """Batches per second the workers can build together (0 when nothing was measured)."""
        return self.workers / mean_seconds if mean_seconds > 0 else 0.0


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
        clock: FeedClock | None = None,
    ) -> None:
        super().__init__(
            workers=max(workers, 1), use_multiprocessing=False, max_queue_size=max_queue_size
        )
        self.batches = batches
        self.epoch = epoch
        self.mosaic_until = mosaic_until
        self.clock = clock

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        mosaic = self.mosaic_until is None or self.epoch < self.mosaic_until
        started = time.perf_counter()
        batch = self.batches.batch(self.epoch, index, mosaic=mosaic)
        if self.clock is not None:
            self.clock.add(time.perf_counter() - started)
        return batch

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
