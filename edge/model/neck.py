"""A light PAN-FPN: top-down then bottom-up fusion of strides 8, 16, 32 at one channel width."""

from __future__ import annotations

from typing import Any

import keras

from edge.model.blocks import conv_bn, dw_conv_bn, fuse_block


def pan_fpn(features: list[Any], width: int, depth: int = 1, activation: str = "silu") -> list[Any]:
    """[C3, C4, C5] -> [P3, P4, P5], each `width` channels at strides 8, 16, 32."""
    c3, c4, c5 = features
    l3 = conv_bn(c3, width, 1, 1, "neck_lateral3", activation)
    l4 = conv_bn(c4, width, 1, 1, "neck_lateral4", activation)
    l5 = conv_bn(c5, width, 1, 1, "neck_lateral5", activation)

    up5 = keras.layers.UpSampling2D(2, interpolation="nearest", name="neck_up5")(l5)
    t4 = fuse_block(
        keras.layers.Concatenate(name="neck_cat4")([up5, l4]), width, depth, "neck_td4", activation
    )
    up4 = keras.layers.UpSampling2D(2, interpolation="nearest", name="neck_up4")(t4)
    p3 = fuse_block(
        keras.layers.Concatenate(name="neck_cat3")([up4, l3]), width, depth, "neck_td3", activation
    )

    d3 = dw_conv_bn(p3, width, 2, "neck_down3", activation)
    p4 = fuse_block(
        keras.layers.Concatenate(name="neck_cat4b")([d3, t4]), width, depth, "neck_bu4", activation
    )
    d4 = dw_conv_bn(p4, width, 2, "neck_down4", activation)
    p5 = fuse_block(
        keras.layers.Concatenate(name="neck_cat5b")([d4, l5]), width, depth, "neck_bu5", activation
    )
    return [p3, p4, p5]
