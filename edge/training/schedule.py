"""Learning rate: linear warm-up, then cosine decay to a floor; a function of the step count.

Being a pure function of the optimizer's `iterations`, it resumes exactly with no extra state.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="edge")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """`peak * step / warmup` for the first `warmup` steps, then cosine down to `peak * floor`."""

    def __init__(
        self, peak: float, total_steps: int, warmup_steps: int = 0, floor: float = 0.01
    ) -> None:
        if (
            peak <= 0
            or total_steps < 1
            or not 0 <= warmup_steps <= total_steps
            or not 0 <= floor <= 1
        ):
            raise ValueError(
                "need peak > 0, total_steps >= 1, 0 <= warmup_steps <= total_steps, 0 <= floor <= 1; "
                f"got {peak}, {total_steps}, {warmup_steps}, {floor}"
            )
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.floor = float(floor)

    def __call__(self, step: Any) -> Any:
        step = ops.cast(step, "float32")
        warm = max(self.warmup_steps, 1)
        warmup = self.peak * ops.minimum(step + 1.0, float(warm)) / float(warm)
        span = float(max(self.total_steps - self.warmup_steps, 1))
        progress = ops.clip((step - float(self.warmup_steps)) / span, 0.0, 1.0)
        cosine = self.floor + (1.0 - self.floor) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < float(self.warmup_steps), warmup, self.peak * cosine)

    def value(self, step: int) -> float:
        """The rate at `step`, as a Python float (for logs)."""
        if step < self.warmup_steps:
            return self.peak * min(step + 1, self.warmup_steps) / self.warmup_steps
        progress = min(
            max((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0.0), 1.0
        )
        return self.peak * (
            self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "floor": self.floor,
        }
