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
from edge.model.hub_detector import (
    DFINE,
    FAMILIES,
    at_size,
    check_dfine_size,
    class_names,
    decode_anchors,
    normalisation,
    own_size,
    retinanet_anchors,
)
from edge.runtime.contract import RTDETR, XYXY_SCORES, ModelContract

log = logging.getLogger(__name__)

NAMES_FILE = "names.json"  # beside a KerasHub .keras checkpoint: its class names (edge train)

# D-FINE at opset 17: its top-k over the encoder's anchors orders tied scores differently from
# TensorFlow's, so the 300 queries come back in another order; at 18 they agree.
DFINE_OPSET = 18


@dataclass(frozen=True)
class Preset:
    """What `--preset` named: a local preset folder, or (folder None) a name KerasHub downloads."""

    name: str
    folder: Path | None = None


def check_preset(preset: str | Path, flag: str = "--preset") -> Preset:
    """A local KerasHub object-detector folder, or a preset name; ModelError for a folder or file
    that is not one (read without loading TensorFlow)."""
    text = str(preset)
    path = Path(text)
    if "://" in text or not (path.exists() or "/" in text or text.startswith(".")):
        return Preset(name=text)  # a KerasHub preset name or handle: loaded (downloaded) later
    if not path.is_dir():
        raise ModelError(
            f"{flag} {path}: not a KerasHub preset folder (no such folder)"
            if not path.exists()
            else f"{flag} {path}: a file, not a KerasHub preset folder"
        )
    if not (path / "config.json").is_file() or not (path / "metadata.json").is_file():
        raise ModelError(
            f"{flag} {path}: not a KerasHub preset folder (no config.json and metadata.json; "
            "make one with model.save_to_preset(folder))"
        )
    task = _json(path / "task.json") if (path / "task.json").is_file() else None
    family = task.get("class_name") if isinstance(task, dict) else None
    if family not in FAMILIES:
        what = f"a {family}" if family else "a backbone without a task (no task.json)"
        raise ModelError(
            f"{flag} {path}: {what}, not an object detector edge exports ({', '.join(FAMILIES)})"
        )
    return Preset(name=path.name, folder=path)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ModelError(f"{path.parent}: unreadable {path.name}") from None


def load_preset(preset: Preset, imgsz: tuple[int, int] | None = None) -> InferenceModel:
    """The preset's detector at `imgsz` (default: its own size) in edge's inference form.

    Raises ModelError (not a detector edge exports, a name that cannot be downloaded),
    ValueError (an input size the model cannot take), EdgeError (Keras not on TensorFlow).
    """
    keras = keras_on_tensorflow()
    detector = load_detector(preset)
    names = class_names(int(detector.num_classes))
    return _inference(keras, detector, f"--preset {preset.name}", imgsz, names, preset.name)


def is_hub_archive(config: dict[str, Any]) -> bool:
    """Whether a `.keras` archive's config.json is a KerasHub detector edge exports."""
    registered = str(config.get("registered_name") or "")
    return registered.startswith("keras_hub>") and config.get("class_name") in FAMILIES


def load_archive(path: Path, imgsz: tuple[int, int] | None = None) -> InferenceModel:
    """A KerasHub detector saved as `.keras` (`edge train --init PRESET` writes them) in edge's
    inference form; its class names from the `names.json` beside it (COCO or class_i without)."""
    keras = keras_on_tensorflow()
    try:
        import keras_hub  # noqa: F401  (registers KerasHub's classes for loading)
    except ModuleNotFoundError:
        raise EdgeError(
            f"{path}: a KerasHub model; needs KerasHub (pip install 'edge[kerashub]')"
        ) from None
    try:
        detector = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad archive
        raise ModelError(f"{path}: cannot load the KerasHub model ({_one_line(exc)})") from None
    n = int(detector.num_classes)
    names = class_names(n)
    saved = path.parent / NAMES_FILE
    if saved.is_file():
        listed = _json(saved)
        if (
            isinstance(listed, list)
            and len(listed) == n
            and all(isinstance(x, str) for x in listed)
        ):
            names = tuple(listed)
        else:
            log.warning("%s: not %d class names; using %s..", saved, n, names[0])
    return _inference(keras, detector, str(path), imgsz, names, path.name)


def _inference(
    keras: Any,
    detector: Any,
    what: str,
    imgsz: tuple[int, int] | None,
    names: tuple[str, ...],
    source: str,
) -> InferenceModel:
    family = type(detector).__name__
    if family not in FAMILIES:
        raise ModelError(
            f"{what}: a {family}, not an object detector edge exports ({', '.join(FAMILIES)})"
        )
    size = tuple(imgsz) if imgsz is not None else own_size(detector)
    size = (int(size[0]), int(size[1]))
    if family == DFINE:
        check_dfine_size(detector.backbone, size)
    scale, offset = normalisation(detector)
    detector = at_size(keras, detector, size)
    model = (_dfine if family == DFINE else _retinanet)(keras, detector, size, scale, offset)
    contract = ModelContract(
        names=names,
        imgsz=size,
        output_format=RTDETR if family == DFINE else XYXY_SCORES,
        extra={"edge.keras_hub_model": source},
    )
    return InferenceModel(
        model=model,
        contract=contract,
        config={"class_name": family},
        opset=DFINE_OPSET if family == DFINE else DEFAULT_OPSET,
    )


def load_detector(preset: Preset, flag: str = "--preset") -> Any:
    """The preset's KerasHub detector (float32); ModelError naming `flag` when it cannot load."""
    try:
        import keras_hub
    except ModuleNotFoundError:
        raise EdgeError(
            f"{flag} {preset.name}: needs KerasHub (pip install 'edge[kerashub]')"
        ) from None

    # A folder by its absolute path: KerasHub takes a bare relative one named like a preset
    # (dfine_nano_coco, which Path('./dfine_nano_coco') prints as) for the name, and downloads it.
    source = str(preset.folder.resolve()) if preset.folder is not None else preset.name
    try:
        return keras_hub.models.ObjectDetector.from_preset(source, dtype="float32")
    except Exception as exc:  # KerasHub and its download clients raise many types
        reason = _one_line(exc)
        if preset.folder is not None:
            raise ModelError(f"{flag} {preset.folder}: cannot load it ({reason})") from None
        if "Unknown preset identifier" in str(exc):
            known = [*keras_hub.models.DFineObjectDetector.presets]
            known += [*keras_hub.models.RetinaNetObjectDetector.presets]
            raise ModelError(
                f"{flag} {preset.name}: no such folder, and not a KerasHub preset name "
                f"(detector presets: {', '.join(known)})"
            ) from None
        raise ModelError(
            f"{flag} {preset.name}: cannot download it ({reason[:120]}); a KerasHub preset "
            "needs the internet once (then it is in the Keras cache), or give a local preset "
            "folder instead (model.save_to_preset(folder) where it downloads, copied here)"
        ) from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


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
    anchors = retinanet_anchors(keras, detector, size)
    boxes_name, scores_name = OUTPUTS
    decode = _anchor_decoder(keras)(
        anchors, detector.anchor_generator.bounding_box_format, size, boxes_name
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
            return decode_anchors(keras, self.anchors, self.anchor_format, deltas, self.size)

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
