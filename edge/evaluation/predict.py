"""Running a detector over a dataset's images: `.onnx` through the runtime's `Detector`, `.keras`
through the same letterbox and post-processing, so both are scored on equal terms."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.data.common import read_image
from edge.errors import ModelError, check_regular
from edge.runtime.contract import RTDETR, XYXY_SCORES, ModelContract
from edge.runtime.postprocess import PostprocessOptions, postprocess
from edge.runtime.preprocess import prepare
from edge.types import Detections

log = logging.getLogger(__name__)

Predictor = Callable[[np.ndarray], Detections]  # BGR image -> Detections in that image's pixels
MODEL_SUFFIXES = (".onnx", ".keras")


@contextlib.contextmanager
def open_predictor(
    model_path: str | Path | None,
    names: Sequence[str],
    *,
    conf: float = 0.001,
    iou: float = 0.6,
    device: str = "cpu",
    imgsz: tuple[int, int] | None = None,
) -> Iterator[Predictor]:
    """A `Predictor` for an exported `.onnx` (`edge.api.detector.Detector`) or a `.keras` model.

    `names` are the dataset's classes; the model must predict as many. `imgsz` (height, width) is
    used only where the model's input size is dynamic. With `device` triton://HOST:PORT/MODEL
    the model is the server's and `model_path` is None. Raises ValueError for an unknown
    extension or thresholds out of range, ModelError for a missing, unloadable or mismatched model.
    """
    from edge.api.detector import Detector

    PostprocessOptions(conf=conf, iou=iou)  # validates the thresholds before any loading
    if model_path is None:  # a model on a server
        with Detector(None, device=device, imgsz=imgsz) as remote:
            _check_names(tuple(remote.names), tuple(names), device)
            yield lambda image: remote.detect(image, conf=conf, iou=iou)
        return
    path = check_model_path(model_path)
    if path.suffix.lower() == ".keras":
        model = _load_keras(path)
        if getattr(model, "names", None) is not None:
            _check_names(tuple(model.names), tuple(names), path)
        elif getattr(model, "num_classes", len(names)) != len(names):  # a KerasHub detector
            raise ModelError(
                f"{path} predicts {model.num_classes} classes but the dataset has {len(names)}"
            )
        yield keras_predictor(model, names, imgsz=imgsz, conf=conf, iou=iou)
        return
    detector = Detector(path, device=device, imgsz=imgsz)
    _check_names(tuple(detector.names), tuple(names), path)
    try:
        yield lambda image: detector.detect(image, conf=conf, iou=iou)
    finally:
        close = getattr(detector, "close", None)
        if callable(close):
            close()


def check_model_path(path: str | Path) -> Path:
    """`path` if it names an existing .onnx or .keras file; ValueError or ModelError if not."""
    path = Path(path)
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ValueError(
            f"model must be one of {', '.join(MODEL_SUFFIXES)}, got {path.name!r} ({path.suffix!r})"
        )
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    check_regular(path, f"model {path}", ModelError)
    return path


def keras_predictor(
    model: Any,
    names: Sequence[str],
    *,
    imgsz: tuple[int, int] | None = None,
    conf: float = 0.001,
    iou: float = 0.6,
) -> Predictor:
    """A `Predictor` around an in-memory Keras detector (see `predict_keras`), one image a call."""
    contract, options = _keras_contract(model, names, imgsz, conf, iou)

    def predict(image: np.ndarray) -> Detections:
        tensor, lb = prepare(image, contract, contract.imgsz)
        return postprocess(_keras_outputs(model, tensor), contract, lb, options)

    return predict


def session_predictor(session: Any, *, conf: float = 0.001, iou: float = 0.6) -> Predictor:
    """A `Predictor` around a loaded `edge.runtime.session.ModelSession`: letterbox, run, decode, NMS."""
    contract = session.contract
    size = session.input_size()
    options = PostprocessOptions(conf=conf, iou=iou)

    def predict(image: np.ndarray) -> Detections:
        tensor, lb = prepare(image, contract, size)
        return postprocess(session.run(tensor), contract, lb, options)

    return predict


def predict_keras(
    model: Any,
    samples: Sequence[Any],
    names: Sequence[str],
    *,
    imgsz: tuple[int, int] | None = None,
    conf: float = 0.001,
    iou: float = 0.6,
    batch_size: int = 16,
    output_format: str = XYXY_SCORES,
) -> list[Detections]:
    """Detections for each sample's image from an in-memory Keras detector, in batches.

    The model takes float32 [B, H, W, 3] RGB 0..255 and outputs `boxes` [B, N, 4] xyxy in input
    pixels with `scores` [B, N, C] (inference form) or `logits` (training form, sigmoid applied
    here). Images are letterboxed and boxes mapped back exactly as the runtime does.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    contract, options = _keras_contract(model, names, imgsz, conf, iou)
    if output_format != XYXY_SCORES:
        contract = replace(contract, output_format=output_format)
    out: list[Detections] = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        prepared = [prepare(read_image(s.image_path), contract, contract.imgsz) for s in chunk]
        outputs = _keras_outputs(model, np.concatenate([tensor for tensor, _ in prepared]))
        out += [
            postprocess(outputs, contract, lb, options, item=i)
            for i, (_, lb) in enumerate(prepared)
        ]
    return out


def _keras_contract(
    model: Any, names: Sequence[str], imgsz: tuple[int, int] | None, conf: float, iou: float
) -> tuple[ModelContract, PostprocessOptions]:
    shape = tuple(model.inputs[0].shape)  # (None, H, W, 3)
    fixed = (shape[1], shape[2])
    size = fixed if all(isinstance(v, int) and v > 0 for v in fixed) else imgsz or fixed
    if not all(isinstance(v, int) and v > 0 for v in size):
        raise ValueError(f"the Keras model's input size is dynamic {shape}; pass imgsz=(h, w)")
    from edge.model.hub_detector import is_dfine

    contract = ModelContract(
        names=tuple(names),
        imgsz=(int(size[0]), int(size[1])),
        output_format=RTDETR if is_dfine(model) else XYXY_SCORES,  # KerasHub's D-FINE: rows
    )
    return contract, PostprocessOptions(conf=conf, iou=iou)


def _keras_outputs(model: Any, batch: np.ndarray) -> list[np.ndarray]:
    """[boxes, scores] as numpy from a dict (boxes + scores or logits) or a list of outputs."""
    import keras

    from edge.model.hub_detector import dfine_rows, is_dfine, is_retinanet, retinanet_outputs

    if is_dfine(model):
        return [dfine_rows(model, batch)]
    if is_retinanet(model):  # KerasHub's RetinaNet: its anchors decoded, NMS in postprocess
        return retinanet_outputs(model, batch)
    out = model(batch, training=False)
    if isinstance(out, dict) and list(out) == ["output0"]:  # one tensor, e.g. the RT-DETR layout
        out = [out["output0"]]
    if isinstance(out, dict):
        if "boxes" not in out or not ({"scores", "logits"} & out.keys()):
            raise ModelError(f"Keras outputs {sorted(out)}; expected boxes and scores (or logits)")
        scores = out["scores"] if "scores" in out else keras.ops.sigmoid(out["logits"])
        out = [out["boxes"], scores]
    return [np.asarray(keras.ops.convert_to_numpy(o), np.float32) for o in out]


def _load_keras(path: Path) -> Any:
    import keras

    try:  # registers edge's custom layers so the file can be deserialised
        import edge.model.keras_detector  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name not in ("edge.model", "edge.model.keras_detector"):
            raise
    if _from_keras_hub(path):  # a KerasHub detector (edge train --init PRESET)
        try:
            import keras_hub  # noqa: F401  (registers its classes)
        except ModuleNotFoundError:
            raise ModelError(
                f"{path}: a KerasHub model; needs KerasHub (pip install 'edge[kerashub]')"
            ) from None
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad archive
        raise ModelError(f"{path}: cannot load Keras model ({type(exc).__name__}: {exc})") from None


def _from_keras_hub(path: Path) -> bool:
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        return False  # load_model reports what is wrong with it
    return isinstance(config, dict) and str(config.get("registered_name", "")).startswith(
        "keras_hub>"
    )


def _check_names(model_names: tuple[str, ...], names: tuple[str, ...], path: Path | str) -> None:
    if len(model_names) != len(names):
        raise ModelError(
            f"{path} predicts {len(model_names)} classes but the dataset has {len(names)}"
        )
    if model_names != names:
        log.warning("%s class names %s differ from the dataset's %s", path, model_names, names)


def predict_samples(predict: Predictor, samples: Sequence[Any]) -> list[Detections]:
    """Run `predict` on each sample's image (read from `image_path`); DataError if unreadable."""
    out: list[Detections] = []
    for i, sample in enumerate(samples):
        out.append(predict(read_image(sample.image_path)))
        if (i + 1) % 200 == 0:
            log.info("evaluated %d/%d images", i + 1, len(samples))
    return out
