"""Letterbox resize and tensor layout: from a BGR frame to the network's input, and back for boxes."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.runtime.contract import ModelContract

PAD_VALUE = 114  # grey, as the common detectors train with


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` resized to (width, height): an area average where it shrinks, bilinear where it
    grows; what training and the runtime both feed the network.

    OpenCV's INTER_AREA is fast only for a factor of exactly 2 and slow otherwise (1280x720 to
    320x180: 1 ms, to 416x234: 3.6 ms; 1920x1080 to 416: 7 ms, against a model's 5-10 ms on a
    CPU). So the image is first halved by area averaging while it stays at least twice the size
    wanted (and its sides are even, which keeps the geometry exact), then bilinear covers the
    last factor, under 2, where it still takes every pixel into account: 0.2-0.5 ms for those
    sizes, within 1-3 grey levels (mean) of a single INTER_AREA on a noisy image. Sides that
    cannot be halved evenly keep the single INTER_AREA.
    """
    width, height = size
    h, w = image.shape[:2]
    while w >= 2 * width and h >= 2 * height and w % 2 == 0 and h % 2 == 0:
        image = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    shrinks_much = w >= 2 * width or h >= 2 * height
    return cv2.resize(
        image, (width, height), interpolation=cv2.INTER_AREA if shrinks_much else cv2.INTER_LINEAR
    )


@dataclass(frozen=True)
class Letterbox:
    """How a frame was scaled and padded into the network input; `inverse` maps boxes back."""

    scale: float
    pad_x: float
    pad_y: float
    src_width: int
    src_height: int

    def inverse(self, xyxy: np.ndarray) -> np.ndarray:
        """Map xyxy boxes from network-input pixels to source-frame pixels, clipped to the frame."""
        boxes = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        if boxes.size == 0:
            return boxes.copy()
        out = (
            boxes - np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], np.float32)
        ) / self.scale
        np.clip(out[:, 0::2], 0, self.src_width, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, self.src_height, out=out[:, 1::2])
        return out

    def forward(self, xyxy: np.ndarray) -> np.ndarray:
        """Map xyxy boxes from source-frame pixels to network-input pixels."""
        boxes = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        return boxes * self.scale + np.array(
            [self.pad_x, self.pad_y, self.pad_x, self.pad_y], np.float32
        )


def letterbox(
    image: np.ndarray, size: tuple[int, int], pad_value: int = PAD_VALUE
) -> tuple[np.ndarray, Letterbox]:
    """Resize `image` to fit (height, width) keeping its aspect ratio, centred on a grey canvas."""
    out_h, out_w = size
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"letterbox size must be positive, got {size}")
    src_h, src_w = image.shape[:2]
    scale = min(out_h / src_h, out_w / src_w)
    new_w, new_h = max(int(round(src_w * scale)), 1), max(int(round(src_h * scale)), 1)
    pad_x, pad_y = (out_w - new_w) / 2, (out_h - new_h) / 2
    left, top = int(round(pad_x - 0.1)), int(round(pad_y - 0.1))
    if (new_w, new_h) != (src_w, src_h):
        image = resize(image, (new_w, new_h))
    canvas = cv2.copyMakeBorder(
        image,
        top,
        out_h - new_h - top,
        left,
        out_w - new_w - left,
        cv2.BORDER_CONSTANT,
        value=(pad_value, pad_value, pad_value),
    )
    # The inverse must use the integer offsets actually applied and the exact per-axis scale.
    return canvas, Letterbox(
        scale=float(scale), pad_x=float(left), pad_y=float(top), src_width=src_w, src_height=src_h
    )


def to_input(canvas_bgr: np.ndarray, contract: ModelContract) -> np.ndarray:
    """A letterboxed BGR uint8 canvas -> a batch of one in the contract's dtype, layout and scaling.

    A uint8 model (`contract.input_dtype`) takes the canvas as it is: no float work on the host.
    """
    img = cv2.cvtColor(canvas_bgr, cv2.COLOR_BGR2RGB) if contract.color == "RGB" else canvas_bgr
    if contract.input_dtype == "uint8":
        x = np.asarray(img, np.uint8)
        return np.ascontiguousarray(
            x.transpose(2, 0, 1)[None] if contract.layout == "NCHW" else x[None]
        )
    x = img.astype(np.float32)
    if contract.scale != 1.0:
        x *= np.float32(contract.scale)
    if any(contract.mean):
        x -= np.asarray(contract.mean, np.float32)
    if any(s != 1.0 for s in contract.std):
        x /= np.asarray(contract.std, np.float32)
    if contract.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None])


def input_dtype(contract: ModelContract) -> type[np.generic]:
    """The numpy dtype of the tensors `to_input` makes for `contract`."""
    return np.uint8 if contract.input_dtype == "uint8" else np.float32


def prepare(
    image_bgr: np.ndarray, contract: ModelContract, imgsz: tuple[int, int]
) -> tuple[np.ndarray, Letterbox]:
    """Letterbox then lay out: the whole pre-processing stage."""
    canvas, lb = letterbox(image_bgr, imgsz)
    return to_input(canvas, contract), lb
