"""KerasHub's object detectors (RetinaNet, D-FINE) as edge sees them: their family, class names,
input normalisation and input sizes, and the same detector rebuilt for another input size.

The functions take a loaded KerasHub detector; Keras is imported by whoever loaded it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

RETINANET = "RetinaNetObjectDetector"
DFINE = "DFineObjectDetector"
FAMILIES = (RETINANET, DFINE)
DEFAULT_SIZE = 640  # a preset whose converter and backbone name no input size


# The 80 COCO detection classes in KerasHub's (and Ultralytics') order: the COCO presets' heads.
COCO_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


def class_names(n: int) -> tuple[str, ...]:
    """The COCO names for an 80-class head, else class_0 .. class_{n-1}."""
    return COCO_NAMES if n == len(COCO_NAMES) else tuple(f"class_{i}" for i in range(n))


def check_dfine_size(backbone: Any, size: tuple[int, int]) -> None:
    """D-FINE picks its queries among the anchors of its feature maps: the input needs at least
    as many anchors as queries, and a multiple of the largest stride (ValueError otherwise)."""
    h, w = size
    strides = [int(s) for s in backbone.feat_strides]
    anchors = sum((h // s) * (w // s) for s in strides)
    queries = int(backbone.num_queries)
    step = max(strides)
    smallest = step
    while sum((smallest // s) ** 2 for s in strides) < queries:
        smallest += step
    if h % step or w % step:
        near = sorted(
            {max(smallest, v // step * step) for v in (h, w)}
            | {max(smallest, -(-max(h, w) // step) * step)}
        )
        raise ValueError(
            f"--imgsz {h}x{w}: D-FINE takes sides that are multiples of {step} (its largest "
            f"stride), {smallest} or more; use e.g. --imgsz {' or '.join(map(str, near))}"
        )
    if anchors < queries:
        raise ValueError(
            f"--imgsz {h}x{w}: D-FINE needs at least {queries} anchors for its {queries} queries "
            f"(strides {strides}: {anchors} anchors); use --imgsz {smallest} or more"
        )


def own_size(detector: Any) -> tuple[int, int]:
    anchor = getattr(detector.backbone, "anchor_image_size", None)
    if anchor:
        return (int(anchor[0]), int(anchor[1]))
    converter = getattr(detector.preprocessor, "image_converter", None)
    size = getattr(converter, "image_size", None)
    if size and all(size):
        return (int(size[0]), int(size[1]))
    shape = detector.backbone.image_shape
    if shape and shape[0] and shape[1]:
        return (int(shape[0]), int(shape[1]))
    return (DEFAULT_SIZE, DEFAULT_SIZE)


def normalisation(detector: Any) -> tuple[np.ndarray, np.ndarray]:
    """The image converter's per-channel `scale` and `offset` (1 and 0 without a converter)."""
    converter = getattr(detector.preprocessor, "image_converter", None)
    if converter is None:
        log.warning("the preset has no image converter: its model takes the pixels as they are")

    def channels(value: Any, default: float) -> np.ndarray:
        v = np.asarray(default if value is None else value, np.float32).reshape(-1)
        return np.broadcast_to(v, (3,)).copy()

    return channels(getattr(converter, "scale", None), 1.0), channels(
        getattr(converter, "offset", None), 0.0
    )


def at_size(keras: Any, detector: Any, size: tuple[int, int]) -> Any:
    """The detector built for `size` (its weights do not depend on it) when it was built for
    another: D-FINE's anchors are fixed at build time (`anchor_image_size`)."""
    shape = tuple(detector.backbone.image_shape or (None, None, 3))
    anchor = getattr(detector.backbone, "anchor_image_size", None)
    if shape[:2] in ((None, None), size) and (anchor is None or tuple(anchor) == size):
        return detector
    config = _resized(detector.get_config(), size)
    config["preprocessor"] = None
    try:
        resized = type(detector).from_config(config)
    except ValueError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ValueError(f"--imgsz {size[0]}x{size[1]}: {first}") from None
    resized.set_weights(detector.get_weights())
    return resized


def is_dfine(model: Any) -> bool:
    return type(model).__name__ == DFINE


def is_retinanet(model: Any) -> bool:
    return type(model).__name__ == RETINANET


def retinanet_anchors(keras: Any, detector: Any, size: tuple[int, int]) -> np.ndarray:
    """A RetinaNet's anchors [A, 4] for an input of `size`, in its anchor generator's format."""
    levels = detector.anchor_generator(np.zeros((1, size[0], size[1], 3), np.float32))
    return np.concatenate([keras.ops.convert_to_numpy(a) for a in levels.values()]).astype(
        np.float32
    )


def decode_anchors(
    keras: Any, anchors: Any, anchor_format: str, deltas: Any, size: tuple[int, int]
) -> Any:
    """RetinaNet's center_xywh deltas [B, A, 4] -> xyxy boxes in input pixels, as
    `RetinaNetObjectDetector.decode_predictions` decodes them."""
    return keras.utils.bounding_boxes.decode_deltas_to_boxes(
        anchors=keras.ops.convert_to_tensor(anchors),
        boxes_delta=deltas,
        anchor_format=anchor_format,
        box_format="xyxy",
        encoded_format="center_xywh",
        image_shape=(size[0], size[1], 3),
    )


def retinanet_outputs(model: Any, images: np.ndarray) -> list[np.ndarray]:
    """A RetinaNet's [boxes xyxy input pixels [B, A, 4], sigmoid scores [B, A, C]] for RGB
    0..255 images [B, H, W, 3], its converter's normalisation applied first (no NMS: the
    caller's post-processing runs it, as the runtime does for its export)."""
    import keras

    scale, offset = normalisation(model)
    raw = model(np.asarray(images, np.float32) * scale + offset, training=False)
    size = (int(images.shape[1]), int(images.shape[2]))
    anchors = retinanet_anchors(keras, model, size)
    boxes = decode_anchors(
        keras, anchors, model.anchor_generator.bounding_box_format, raw["bbox_regression"], size
    )
    logits = keras.ops.convert_to_numpy(raw["cls_logits"]).astype(np.float32)
    if model.activation != keras.activations.sigmoid:
        logits = 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))
    return [keras.ops.convert_to_numpy(boxes).astype(np.float32), logits]


def dfine_rows(model: Any, images: np.ndarray) -> np.ndarray:
    """A D-FINE model's predictions for RGB 0..255 images [B, H, W, 3] as RT-DETR rows
    [B, K, 4 + C] (cx cy w h in 0..1 of the input, sigmoid scores), its converter's
    normalisation applied first. `model(x)`, not `predict_on_batch`, which fails in KerasHub
    0.32 (`images, _ = data` on the 1-tuple it is given: d_fine_object_detector.py:796)."""
    import keras

    scale, offset = normalisation(model)
    raw = model(np.asarray(images, np.float32) * scale + offset, training=False)
    boxes = keras.ops.convert_to_numpy(raw["pred_boxes"]).astype(np.float32)
    logits = keras.ops.convert_to_numpy(raw["logits"]).astype(np.float32)
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))
    return np.concatenate([boxes, scores], axis=-1)


def retargeted(keras: Any, detector: Any, num_classes: int, size: tuple[int, int]) -> Any:
    """The detector for `num_classes` classes at `size`, with every weight whose shape does not
    depend on the classes carried over (the class heads start afresh when the count differs),
    and the same preprocessor (its normalisation is what the weights expect)."""
    config = _resized(detector.get_config(), size)
    config["preprocessor"] = None
    config["num_classes"] = int(num_classes)
    if "num_labels" in config["backbone"]["config"]:  # D-FINE's backbone has a class head
        config["backbone"]["config"]["num_labels"] = int(num_classes)
    model = type(detector).from_config(config)
    # Same architecture, same weight order: pair them up (layer names may differ by a suffix).
    kept = 0
    for new, old in zip(model.weights, detector.weights, strict=True):
        if tuple(new.shape) == tuple(old.shape):
            new.assign(old)
            kept += 1
    log.info("%d of %d weights from the preset, %d new", kept, len(model.weights),
             len(model.weights) - kept)  # fmt: skip
    model.preprocessor = detector.preprocessor
    return model


def _resized(config: Any, size: tuple[int, int]) -> Any:
    """`config` with every nested `image_shape` and `anchor_image_size` set to `size`."""
    if isinstance(config, list):
        return [_resized(v, size) for v in config]
    if not isinstance(config, dict):
        return config
    out = {k: _resized(v, size) for k, v in config.items()}
    if isinstance(out.get("image_shape"), (list, tuple)) and len(out["image_shape"]) == 3:
        out["image_shape"] = [size[0], size[1], out["image_shape"][-1]]
    if "anchor_image_size" in out:
        out["anchor_image_size"] = [size[0], size[1]]
    return out
