"""Export options and the verification tolerances, validated before any heavy import.

Importing this module is cheap (no TensorFlow, Keras or tf2onnx), so bad arguments fail fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PRECISIONS = ("fp32", "fp16", "int8")
BATCHES = ("1", "dynamic")
INPUTS = ("uint8", "float32")  # uint8: pre-processing inside the graph (edge.export.uint8_input)
# 13 is the first opset with per-channel QuantizeLinear/DequantizeLinear (int8 export) and the
# ops tf2onnx emits for our heads; 18 is the newest opset tf2onnx 1.17 maps to an ONNX IR version
# (a test checks this against the installed tf2onnx).
MIN_OPSET = 13
MAX_OPSET = 18
DEFAULT_OPSET = 17


@dataclass(frozen=True)
class Tolerance:
    """How far an exported file may be from Keras on the verification images.

    Every output row (each anchor's box and scores): |ONNX - Keras| taken as the maximum
    (`statistic="max"`) or the mean (`"mean"`) must stay within `boxes` (relative to the box
    scale, the input's longer side in pixels: boxes are xyxy input pixels, so `boxes * max(H, W)`
    pixels) and `scores` (absolute; scores are 0..1).

    With `agree`, also what a user sees: the detections left after `edge run`'s default score
    threshold and NMS, Keras' and the file's, paired one to one (same class, IoU >= 0.5). At least
    `agree` of them must pair up (one unpaired detection is always allowed: a box scoring at the
    threshold, or two that NMS separates by a hair), and over the pairs the `kept_statistic` of
    the box and score differences must stay within `boxes` and `kept_scores` (`scores` when
    None).
    """

    boxes: float
    scores: float
    statistic: str = "max"
    agree: float | None = None
    kept_statistic: str = "max"
    kept_scores: float | None = None

    @property
    def paired_scores(self) -> float:
        return self.scores if self.kept_scores is None else self.kept_scores

    def __post_init__(self) -> None:
        for name in ("statistic", "kept_statistic"):
            if getattr(self, name) not in ("max", "mean"):
                raise ValueError(f"{name} must be max or mean, got {getattr(self, name)!r}")
        if self.agree is not None and not 0.0 <= self.agree <= 1.0:
            raise ValueError(f"agree must be in [0, 1], got {self.agree}")

    def box_pixels(self, imgsz: tuple[int, int]) -> float:
        return self.boxes * max(imgsz)


# fp32 must match Keras to float rounding on every row. fp16 carries ~3 significant digits, int8
# far fewer, through the network (box decoding stays float32): rows nobody sees (an anchor scoring
# 1e-5) can move by pixels, so both are judged on the detections a user sees, with a mean bound on
# the rows as well, which catches a broken conversion (garbage, a wrong calibration) even where a
# model detects nothing. int8 pairs are judged on the mean: a box near a quantisation step may
# jump while the others hold, and on an untrained net the few detections' scores move by ~0.1;
# with a dataset, the mAP of each file is printed beside Keras'.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(boxes=1e-4, scores=1e-4),
    "fp16": Tolerance(boxes=1e-2, scores=5e-2, statistic="mean", agree=0.98),
    "int8": Tolerance(
        boxes=2e-2,
        scores=5e-2,
        statistic="mean",
        agree=0.95,
        kept_statistic="mean",
        kept_scores=0.15,
    ),
}


@dataclass(frozen=True)
class ExportOptions:
    """How to export. The first of `precisions` is written to the output path, each further one
    to `<stem>_<precision>.onnx` beside it.

    `imgsz` (height, width) None keeps the model's own input size. `calib_data` is a dataset (YOLO,
    COCO or VOC: gives mAP too) or a folder of images; None renders synthetic frames. `calib_images`
    images calibrate int8 and check parity; mAP uses the dataset's val split, at most
    `eval_images` of it (None: all). `trt_cache` pre-builds TensorRT engines there when a GPU with
    TensorRT is present; `strict` makes its absence an error. `input` uint8 (the default) makes
    the graph take the letterboxed uint8 BGR image and pre-process it inside; float32 keeps the
    host-normalised float input.
    """

    imgsz: tuple[int, int] | None = None
    batch: str = "1"
    opset: int | None = None  # None: the model's own (DEFAULT_OPSET; D-FINE presets 18)
    precisions: tuple[str, ...] = ("fp32",)
    calib_data: Path | None = None
    calib_images: int = 32
    eval_images: int | None = None
    verify: bool = True
    latency_runs: int = 30
    trt_cache: Path | None = None
    trt_fp16: bool = True
    strict: bool = False
    seed: int = 0
    input: str = "uint8"

    def __post_init__(self) -> None:
        if self.batch not in BATCHES:
            raise ValueError(f"--batch must be 1 or dynamic, got {self.batch!r}")
        if self.input not in INPUTS:
            raise ValueError(f"--input must be one of {', '.join(INPUTS)}, got {self.input!r}")
        if self.opset is not None and not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise ValueError(
                f"--opset must be in [{MIN_OPSET}, {MAX_OPSET}] (what tf2onnx converts and int8 "
                f"needs), got {self.opset}"
            )
        if not self.precisions:
            raise ValueError(f"--precision needs at least one of {', '.join(PRECISIONS)}")
        for p in self.precisions:
            if p not in PRECISIONS:
                raise ValueError(f"--precision must be among {', '.join(PRECISIONS)}, got {p!r}")
        if len(set(self.precisions)) != len(self.precisions):
            raise ValueError(f"--precision lists a precision twice: {','.join(self.precisions)}")
        if self.imgsz is not None and (len(self.imgsz) != 2 or min(self.imgsz) < 1):
            raise ValueError(f"--imgsz must be two positive integers, got {self.imgsz}")
        if self.calib_images < 1:
            raise ValueError(f"--calib-images must be at least 1, got {self.calib_images}")
        if self.eval_images is not None and self.eval_images < 1:
            raise ValueError(f"--eval-images must be at least 1, got {self.eval_images}")
        if self.latency_runs < 1:
            raise ValueError(f"--runs must be at least 1, got {self.latency_runs}")

    @property
    def dynamic_batch(self) -> bool:
        return self.batch == "dynamic"
