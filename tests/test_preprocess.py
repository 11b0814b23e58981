from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.runtime.contract import ModelContract
from edge.runtime.preprocess import Letterbox, letterbox, resize, to_input


@pytest.mark.parametrize(
    ("src_hw", "size", "scale", "pad_x", "pad_y"),
    [
        ((480, 640), (320, 320), 0.5, 0, 40),  # wide frame: bars top and bottom
        ((640, 480), (320, 320), 0.5, 40, 0),  # tall frame: bars left and right
        ((100, 100), (200, 200), 2.0, 0, 0),  # upscale, no padding
        ((720, 1280), (384, 640), 0.5, 0, 12),  # 1280x720 -> 640x360 inside 640x384
    ],
)
def test_letterbox_scale_and_padding(src_hw, size, scale, pad_x, pad_y):
    img = np.full((*src_hw, 3), 200, np.uint8)
    canvas, lb = letterbox(img, size)
    assert canvas.shape == (*size, 3)
    assert lb.scale == pytest.approx(scale)
    assert (lb.pad_x, lb.pad_y) == (pad_x, pad_y)
    # Padding is grey 114, the image area keeps its value.
    if pad_y:
        assert (canvas[: pad_y - 1] == 114).all() and (canvas[-(pad_y - 1) :] == 114).all()
    assert canvas[size[0] // 2, size[1] // 2, 0] == 200


def test_inverse_maps_boxes_back_and_clips():
    lb = Letterbox(scale=0.5, pad_x=0, pad_y=40, src_width=640, src_height=480)
    # A box at (10, 50)-(110, 150) in the 320x320 input is (20, 20)-(220, 220) in the frame.
    np.testing.assert_allclose(lb.inverse([[10, 50, 110, 150]]), [[20, 20, 220, 220]])
    # Boxes reaching into the padding are clipped to the frame.
    np.testing.assert_allclose(lb.inverse([[-10, 0, 330, 320]]), [[0, 0, 640, 480]])
    assert lb.inverse(np.zeros((0, 4))).shape == (0, 4)


def test_forward_inverse_round_trip():
    rng = np.random.default_rng(0)
    img = np.zeros((333, 517, 3), np.uint8)
    _, lb = letterbox(img, (256, 256))
    boxes = np.sort(rng.uniform(0, 300, (20, 4)), axis=1).astype(np.float32)[:, [0, 1, 2, 3]]
    boxes = np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]])
    np.testing.assert_allclose(
        lb.inverse(lb.forward(boxes)), np.clip(boxes, 0, [517, 333, 517, 333]), atol=1e-3
    )


def _photo_like(h: int, w: int) -> np.ndarray:
    """Smooth shapes plus fine noise: the detail a plain bilinear shrink aliases."""
    rng = np.random.default_rng(0)
    coarse = (rng.random((max(h // 24, 2), max(w // 24, 2), 3)) * 255).astype(np.uint8)
    smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return cv2.add(smooth, (rng.random((h, w, 3)) * 60).astype(np.uint8))


@pytest.mark.parametrize(
    ("src_wh", "size"),
    [
        ((1280, 720), (320, 180)),  # exact 4x: two halvings
        ((1280, 720), (416, 234)),  # one halving, then bilinear for 1.54x
        ((1920, 1080), (640, 360)),  # 3x: one halving, then 1.5x
        ((1920, 1080), (320, 180)),  # halving until 135 rows (odd), then an area average
        ((517, 333), (256, 165)),  # odd sides: a single area average
    ],
)
def test_resize_shrinks_close_to_an_area_average(src_wh, size):
    image = _photo_like(src_wh[1], src_wh[0])
    area = cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    bilinear = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR).astype(np.float32)
    out = resize(image, size)
    assert out.shape == (size[1], size[0], 3) and out.dtype == np.uint8
    error = np.abs(out.astype(np.float32) - area).mean()
    # Within a few grey levels of INTER_AREA, and far closer than a bilinear shrink that
    # samples a few pixels and drops the rest (the noise aliases).
    assert error < 3.5
    assert error < 0.5 * np.abs(bilinear - area).mean() or error < 0.5


def test_resize_keeps_the_geometry_and_grows_bilinear():
    # A bright column at x = 1000 of 1280 lands at 1000 / 4 = 250 of 320 (halvings keep the
    # sampling grid exact: no row or column is cropped or padded).
    image = np.zeros((720, 1280, 3), np.uint8)
    image[:, 1000:1004] = 255
    out = resize(image, (320, 180))
    assert out[90, 250, 0] == 255 and out[90, 249, 0] == 0 and out[90, 251, 0] == 0
    small = np.arange(12, dtype=np.uint8).reshape(3, 4, 1).repeat(3, axis=2)
    np.testing.assert_array_equal(
        resize(small, (8, 6)), cv2.resize(small, (8, 6), interpolation=cv2.INTER_LINEAR)
    )
    assert resize(small, (4, 3)) is small


def test_letterbox_rejects_bad_size():
    with pytest.raises(ValueError, match="positive"):
        letterbox(np.zeros((10, 10, 3), np.uint8), (0, 10))


@pytest.mark.parametrize(
    ("contract", "shape", "first_pixel"),
    [
        # BGR (10, 20, 30) -> RGB raw
        (ModelContract(names=("a",), imgsz=(2, 3)), (1, 2, 3, 3), [30, 20, 10]),
        # Ultralytics style: NCHW, RGB, /255
        (
            ModelContract(names=("a",), imgsz=(2, 3), layout="NCHW", scale=1 / 255),
            (1, 3, 2, 3),
            [30 / 255, 20 / 255, 10 / 255],
        ),
        # BGR kept, ImageNet-like mean/std
        (
            ModelContract(
                names=("a",), imgsz=(2, 3), color="BGR", mean=(10, 20, 30), std=(2, 4, 5)
            ),
            (1, 2, 3, 3),
            [0, 0, 0],
        ),
    ],
)
def test_to_input_layout_colour_and_scaling(contract, shape, first_pixel):
    canvas = np.zeros((2, 3, 3), np.uint8)
    canvas[...] = (10, 20, 30)
    x = to_input(canvas, contract)
    assert x.shape == shape and x.dtype == np.float32 and x.flags.c_contiguous
    px = x[0, :, 0, 0] if contract.layout == "NCHW" else x[0, 0, 0]
    np.testing.assert_allclose(px, first_pixel, rtol=1e-6)
