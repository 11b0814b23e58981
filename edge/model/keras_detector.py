"""The Keras detector: backbone -> PAN-FPN neck -> shared decoupled head -> decoded boxes and scores.

`KerasDetector` is the network edge trains and exports (the runtime's `edge.api.detector.Detector` runs
the exported ONNX file). It is a functional Keras model whose constructor arguments are its config,
so `keras.saving.load_model(path)` rebuilds it in safe mode once this module is imported.
Training outputs are {"boxes", "logits"}; the inference variant outputs {"boxes", "scores"}.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from edge.model.backbone import STRIDES, build_backbone
from edge.model.backbones import DEFAULT_BACKBONE, check_name, default_width
from edge.model.blocks import BN_MOMENTUM
from edge.model.decode import DecodeBoxes, anchor_points
from edge.model.head import decoupled_head
from edge.model.losses import DetectionLoss
from edge.model.neck import pan_fpn
from edge.runtime.contract import XYXY_SCORES, ModelContract

LEGACY_REGISTERED_NAME = "edge>Detector"  # what .keras files saved before the rename call it


def _imgsz(value: int | Sequence[int]) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(pair) != 2 or any(v < 32 or v % 32 for v in pair):
        raise ValueError(f"imgsz must be a positive multiple of 32 (or two of them), got {value!r}")
    return (int(pair[0]), int(pair[1]))


@keras.saving.register_keras_serializable(package="edge")
class KerasDetector(keras.Model):
    """An anchor-free single-stage detector for `names` at input size `imgsz` (height, width).

    Input `images` float32 [B, H, W, 3] RGB 0..255. Outputs (dict): `boxes` [B, N, 4] xyxy in
    input pixels and `logits` [B, N, C], or `scores` (sigmoid) instead of `logits` when
    `inference=True`. `backbone_weights` ("imagenet", None or a file) is used when building and
    never stored: a loaded model takes its weights from the file it is loaded from.
    """

    def __init__(
        self,
        names: Sequence[str],
        imgsz: int | Sequence[int] = 320,
        backbone: str = DEFAULT_BACKBONE,
        width: int | None = None,
        depth: int = 1,
        activation: str = "silu",
        bn_momentum: float = BN_MOMENTUM,
        inference: bool = False,
        backbone_weights: str | None = None,
        **kwargs: Any,
    ) -> None:
        names = tuple(str(n) for n in names)
        if not names:
            raise ValueError("names must list at least one class")
        check_name(backbone)
        size = _imgsz(imgsz)
        width = default_width(backbone) if width is None else int(width)
        if width < 8 or depth < 0:
            raise ValueError(f"width must be >= 8 and depth >= 0, got {width} and {depth}")
        if not 0.0 <= bn_momentum < 1.0:
            raise ValueError(f"bn_momentum must be in [0, 1), got {bn_momentum}")

        images = keras.Input((*size, 3), name="images")
        features = build_backbone(backbone, size, backbone_weights, activation)(images)
        pyramid = pan_fpn(list(features), width, depth, activation)
        ltrb, logits = decoupled_head(pyramid, len(names), width, activation)
        boxes, logits = DecodeBoxes(STRIDES, name="decode")(ltrb, logits)
        boxes = keras.layers.Identity(name="boxes", dtype="float32")(boxes)
        if inference:
            outputs = {
                "boxes": boxes,
                "scores": keras.layers.Activation("sigmoid", name="scores", dtype="float32")(
                    logits
                ),
            }
        else:
            outputs = {
                "boxes": boxes,
                "logits": keras.layers.Identity(name="logits", dtype="float32")(logits),
            }
        kwargs.setdefault("name", "detector")
        super().__init__(inputs=images, outputs=outputs, **kwargs)
        # One momentum for every batch norm: keras.applications use 0.999, whose moving statistics
        # lag for thousands of steps, longer than a whole run on a few hundred images.
        for layer in _all_layers(self):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = float(bn_momentum)

        self.names = names
        self.imgsz = size
        self.backbone_name = backbone
        self.width = width
        self.depth = int(depth)
        self.activation = activation
        self.bn_momentum = float(bn_momentum)
        self.inference = bool(inference)
        self.detection_loss = DetectionLoss()
        points, _ = anchor_points(size, STRIDES)
        self._points = points
        self.box_loss_tracker = keras.metrics.Mean(name="box_loss")
        self.cls_loss_tracker = keras.metrics.Mean(name="cls_loss")

    @property
    def backbone(self) -> keras.Model:
        return self.get_layer("backbone")

    def calibrate_batch_norm(self, images: np.ndarray, *, backbone: bool = True) -> None:
        """Set batch-norm moving statistics to those of `images` (one forward pass).

        Fresh moving statistics start at mean 0, variance 1, which is far from the data: with
        the usual momentum they need hundreds of steps to forget that start, and until then the
        model in inference mode (validation, export) differs from the one being trained.
        `backbone=False` keeps the backbone's (pretrained) statistics.
        """
        layers = (
            _all_layers(self)
            if backbone
            else [layer for layer in self.layers if layer.name != "backbone"]
        )
        norms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
        for layer in norms:
            layer.momentum = 0.0
        try:
            self(images, training=True)
        finally:
            for layer in norms:
                layer.momentum = self.bn_momentum

    @property
    def points(self) -> np.ndarray:
        """Point centres [N, 2] (x, y) in input pixels, in output order."""
        return self._points

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        """The detection loss for targets `y` [B, M, 5] (class, x1, y1, x2, y2; class -1 = pad)."""
        if y is None or self.inference:
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        points = ops.convert_to_tensor(self._points)
        parts = self.detection_loss.parts(y, y_pred["boxes"], y_pred["logits"], points)
        self.box_loss_tracker.update_state(parts["box"])
        self.cls_loss_tracker.update_state(parts["cls"])
        total = parts["box"] + parts["cls"]
        for extra in self.losses:  # e.g. regularisers added by layers
            total = total + ops.cast(extra, total.dtype)
        return _scale_for_replicas(total)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "names": list(self.names),
            "imgsz": list(self.imgsz),
            "backbone": self.backbone_name,
            "width": self.width,
            "depth": self.depth,
            "activation": self.activation,
            "bn_momentum": self.bn_momentum,
            "inference": self.inference,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> KerasDetector:
        return cls(**config)


# Old files ("edge>Detector") load as KerasDetector.
keras.saving.get_custom_objects()[LEGACY_REGISTERED_NAME] = KerasDetector


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    layers = []
    for layer in model.layers:
        layers.append(layer)
        if isinstance(layer, keras.Model):
            layers.extend(_all_layers(layer))
    return layers


def _scale_for_replicas(loss: Any) -> Any:
    """Divide by the replica count under tf.distribute, as Keras' own losses do; else identity."""
    try:
        from keras.src.losses.loss import scale_loss_for_distribution
    except ImportError:  # a Keras without it has no tf.distribute loss scaling to match
        return loss
    return scale_loss_for_distribution(loss)


def build_detector(
    names: Sequence[str],
    imgsz: int | Sequence[int] = 320,
    backbone: str = DEFAULT_BACKBONE,
    weights: str | None = None,
    **kwargs: Any,
) -> KerasDetector:
    """A new training detector; `weights` ("imagenet", None or a file) initialises the backbone."""
    return KerasDetector(names, imgsz, backbone, backbone_weights=weights, **kwargs)


def inference_model(detector: KerasDetector) -> KerasDetector:
    """The export/runtime form of `detector`: outputs {"boxes", "scores"}, float32, same weights."""
    if not isinstance(detector, KerasDetector):
        raise TypeError(f"expected an edge.model.KerasDetector, got {type(detector).__name__}")
    config = {**detector.get_config(), "inference": True, "name": f"{detector.name}_inference"}
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")  # an exported graph is float32 whatever trained it
    try:
        model = KerasDetector.from_config(config)
    finally:
        keras.config.set_dtype_policy(policy)
    model.set_weights(detector.get_weights())
    return model


def contract_for(model: KerasDetector) -> ModelContract:
    """The model contract of a KerasDetector (training or inference form): what export writes."""
    if not isinstance(model, KerasDetector):
        raise TypeError(f"expected an edge.model.KerasDetector, got {type(model).__name__}")
    return ModelContract(
        names=model.names,
        imgsz=model.imgsz,
        layout="NHWC",
        color="RGB",
        scale=1.0,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        output_format=XYXY_SCORES,
        extra={"edge.backbone": model.backbone_name, "edge.strides": ",".join(map(str, STRIDES))},
    )
