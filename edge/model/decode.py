"""From per-level head maps to flat predictions: boxes [B, N, 4] xyxy pixels and logits [B, N, C].

Points are the centres of each level's cells, level by level (stride 8 first), row-major.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops


def anchor_points(imgsz: tuple[int, int], strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(points [N, 2] float32 x, y pixel centres; strides [N] float32) for an input of (h, w)."""
    points, point_strides = [], []
    for s in strides:
        h, w = imgsz[0] // s, imgsz[1] // s
        ys, xs = np.meshgrid(
            np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij"
        )
        points.append(np.stack([xs.ravel(), ys.ravel()], axis=1) * s + s / 2)
        point_strides.append(np.full(h * w, s, np.float32))
    return np.concatenate(points).astype(np.float32), np.concatenate(point_strides)


@keras.saving.register_keras_serializable(package="edge")
class DecodeBoxes(keras.layers.Layer):
    """ltrb maps (raw) and class maps per level -> (boxes xyxy pixels, class logits), flattened.

    Distances are `softplus(raw) * stride`: positive, smooth and in pixels at every level.
    """

    def __init__(self, strides: Sequence[int] = (8, 16, 32), **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")  # box maths stays float32 under mixed precision
        super().__init__(**kwargs)
        self.strides = tuple(int(s) for s in strides)

    def call(self, ltrb_maps: list[Any], logit_maps: list[Any]) -> tuple[Any, Any]:
        boxes, logits = [], []
        for s, ltrb, logit in zip(self.strides, ltrb_maps, logit_maps, strict=True):
            h, w = ltrb.shape[1], ltrb.shape[2]
            ys, xs = np.meshgrid(
                np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij"
            )
            centres = np.stack([xs.ravel(), ys.ravel()], axis=1) * s + s / 2
            centres = ops.convert_to_tensor(np.concatenate([centres, centres], axis=1)[None])
            dist = ops.softplus(ops.reshape(ops.cast(ltrb, "float32"), (-1, h * w, 4))) * float(s)
            sign = ops.convert_to_tensor(np.array([-1, -1, 1, 1], np.float32))
            boxes.append(centres + dist * sign)
            logits.append(ops.reshape(ops.cast(logit, "float32"), (-1, h * w, logit.shape[-1])))
        return ops.concatenate(boxes, axis=1), ops.concatenate(logits, axis=1)

    def compute_output_spec(self, ltrb_maps: list[Any], logit_maps: list[Any]) -> tuple[Any, Any]:
        n = sum(m.shape[1] * m.shape[2] for m in ltrb_maps)
        batch = ltrb_maps[0].shape[0]
        c = logit_maps[0].shape[-1]
        return (
            keras.KerasTensor((batch, n, 4), dtype="float32"),
            keras.KerasTensor((batch, n, c), dtype="float32"),
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "strides": list(self.strides)}
