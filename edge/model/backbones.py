"""The backbones edge's detectors are built on: names, the `keras.applications` network each one
is, where it is cut, and the default neck/head width on it.

Plain data (no Keras), so training options and the CLI can list and check names without loading
Keras; `edge.model.backbone` builds the networks from this table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackboneSpec:
    """A `keras.applications` constructor and the layers whose outputs are strides 8 and 16."""

    application: str
    stride8: str
    stride16: str
    width: int  # default neck/head channels for detectors on this backbone


BACKBONES: dict[str, BackboneSpec] = {
    "mobilenet_v3_small": BackboneSpec(
        "MobileNetV3Small", "expanded_conv_2_add", "expanded_conv_7_add", 64
    ),
    "mobilenet_v3_large": BackboneSpec(
        "MobileNetV3Large", "expanded_conv_5_add", "expanded_conv_11_add", 96
    ),
    "efficientnet_v2_b0": BackboneSpec("EfficientNetV2B0", "block3b_add", "block5e_add", 96),
}
TINY = "tiny"  # a few strided convolutions, for tests and smoke runs
TINY_WIDTH = 32
NAMES = (TINY, *BACKBONES)
DEFAULT_BACKBONE = "mobilenet_v3_small"


def default_width(name: str) -> int:
    check_name(name)
    return TINY_WIDTH if name == TINY else BACKBONES[name].width


def check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"backbone must be one of {', '.join(NAMES)}, got {name!r}")
