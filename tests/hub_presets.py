"""Tiny KerasHub object detectors (random weights), saved as local preset folders.

Built from config, as the KerasHub tests build theirs, so they need no download: a RetinaNet on
a 4-stage ResNet (P3-P5) and a D-FINE on a small HGNetV2 (strides 16 and 32, 20 queries).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def retinanet(num_classes: int = 3, size: int = 64) -> Any:
    import keras_hub
    from keras_hub.src.models.resnet.resnet_backbone import ResNetBackbone
    from keras_hub.src.models.retinanet.retinanet_backbone import RetinaNetBackbone

    encoder = ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 32, 32, 32],
        stackwise_num_blocks=[1, 1, 1, 1],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block",
        image_shape=(None, None, 3),
    )
    backbone = RetinaNetBackbone(
        image_encoder=encoder, min_level=3, max_level=5, use_p5=False, image_shape=(None, None, 3)
    )
    # ImageNet normalisation per channel, as the COCO presets' converters have
    converter = keras_hub.layers.RetinaNetImageConverter(
        image_size=(size, size),
        scale=[1 / (255 * 0.229), 1 / (255 * 0.224), 1 / (255 * 0.225)],
        offset=[-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225],
    )
    model = keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone,
        num_classes=num_classes,
        preprocessor=keras_hub.models.RetinaNetObjectDetectorPreprocessor(
            image_converter=converter
        ),
        pre_logits_num_conv_layers=1,
    )
    # Random box-head weights make deltas of several units, so exp() puts boxes thousands of
    # pixels away, where fp32 rounding alone exceeds the parity limit (1e-4 of the input size);
    # a trained head's deltas are small: scale the last layer to give such deltas.
    kernel, bias = model.box_head.weights[-2:]
    kernel.assign(kernel * 0.01)
    bias.assign(bias * 0.0)
    return model


def dfine_backbone(num_classes: int = 80, size: int = 128) -> Any:
    from keras_hub.src.models.d_fine.d_fine_backbone import DFineBackbone
    from keras_hub.src.models.hgnetv2.hgnetv2_backbone import HGNetV2Backbone

    hgnet = HGNetV2Backbone(
        stem_channels=[3, 8, 8],
        stackwise_stage_filters=[
            [8, 8, 16, 1, 1, 3],
            [16, 8, 32, 1, 1, 3],
            [32, 16, 64, 1, 1, 5],
            [64, 16, 64, 1, 1, 5],
        ],
        apply_downsample=[False, True, True, True],
        use_lightweight_conv_block=[False, False, True, True],  # grouped convolutions
        depths=[1, 1, 1, 1],
        hidden_sizes=[16, 32, 64, 64],
        embedding_size=8,
        use_learnable_affine_block=True,
        hidden_act="relu",
        image_shape=(size, size, 3),
        out_features=["stage3", "stage4"],
    )
    return DFineBackbone(
        backbone=hgnet,
        decoder_in_channels=[16, 16],
        encoder_hidden_dim=16,
        num_denoising=10,
        num_labels=num_classes,
        hidden_dim=16,
        learn_initial_query=False,
        num_queries=20,
        anchor_image_size=(size, size),
        feat_strides=[16, 32],
        num_feature_levels=2,
        encoder_in_channels=[64, 64],
        encode_proj_layers=[1],
        num_attention_heads=2,
        encoder_ffn_dim=32,
        num_encoder_layers=1,
        hidden_expansion=0.34,
        depth_multiplier=0.5,
        eval_idx=-1,
        num_decoder_layers=2,
        decoder_attention_heads=2,
        decoder_ffn_dim=32,
        decoder_n_points=[2, 2],
        lqe_hidden_dim=8,
        num_lqe_layers=2,
        out_features=["stage3", "stage4"],
        image_shape=(size, size, 3),
    )


def dfine(num_classes: int = 80, size: int = 128) -> Any:
    import keras_hub

    converter = keras_hub.layers.DFineImageConverter(image_size=(size, size), scale=1 / 255)
    return keras_hub.models.DFineObjectDetector(
        backbone=dfine_backbone(num_classes, size),
        num_classes=num_classes,
        preprocessor=keras_hub.models.DFineObjectDetectorPreprocessor(image_converter=converter),
    )


def save(model: Any, folder: Path) -> Path:
    model.save_to_preset(str(folder))
    return folder
