"""The model contract: what a detector expects and returns, stored in ONNX `metadata_props`.

Export writes it and run reads it, here and nowhere else, so `edge run --model X.onnx` needs no
other flag. Ultralytics detection exports (YOLOv8/11, YOLO26, YOLOv10, RT-DETR) are read from their
own metadata; which of their output layouts a file has is settled at load from its output shapes
(`edge.runtime.postprocess.resolve_format`, called by the model gate, `edge.runtime.gate`).
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from edge.errors import ModelError

CONTRACT_VERSION = "1"

# Output formats the post-processing understands.
XYXY_SCORES = "xyxy_scores"  # ours: boxes [B, N, 4] xyxy input pixels, scores [B, N, C] in 0..1
YOLOV8 = "yolov8"  # Ultralytics YOLOv8/11 raw: [B, 4 + C, N], cx cy w h input pixels, scores 0..1
END_TO_END = (
    "end2end"  # YOLO26, YOLOv10, nms=True: [B, K, 6] x1 y1 x2 y2 input pixels, score, class
)
RTDETR = "rtdetr"  # Ultralytics RT-DETR: [B, K, 4 + C], cx cy w h in 0..1 of the input, scores 0..1
RTDETR_TOPK = "rtdetr_topk"  # Ultralytics 8.4+ RT-DETR: [B, K, 6], cx cy w h in 0..1, score, class
OUTPUT_FORMATS = (XYXY_SCORES, YOLOV8, END_TO_END, RTDETR, RTDETR_TOPK)
# What the input tensor holds: float32 (normalised on the host) or uint8 (the letterboxed image as
# is; the graph casts and normalises inside, so the host sends 4x fewer bytes and does no float work).
INPUT_DTYPES = ("float32", "uint8")


@dataclass(frozen=True)
class ModelContract:
    """How to feed a detector and read its outputs.

    The network input is `(pixel * scale - mean) / std` per channel, in `color` order and `layout`.
    `imgsz` is (height, width); a dimension of 0 means the model accepts any size (dynamic).
    `input_dtype` uint8: the input is the pixels themselves (scale 1, mean 0, std 1), the graph
    does the cast and normalisation inside.
    """

    names: tuple[str, ...]
    imgsz: tuple[int, int]
    layout: str = "NHWC"
    color: str = "RGB"
    scale: float = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    output_format: str = XYXY_SCORES
    extra: Mapping[str, str] = field(default_factory=dict)
    input_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.layout not in ("NHWC", "NCHW"):
            raise ValueError(f"layout must be NHWC or NCHW, got {self.layout!r}")
        if self.color not in ("RGB", "BGR"):
            raise ValueError(f"color must be RGB or BGR, got {self.color!r}")
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(
                f"output_format must be one of {OUTPUT_FORMATS}, got {self.output_format!r}"
            )
        if self.input_dtype not in INPUT_DTYPES:
            raise ValueError(f"input_dtype must be one of {INPUT_DTYPES}, got {self.input_dtype!r}")
        identity = self.scale == 1.0 and not any(self.mean) and all(v == 1.0 for v in self.std)
        if self.input_dtype == "uint8" and not identity:
            raise ValueError(
                "a uint8 input takes the pixels as they are: scale 1, mean 0 and std 1, got "
                f"scale {self.scale}, mean {self.mean}, std {self.std}"
            )
        norm = (self.scale, *self.mean, *self.std)
        if not all(math.isfinite(v) for v in norm) or min(self.std) <= 0:
            raise ValueError(
                f"scale, mean and std must be finite and std positive, got scale {self.scale}, "
                f"mean {self.mean}, std {self.std}"
            )

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def to_metadata(self) -> dict[str, str]:
        """The `metadata_props` entries (all strings) that describe this contract."""
        meta = {str(k): str(v) for k, v in self.extra.items()}
        d = asdict(self)
        meta.update(
            {
                "edge.contract": CONTRACT_VERSION,
                "names": json.dumps(list(d["names"])),
                "imgsz": json.dumps(list(d["imgsz"])),
                "layout": self.layout,
                "color": self.color,
                "scale": repr(float(self.scale)),
                "mean": json.dumps([float(v) for v in self.mean]),
                "std": json.dumps([float(v) for v in self.std]),
                "output_format": self.output_format,
            }
        )
        if self.input_dtype != "float32":  # additive: older readers see no new key on float models
            meta["input_dtype"] = self.input_dtype
        return meta


def from_metadata(meta: Mapping[str, str], source: str = "model") -> ModelContract:
    """Read the contract from ONNX metadata; raise ModelError naming `source` if it is unusable."""
    try:
        if "edge.contract" in meta:
            return _read_edge(meta)
        if "names" in meta and ("Ultralytics" in meta.get("author", "") or "stride" in meta):
            return _read_ultralytics(meta)
    except (ValueError, TypeError, SyntaxError, KeyError, RecursionError, MemoryError) as exc:
        # RecursionError, MemoryError: deeply nested text that the JSON/Python parsers give up on
        raise ModelError(
            f"{source}: unreadable model metadata ({exc or type(exc).__name__})"
        ) from None
    raise ModelError(
        f"{source}: no detector metadata (not an edge export or an Ultralytics detection export); "
        "export it with `edge export`"
    )


_KNOWN_KEYS = {
    "edge.contract",
    "names",
    "imgsz",
    "layout",
    "color",
    "scale",
    "mean",
    "std",
    "output_format",
    "input_dtype",
}


def _read_edge(meta: Mapping[str, str]) -> ModelContract:
    if meta["edge.contract"] != CONTRACT_VERSION:
        raise ValueError(
            f"contract version {meta['edge.contract']!r}, this edge reads {CONTRACT_VERSION!r}"
        )
    names = json.loads(meta["names"])
    imgsz = json.loads(meta["imgsz"])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
        raise ValueError("names must be a non-empty JSON list of strings")
    return ModelContract(
        names=tuple(names),
        imgsz=_pair(imgsz),
        layout=meta.get("layout", "NHWC"),
        color=meta.get("color", "RGB"),
        scale=float(meta.get("scale", "1.0")),
        mean=_triple(json.loads(meta.get("mean", "[0, 0, 0]"))),
        std=_triple(json.loads(meta.get("std", "[1, 1, 1]"))),
        output_format=meta.get("output_format", XYXY_SCORES),
        extra={k: v for k, v in meta.items() if k not in _KNOWN_KEYS},
        input_dtype=meta.get("input_dtype", "float32"),
    )


def _read_ultralytics(meta: Mapping[str, str]) -> ModelContract:
    task = meta.get("task", "detect")
    if task != "detect":
        raise ValueError(f"Ultralytics task {task!r}; only 'detect' models are supported")
    raw = ast.literal_eval(meta["names"])  # "{0: 'person', 1: 'bicycle'}"
    if isinstance(raw, dict):
        names = tuple(str(raw[k]) for k in sorted(raw))
    elif isinstance(raw, (list, tuple)):
        names = tuple(str(n) for n in raw)
    else:
        raise ValueError("names is neither a dict nor a list")
    if not names:
        raise ValueError("names is empty")
    imgsz = _pair(ast.literal_eval(meta.get("imgsz", "[640, 640]")))
    return ModelContract(
        names=names,
        imgsz=imgsz,
        layout="NCHW",
        color="RGB",
        scale=1.0 / 255.0,
        output_format=YOLOV8,  # provisional: the gate reads the real layout from the outputs
        extra={k: v for k, v in meta.items() if k not in ("names", "imgsz")},
    )


def _pair(value: object) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]  # one size for both sides, checked below
    seq = list(value)  # type: ignore[call-overload]
    if len(seq) == 1:
        seq = seq * 2
    if len(seq) != 2 or not all(type(v) is int and v >= 0 for v in seq):  # not bool
        raise ValueError(f"imgsz must be two non-negative integers, got {value!r}")
    return (int(seq[0]), int(seq[1]))


def _triple(value: object) -> tuple[float, float, float]:
    seq = [float(v) for v in value]  # type: ignore[union-attr]
    if len(seq) == 1:
        seq = seq * 3
    if len(seq) != 3:
        raise ValueError(f"expected 3 per-channel values, got {value!r}")
    return (seq[0], seq[1], seq[2])
