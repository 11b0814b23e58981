"""The optimizer: AdamW on a warm-up + cosine schedule, with an EMA of the weights.

The EMA reaches checkpoints through `checkpoint.ema_values`; the model itself keeps its raw
weights, so a run that stops and resumes (or unfreezes its backbone) trains on exactly.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from edge.training.schedule import WarmupCosine

NO_DECAY = ["bias", "gamma", "beta"]  # biases and batch-norm scales stay free of weight decay


@keras.saving.register_keras_serializable(package="edge")
class AdamW(keras.optimizers.AdamW):
    """Keras' AdamW with two changes to its EMA of the weights.

    The EMA momentum ramps up as `ema_momentum * (1 - exp(-step / ema_ramp))` (as YOLOv5+ do):
    early on, when weights move fast, the average follows them instead of mixing in the random
    start (Keras' EMA leaves batch-norm statistics out, so a lagging average also disagrees with
    them). And `fit` does not overwrite the model with the EMA when it ends.
    """

    def __init__(self, *args: Any, ema_ramp: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if ema_ramp <= 0:
            raise ValueError(f"ema_ramp must be > 0, got {ema_ramp}")
        self.ema_ramp = float(ema_ramp)

    def _update_model_variables_moving_average(self, trainable_variables: Any) -> None:
        if not self.use_ema:
            return
        step = ops.cast(self.iterations, "float32")
        momentum = self.ema_momentum * (1.0 - ops.exp(-step / self.ema_ramp))
        for var, average in zip(
            trainable_variables, self._model_variables_moving_average, strict=True
        ):
            if average is not None:
                m = ops.cast(momentum, var.dtype)
                average.assign(m * average + (1.0 - m) * var)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "ema_ramp": self.ema_ramp}

    def finalize_variable_values(self, var_list: Any) -> None:
        # Keras would zip `var_list` (only the trainable weights, fewer while the backbone is
        # frozen) with the EMA of every weight; checkpoints take the EMA explicitly instead.
        return None


def build_optimizer(
    lr: float,
    epochs: int,
    steps_per_epoch: int,
    *,
    warmup_epochs: float = 3.0,
    weight_decay: float = 0.01,
    ema: bool = True,
) -> AdamW:
    """AdamW for `epochs * steps_per_epoch` steps; the EMA averages about a twentieth of them,
    fully from a tenth of the run on."""
    total = epochs * steps_per_epoch
    warmup = min(round(warmup_epochs * steps_per_epoch), total // 2)
    optimizer = AdamW(
        learning_rate=WarmupCosine(lr, total, warmup),
        weight_decay=weight_decay,
        global_clipnorm=10.0,
        use_ema=ema,
        ema_momentum=min(max(1.0 - 20.0 / total, 0.9), 0.9999),
        ema_ramp=max(total / 30.0, 1.0),
    )
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
    return optimizer


def schedule_of(optimizer: Any) -> WarmupCosine:
    """The schedule object (not its current value) of an optimizer, possibly loss-scaled."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return inner._learning_rate
