"""Named convolution blocks shared by the tiny backbone, the neck and the head.

Every layer gets an explicit, stable name: weights are matched by name when fine-tuning.
"""

from __future__ import annotations

from typing import Any

import keras

BN_MOMENTUM = 0.97
BN_EPSILON = 1e-3


def conv_bn(
    x: Any, filters: int, kernel: int, stride: int, name: str, activation: str | None = "silu"
) -> Any:
    """Conv (no bias) -> BatchNorm -> activation."""
    x = keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn"
    )(x)
    if activation:
        x = keras.layers.Activation(activation, name=f"{name}_act")(x)
    return x


def dw_conv_bn(x: Any, filters: int, stride: int, name: str, activation: str = "silu") -> Any:
    """Depthwise-separable 3x3: the cheap spatial mixing edge CPUs run fastest."""
    x = keras.layers.DepthwiseConv2D(
        3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw"
    )(x)
    x = keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_dw_bn"
    )(x)
    x = keras.layers.Activation(activation, name=f"{name}_dw_act")(x)
    return conv_bn(x, filters, 1, 1, f"{name}_pw", activation)


def fuse_block(x: Any, filters: int, depth: int, name: str, activation: str = "silu") -> Any:
    """1x1 fuse to `filters`, then `depth` residual depthwise-separable blocks."""
    x = conv_bn(x, filters, 1, 1, f"{name}_fuse", activation)
    for i in range(depth):
        y = dw_conv_bn(x, filters, 1, f"{name}_res{i}", activation)
        x = keras.layers.Add(name=f"{name}_res{i}_add")([x, y])
    return x
