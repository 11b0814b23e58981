"""The decoupled head, shared across levels: class logits and ltrb distances per point.

Convolution weights are shared by the three levels (one detector for every scale, and fewer
parameters to learn from a few hundred images); batch norms stay per level because feature
statistics differ between strides.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from edge.model.blocks import BN_EPSILON, BN_MOMENTUM

PRIOR_PROBABILITY = 0.01  # initial class score, so early training is not swamped by background
PRIOR_DISTANCE = 2.0  # initial ltrb distance in strides (a 4-stride box)


def decoupled_head(
    features: list[Any], num_classes: int, width: int, activation: str = "silu"
) -> tuple[list[Any], list[Any]]:
    """[P3, P4, P5] -> (ltrb raw [B, h, w, 4] per level, class logits [B, h, w, C] per level)."""
    stem = _SharedConv(width, 1, "head_stem", activation)
    cls_convs = [_SharedConv(width, 3, f"head_cls{i}", activation) for i in range(2)]
    reg_convs = [_SharedConv(width, 3, f"head_reg{i}", activation) for i in range(2)]
    cls_bias = -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)
    reg_bias = math.log(math.expm1(PRIOR_DISTANCE))  # softplus(bias) == PRIOR_DISTANCE
    cls_pred = keras.layers.Conv2D(
        num_classes, 1, bias_initializer=keras.initializers.Constant(cls_bias), name="head_cls_pred"
    )
    reg_pred = keras.layers.Conv2D(
        4, 1, bias_initializer=keras.initializers.Constant(reg_bias), name="head_reg_pred"
    )
    ltrb, logits = [], []
    for level, x in enumerate(features):
        x = stem(x, level)
        c = x
        for conv in cls_convs:
            c = conv(c, level)
        r = x
        for conv in reg_convs:
            r = conv(r, level)
        logits.append(cls_pred(c))
        ltrb.append(reg_pred(r))
    return ltrb, logits


class _SharedConv:
    """A convolution applied to every level, each level with its own BatchNorm.

    Kernel 3 is depthwise-separable (shared depthwise and pointwise); kernel 1 is pointwise.
    """

    def __init__(self, filters: int, kernel: int, name: str, activation: str) -> None:
        self.depthwise = (
            keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")
            if kernel == 3
            else None
        )
        self.pointwise = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")
        self.name = name
        self.activation = activation

    def __call__(self, x: Any, level: int) -> Any:
        if self.depthwise is not None:
            x = self.depthwise(x)
            x = self._bn_act(x, f"{self.name}_dw_bn_p{level + 3}")
        x = self.pointwise(x)
        return self._bn_act(x, f"{self.name}_pw_bn_p{level + 3}")

    def _bn_act(self, x: Any, name: str) -> Any:
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)(x)
        return keras.layers.Activation(self.activation, name=f"{name}_act")(x)
