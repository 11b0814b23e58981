"""A KerasHub object-detector preset (RetinaNet, D-FINE) -> the inference model export converts.

The model edge exports takes float32 RGB 0..255 [1, H, W, 3] like edge's own detectors: the
preset's normalisation (its image converter's `x * scale + offset`) is the graph's first layer.
RetinaNet's outputs become edge's layout (boxes xyxy input pixels, sigmoid scores; its anchors
decoded in the graph, no NMS there: KerasHub's in-graph NMS converts to a Bitcast ONNX Runtime
refuses, so the runtime's NMS does it). D-FINE's become the RT-DETR layout (cx cy w h in 0..1
of the input, then the scores; the model has no duplicates, the runtime runs no NMS).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EdgeError, ModelError
from edge.export.convert import DETR_OUTPUTS, OUTPUTS, InferenceModel, keras_on_tensorflow
from edge.export.export_options import DEFAULT_OPSET
from edge.runtime.contract import RTDETR, XYXY_SCORES, ModelContract

log = logging.getLogger(__name__)

RETINANET = "RetinaNetObjectDetector"
DFINE = "DFineObjectDetector"
FAMILIES = (RETINANET, DFINE)
# D-FINE at opset 17: its top-k over the encoder's anchors orders tied scores differently from
# TensorFlow's, so the 300 queries come back in another order; at 18 they agree.
DFINE_OPSET = 18
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


@dataclass(frozen=True)
class Preset:
    """What `--preset` named: a local preset folder, or (folder None) a name KerasHub downloads."""

    name: str
    folder: Path | None = None


def check_preset(preset: str | Path) -> Preset:
    """A local KerasHub object-detector folder, or a preset name; ModelError for a folder or file
    that is not one (read without loading TensorFlow)."""
    text = str(preset)
    path = Path(text)
    if "://" in text or not (path.exists() or "/" in text or text.startswith(".")):
        return Preset(name=text)  # a KerasHub preset name or handle: loaded (downloaded) later
    if not path.is_dir():
        raise ModelError(
            f"--preset {path}: not a KerasHub preset folder (no such folder)"
            if not path.exists()
            else f"--preset {path}: a file, not a KerasHub preset folder"
        )
    if not (path / "config.json").is_file() or not (path / "metadata.json").is_file():
        raise ModelError(
            f"--preset {path}: not a KerasHub preset folder (no config.json and metadata.json; "
            "make one with model.save_to_preset(folder))"
        )
    task = _json(path / "task.json") if (path / "task.json").is_file() else None
    family = task.get("class_name") if isinstance(task, dict) else None
    if family not in FAMILIES:
        what = f"a {family}" if family else "a backbone without a task (no task.json)"
        raise ModelError(
            f"--preset {path}: {what}, not an object detector edge exports ({', '.join(FAMILIES)})"
        )
    return Preset(name=path.name, folder=path)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ModelError(f"--preset {path.parent}: unreadable {path.name}") from None


def load_preset(preset: Preset, imgsz: tuple[int, int] | None = None) -> InferenceModel:
    """The preset's detector at `imgsz` (default: its own size) in edge's inference form.

    Raises ModelError (not a detector edge exports, a name that cannot be downloaded),
    ValueError (an input size the model cannot take), EdgeError (Keras not on TensorFlow).
    """
    keras = keras_on_tensorflow()
    detector = _load(preset)
    family = type(detector).__name__
    if family not in FAMILIES:
        raise ModelError(
            f"--preset {preset.name}: a {family}, not an object detector edge exports "
            f"({', '.join(FAMILIES)})"
        )
    size = tuple(imgsz) if imgsz is not None else _own_size(detector)
    size = (int(size[0]), int(size[1]))
    if family == DFINE:
        check_dfine_size(detector.backbone, size)
    scale, offset = _normalisation(detector)
    detector = _at_size(keras, detector, size)
    model = (_dfine if family == DFINE else _retinanet)(keras, detector, size, scale, offset)
    n = int(detector.num_classes)
    contract = ModelContract(
        names=COCO_NAMES if n == len(COCO_NAMES) else tuple(f"class_{i}" for i in range(n)),
        imgsz=size,
        output_format=RTDETR if family == DFINE else XYXY_SCORES,
        extra={"edge.keras_hub_preset": preset.name},
    )
    return InferenceModel(
        model=model,
        contract=contract,
        config={"class_name": family},
        opset=DFINE_OPSET if family == DFINE else DEFAULT_OPSET,
    )


def _load(preset: Preset) -> Any:
    try:
        import keras_hub
    except ModuleNotFoundError:
        raise EdgeError(
            f"--preset {preset.name}: needs KerasHub (pip install 'edge[kerashub]')"
        ) from None

    source = str(preset.folder) if preset.folder is not None else preset.name
    try:
        return keras_hub.models.ObjectDetector.from_preset(source, dtype="float32")
    except Exception as exc:  # KerasHub and its download clients raise many types
        reason = _one_line(exc)
        if preset.folder is not None:
            raise ModelError(f"--preset {preset.folder}: cannot load it ({reason})") from None
        if "Unknown preset identifier" in str(exc):
            known = [*keras_hub.models.DFineObjectDetector.presets]
            known += [*keras_hub.models.RetinaNetObjectDetector.presets]
            raise ModelError(
                f"--preset {preset.name}: no such folder, and not a KerasHub preset name "
                f"(detector presets: {', '.join(known)})"
            ) from None
        raise ModelError(
            f"--preset {preset.name}: cannot download it ({reason[:120]}); a KerasHub preset "
            "needs the internet once (then it is in the Keras cache), or give a local preset "
            "folder instead (model.save_to_preset(folder) where it downloads, copied here)"
        ) from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def check_dfine_size(backbone: Any, size: tuple[int, int]) -> None:
    """D-FINE picks its queries among the anchors of its feature maps: the input needs at least
    as many anchors as queries, and a multiple of the largest stride (ValueError otherwise)."""
    h, w = size
    strides = [int(s) for s in backbone.feat_strides]
    anchors = sum((h // s) * (w // s) for s in strides)
    queries = int(backbone.num_queries)
    step = max(strides)
    if h % step or w % step or anchors < queries:
        side = step
        while sum((side // s) ** 2 for s in strides) < queries:
            side += step
        raise ValueError(
            f"--imgsz {h}x{w}: D-FINE needs a multiple of {step} with at least {queries} anchors "
            f"for its {queries} queries (strides {strides}: {anchors} anchors); use --imgsz "
            f"{side} or more"
        )


def _own_size(detector: Any) -> tuple[int, int]:
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


def _normalisation(detector: Any) -> tuple[np.ndarray, np.ndarray]:
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


def _at_size(keras: Any, detector: Any, size: tuple[int, int]) -> Any:
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
        raise ValueError(f"--imgsz {size[0]}x{size[1]}: {_one_line(exc)}") from None
    resized.set_weights(detector.get_weights())
    return resized


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


def _scores(keras: Any, detector: Any, logits: Any, name: str) -> Any:
    """Sigmoid scores: the heads give logits unless the model was told its activation is one.
    (The layer's name becomes the ONNX output's.)"""
    done = detector.activation == keras.activations.sigmoid
    return keras.layers.Activation("linear" if done else "sigmoid", name=name)(logits)


def _inputs(keras: Any, size: tuple[int, int], scale: np.ndarray, offset: np.ndarray) -> Any:
    images = keras.Input((size[0], size[1], 3), name="images")
    return images, keras.layers.Rescaling(scale.tolist(), offset.tolist(), name="normalise")(images)


def _raw(detector: Any, x: Any, size: tuple[int, int]) -> Any:
    try:
        return detector(x, training=False)
    except ValueError as exc:  # a size whose feature maps do not line up (FPN additions)
        raise ValueError(
            f"--imgsz {size[0]}x{size[1]}: {type(detector).__name__} cannot take it "
            f"({_one_line(exc)})"
        ) from None


def _retinanet(
    keras: Any, detector: Any, size: tuple[int, int], scale: np.ndarray, offset: np.ndarray
) -> Any:
    images, x = _inputs(keras, size, scale, offset)
    raw = _raw(detector, x, size)
    levels = detector.anchor_generator(np.zeros((1, size[0], size[1], 3), np.float32))
    anchors = np.concatenate([keras.ops.convert_to_numpy(a) for a in levels.values()])
    boxes_name, scores_name = OUTPUTS
    decode = _anchor_decoder(keras)(
        anchors.astype(np.float32), detector.anchor_generator.bounding_box_format, size, boxes_name
    )
    boxes = decode(raw["bbox_regression"])
    scores = _scores(keras, detector, raw["cls_logits"], scores_name)
    return keras.Model(images, {boxes_name: boxes, scores_name: scores})


def _anchor_decoder(keras: Any) -> Any:
    """A layer (defined once Keras is imported) turning RetinaNet's center_xywh deltas into xyxy
    input pixels around fixed anchors, as RetinaNetObjectDetector.decode_predictions does."""

    class AnchorDecoder(keras.layers.Layer):
        def __init__(
            self, anchors: np.ndarray, anchor_format: str, size: tuple[int, int], name: str
        ):
            super().__init__(name=name)
            self.anchors, self.anchor_format, self.size = anchors, anchor_format, size

        def call(self, deltas: Any) -> Any:
            return keras.utils.bounding_boxes.decode_deltas_to_boxes(
                anchors=keras.ops.convert_to_tensor(self.anchors),
                boxes_delta=deltas,
                anchor_format=self.anchor_format,
                box_format="xyxy",
                encoded_format="center_xywh",
                image_shape=(self.size[0], self.size[1], 3),
            )

        def compute_output_shape(self, shape: Any) -> Any:
            return shape

    return AnchorDecoder


def _dfine(
    keras: Any, detector: Any, size: tuple[int, int], scale: np.ndarray, offset: np.ndarray
) -> Any:
    images, x = _inputs(keras, size, scale, offset)
    raw = _raw(detector, x, size)
    (name,) = DETR_OUTPUTS
    scores = _scores(keras, detector, raw["logits"], "scores")
    rows = keras.layers.Concatenate(axis=-1, name=name)([raw["pred_boxes"], scores])
    return keras.Model(images, {name: rows})
