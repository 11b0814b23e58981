"""Backbones: a `keras.applications` network (or a tiny test net) cut at strides 8, 16 and 32.

Which backbones exist, and where each is cut, is the table in `edge.model.backbones`.

Every backbone takes raw RGB pixels 0..255; the normalisation it was trained with is inside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras

from edge.errors import EdgeError, ModelError, check_regular
from edge.model.backbones import BACKBONES, TINY, BackboneSpec, check_name
from edge.model.blocks import conv_bn, dw_conv_bn

STRIDES = (8, 16, 32)


def build_backbone(
    name: str, imgsz: tuple[int, int], weights: str | None = None, activation: str = "silu"
) -> keras.Model:
    """A model named "backbone": images [B, H, W, 3] 0..255 -> features at strides 8, 16, 32.

    `weights` is "imagenet", None, or a path to a `keras.applications` weights file (no top).
    Raises ValueError for an unknown name, EdgeError when ImageNet weights cannot be fetched
    offline, ModelError for a weights file that is missing or does not fit.
    """
    check_name(name)
    inputs = keras.Input((*imgsz, 3), name="images")
    if name == TINY:
        if weights is not None:
            raise ValueError("the tiny backbone has no pretrained weights; use weights=None")
        return keras.Model(inputs, _tiny(inputs, activation), name="backbone")
    spec = BACKBONES[name]
    base = _application(spec, name, imgsz, inputs, weights)
    outputs = [
        base.get_layer(spec.stride8).output,
        base.get_layer(spec.stride16).output,
        base.output,
    ]
    return keras.Model(base.inputs, outputs, name="backbone")


def _tiny(x: Any, activation: str) -> list[Any]:
    """A few strided convolutions: seconds to build and train, for tests and smoke runs."""
    x = keras.layers.Rescaling(1.0 / 255.0, name="tiny_rescale")(x)
    x = conv_bn(x, 16, 3, 2, "tiny_stem", activation)
    x = dw_conv_bn(x, 24, 2, "tiny_s4", activation)
    p3 = dw_conv_bn(x, 32, 2, "tiny_s8", activation)
    p4 = dw_conv_bn(p3, 48, 2, "tiny_s16", activation)
    p5 = dw_conv_bn(p4, 64, 2, "tiny_s32", activation)
    return [p3, p4, p5]


def _application(
    spec: BackboneSpec, name: str, imgsz: tuple[int, int], inputs: Any, weights: str | None
) -> keras.Model:
    constructor = getattr(keras.applications, spec.application)
    if weights not in (None, "imagenet"):
        path = Path(weights)
        if not path.exists():
            raise ModelError(f"backbone weights file not found: {path}")
        check_regular(path, f"backbone weights {path}", ModelError)
        weights = str(path)
    try:
        return constructor(
            input_tensor=inputs, include_top=False, weights=weights, include_preprocessing=True
        )
    except Exception as exc:  # keras raises a bare Exception for a failed download
        if weights == "imagenet" and "URL fetch failure" in str(exc):
            raise EdgeError(
                f"backbone {name!r}: weights='imagenet' must be downloaded once into "
                "~/.keras/models and this machine cannot reach the internet; pass a local "
                "weights file (--weights PATH) or train from scratch (--weights none)"
            ) from None
        if weights not in (None, "imagenet"):
            raise ModelError(f"backbone {name!r}: cannot load weights {weights}: {exc}") from None
        raise
