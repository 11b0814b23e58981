"""A trained `.keras` detector -> its float32 inference model -> an ONNX graph (tf2onnx).

The graph has one input `images` float32 [1 or batch, H, W, 3] and outputs `boxes` [B, N, 4]
and `scores` [B, N, C], as `edge.runtime.contract.XYXY_SCORES` describes.

Converter: `tf2onnx.convert.from_keras`, not Keras' own `model.export(path, format="onnx")`. Both
trace the model with the TensorFlow backend and hand the graph to tf2onnx, and gave the same
graph (same ops, same parity) on our detectors; but `from_keras` returns the ModelProto in memory
(we rename, add metadata and make fp16/int8 before anything is written), takes the opset
directly, and leaves tf2onnx unpatched, whereas `model.export` only writes a file, monkeypatches
tf2onnx globally for numpy 2, and dispatches on KERAS_BACKEND (JAX needs jax2onnx, which we do
not ship; torch goes through torch.onnx), so its result depends on the environment.
"""

from __future__ import annotations

import contextlib
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import EdgeError, ModelError, check_regular
from edge.export import max_pool
from edge.export.export_options import DEFAULT_OPSET
from edge.runtime.contract import RTDETR, ModelContract

log = logging.getLogger(__name__)

INPUT = "images"
OUTPUTS = ("boxes", "scores")
DETR_OUTPUTS = ("output0",)  # RT-DETR layout [B, K, 4 + C], named as Ultralytics names it
BATCH_DIM = "batch"


@dataclass(frozen=True)
class InferenceModel:
    """The Keras model that export converts and verification runs, with its contract."""

    model: Any  # a float32 edge.model.KerasDetector in inference form
    contract: ModelContract
    config: dict[str, Any]
    opset: int = DEFAULT_OPSET  # what it converts at unless --opset says otherwise


def check_keras_file(path: str | Path) -> Path:
    """`path` if it names a readable `.keras` archive; ValueError/ModelError otherwise (no TF)."""
    path = Path(path)
    if path.suffix.lower() != ".keras":
        raise ValueError(f"MODEL must be a .keras file, got {path.name!r}")
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    check_regular(path, f"model {path}", ModelError)
    config = archive_config(path)
    if config.get("class_name") in ("Functional", "Sequential"):  # fail before TensorFlow loads
        raise ModelError(
            f"{path}: not an edge detector (a Keras {config['class_name']} model); export takes "
            "detectors built by edge.model (outputs boxes and scores, class names in the config)"
        )
    return path


def archive_config(path: Path) -> dict[str, Any]:
    """The `config.json` of a `.keras` zip archive; ModelError if there is none."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        raise ModelError(
            f"{path}: not a Keras model (a .keras file is a zip archive with a config.json)"
        ) from None
    if not isinstance(config, dict):
        raise ModelError(f"{path}: not a Keras model (its config.json is not an object)")
    return config


def load_inference_model(path: Path, imgsz: tuple[int, int] | None = None) -> InferenceModel:
    """Load an edge detector and make its float32 inference form, at `imgsz` if given.

    Raises ModelError when the file is not an edge detector, EdgeError when Keras does not run
    on TensorFlow, ValueError for an input size the detector cannot take.
    """
    keras = keras_on_tensorflow()
    import edge.model as em

    try:
        detector = em.load_detector(path)
    except ModelError as exc:
        raise ModelError(one_line(str(exc))) from None
    model = em.inference_model(detector)
    if imgsz is not None and tuple(imgsz) != tuple(model.imgsz):
        model = _resized(keras, model, imgsz)
    config = {"class_name": type(detector).__name__, **model.get_config()}
    return InferenceModel(model=model, contract=em.contract_for(model), config=config)


def keras_on_tensorflow() -> Any:
    """Keras, checked to run on TensorFlow (what tf2onnx converts); the GPU left to ONNX Runtime."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise EdgeError(
            f"export converts through TensorFlow but Keras runs on {keras.backend.backend()}; "
            "run it with KERAS_BACKEND=tensorflow (a .keras file loads on any backend)"
        )
    import tensorflow as tf

    # Conversion runs on the CPU; leave the GPU to ONNX Runtime (TensorRT engine builds). This
    # raises RuntimeError once TensorFlow has initialised its devices in this process.
    with contextlib.suppress(RuntimeError):
        tf.config.set_visible_devices([], "GPU")
    return keras


def _resized(keras: Any, model: Any, imgsz: tuple[int, int]) -> Any:
    """The same detector built for another input size: convolution weights do not depend on it."""
    config = {**model.get_config(), "imgsz": [int(imgsz[0]), int(imgsz[1])]}
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        resized = type(model).from_config(config)
    except ValueError as exc:
        raise ValueError(f"--imgsz {imgsz[0]}x{imgsz[1]}: {exc}") from None
    finally:
        keras.config.set_dtype_policy(policy)
    resized.set_weights(model.get_weights())
    return resized


def output_names(contract: ModelContract) -> tuple[str, ...]:
    """The graph's outputs, in order, for the contract's layout."""
    return DETR_OUTPUTS if contract.output_format == RTDETR else OUTPUTS


def to_onnx(model: Any, dynamic_batch: bool, opset: int, outputs: tuple[str, ...] = OUTPUTS) -> Any:
    """Convert the inference model; an onnx.ModelProto with our input and output names."""
    import tensorflow as tf
    import tf2onnx

    _, h, w, c = model.inputs[0].shape
    spec = (tf.TensorSpec((None if dynamic_batch else 1, h, w, c), tf.float32, name=INPUT),)
    try:
        with convertible_ops():
            proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    except Exception as exc:  # tf2onnx raises anything from its handlers
        raise ModelError(f"tf2onnx could not convert the model: {one_line(str(exc))}") from None
    max_pool.keep_zero_padding(proto)  # ONNX Runtime would fold the zeros away
    return _named_io(proto, dynamic_batch, outputs)


@contextlib.contextmanager
def convertible_ops() -> Any:
    """While tracing for tf2onnx, two Keras TensorFlow ops are written in forms it can convert.

    - A grouped convolution: Keras 3.15 (keras/src/backend/tensorflow/nn.py, `conv`, "grouped
      convolutions are broken on CPU without XLA") wraps it in an inner
      `tf.function(jit_compile=True)` that tf2onnx leaves as an unconvertible
      StatefulPartitionedCall. The trace only records the op (nothing runs on TF's CPU kernel),
      so the plain `tf.nn.convolution` is traced; ONNX Conv has `group`.
    - Exact GELU: `tf.nn.gelu(approximate=False)` traces to Erfc, which tf2onnx does not convert;
      0.5 * x * (1 + erf(x / sqrt(2))) is the same function with Erf.
    """
    import tensorflow as tf
    from keras.src.backend import standardize_data_format
    from keras.src.backend.tensorflow import nn

    conv, gelu = nn.conv, nn.gelu

    def plain_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        fmt = nn._convert_data_format(standardize_data_format(data_format), len(inputs.shape))
        return tf.nn.convolution(
            inputs, kernel, strides, padding.upper(), data_format=fmt, dilations=dilation_rate
        )

    def erf_gelu(x, approximate=True):
        if approximate:
            return gelu(x, approximate=True)
        x = tf.convert_to_tensor(x)
        return 0.5 * x * (1.0 + tf.math.erf(x * tf.cast(0.7071067811865476, x.dtype)))

    nn.conv, nn.gelu = plain_conv, erf_gelu
    try:
        yield
    finally:
        nn.conv, nn.gelu = conv, gelu


def _named_io(proto: Any, dynamic_batch: bool, names: tuple[str, ...] = OUTPUTS) -> Any:
    """Check the graph's input and outputs, put them in `names` order, name the batch dim."""
    import onnx

    graph = proto.graph
    if len(graph.input) != 1 or graph.input[0].name != INPUT:
        raise ModelError(f"expected one input {INPUT!r}, got {[i.name for i in graph.input]}")
    outputs = {o.name: o for o in graph.output}
    if set(outputs) != set(names):
        raise ModelError(
            f"not a detector: outputs must be {' and '.join(names)}, got {sorted(outputs)}"
        )
    ordered = []
    for name in names:
        value = onnx.ValueInfoProto()
        value.CopyFrom(outputs[name])
        ordered.append(value)
    del graph.output[:]
    graph.output.extend(ordered)
    if dynamic_batch:
        for value in (*graph.input, *graph.output):
            value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM
    return proto


def converter_name() -> str:
    import tf2onnx

    return f"tf2onnx {tf2onnx.__version__}"


def one_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return first[:300]
