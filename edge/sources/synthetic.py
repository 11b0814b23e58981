"""A synthetic scene renderer with exact ground truth: the demo source and the synthetic dataset.

Objects of four classes (ball, crate, cone, star) move over a ground-and-sky background under
changing light. `SyntheticScene` is an animated scene (the `synthetic` source of `edge run`);
`render_still` draws an independent random scene (the images of `edge data synth`). Both draw
through the same code, so a model trained on the stills detects the objects of the video.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CLASS_NAMES: tuple[str, ...] = ("ball", "crate", "cone", "star")

# An object counts as visible ground truth when at least this much of its area shows.
MIN_VISIBLE = 0.35


@dataclass(frozen=True)
class SceneFrame:
    """A rendered image (H x W x 3 uint8 BGR) with its boxes (xyxy pixels), classes and identities."""

    image: np.ndarray
    boxes: np.ndarray
    class_ids: np.ndarray
    track_ids: np.ndarray


@dataclass(frozen=True)
class _Thing:
    class_id: int
    cx: float
    cy: float
    size: float  # height in pixels
    aspect: float  # width / height
    angle: float  # degrees, for the star
    color: tuple[int, int, int]


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Sky gradient over a textured ground plane with perspective lines."""
    horizon = int(height * rng.uniform(0.25, 0.55))
    sky_top = rng.uniform([150, 90, 40], [255, 200, 140])  # BGR: blue-ish
    sky_low = rng.uniform([180, 170, 150], [255, 240, 230])
    ground_near = rng.uniform([20, 40, 30], [110, 150, 140])
    ground_far = ground_near * rng.uniform(1.1, 1.6)
    img = np.empty((height, width, 3), np.float32)
    t = np.linspace(0.0, 1.0, max(horizon, 1), dtype=np.float32)[:, None]
    img[:horizon] = (sky_top * (1 - t) + sky_low * t)[:, None, :]
    g = np.linspace(0.0, 1.0, max(height - horizon, 1), dtype=np.float32)[:, None]
    img[horizon:] = (ground_far * (1 - g) + ground_near * g)[:, None, :]
    # Low-frequency texture: a small random field blown up.
    noise = rng.normal(0.0, 1.0, (max(height // 24, 2), max(width // 24, 2))).astype(np.float32)
    noise = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    img += noise[:, :, None] * rng.uniform(4.0, 14.0)
    img = np.clip(img, 0, 255).astype(np.uint8)
    # Perspective lines converging to a vanishing point on the horizon, and a few clouds.
    vx = int(width * rng.uniform(0.3, 0.7))
    line = tuple(int(c) for c in np.clip(ground_near * 0.7, 0, 255))
    for x in np.linspace(-width, 2 * width, int(rng.integers(6, 14))):
        cv2.line(img, (vx, horizon), (int(x), height), line, 1, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 4))):
        c = (int(rng.uniform(0, width)), int(rng.uniform(0, max(horizon - 10, 1))))
        axes = (int(rng.uniform(20, 80)), int(rng.uniform(6, 18)))
        cv2.ellipse(img, c, axes, 0, 0, 360, (245, 245, 245), -1, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (3, 3), 0)


def _random_color(rng: np.random.Generator, class_id: int) -> tuple[int, int, int]:
    # Each class keeps a hue family so colour helps but shape decides.
    hue = (class_id * 45 + rng.uniform(-25, 25)) % 180
    hsv = np.uint8([[[hue, rng.uniform(120, 255), rng.uniform(110, 255)]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _polygon(thing: _Thing) -> np.ndarray | None:
    """Outline of polygonal classes as int32 points (None for the ball)."""
    h = thing.size
    w = h * thing.aspect
    cx, cy = thing.cx, thing.cy
    if thing.class_id == 1:  # crate
        pts = [
            (cx - w / 2, cy - h / 2),
            (cx + w / 2, cy - h / 2),
            (cx + w / 2, cy + h / 2),
            (cx - w / 2, cy + h / 2),
        ]
    elif thing.class_id == 2:  # cone
        pts = [(cx, cy - h / 2), (cx + w / 2, cy + h / 2), (cx - w / 2, cy + h / 2)]
    elif thing.class_id == 3:  # star
        a = np.deg2rad(thing.angle) + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, h / 2, h / 5)
        pts = list(zip(cx + r * np.sin(a), cy - r * np.cos(a), strict=True))
    else:
        return None
    return np.round(np.asarray(pts)).astype(np.int32)


def _draw(img: np.ndarray, ids: np.ndarray, thing: _Thing, ident: int) -> float:
    """Draw one object into the image and the id map; return its full (unclipped) area."""
    color = thing.color
    dark = tuple(int(c * 0.55) for c in color)
    light = tuple(int(min(255, c * 1.35 + 40)) for c in color)
    # A soft shadow on the ground first.
    shadow_c = (int(thing.cx + thing.size * 0.1), int(thing.cy + thing.size * 0.5))
    shadow_axes = (max(int(thing.size * thing.aspect * 0.45), 1), max(int(thing.size * 0.08), 1))
    # Blend only the shadow's bounding rectangle: full-frame copies cost milliseconds at 720p.
    h_img, w_img = img.shape[:2]
    x0 = max(shadow_c[0] - shadow_axes[0] - 2, 0)
    x1 = min(shadow_c[0] + shadow_axes[0] + 3, w_img)
    y0 = max(shadow_c[1] - shadow_axes[1] - 2, 0)
    y1 = min(shadow_c[1] + shadow_axes[1] + 3, h_img)
    if x1 > x0 and y1 > y0:
        patch = img[y0:y1, x0:x1]
        shaded = patch.copy()
        centre = (shadow_c[0] - x0, shadow_c[1] - y0)
        cv2.ellipse(shaded, centre, shadow_axes, 0, 0, 360, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.addWeighted(shaded, 0.35, patch, 0.65, 0, dst=patch)
    pts = _polygon(thing)
    if pts is None:  # ball: shaded sphere
        r = max(int(round(thing.size / 2)), 1)
        c = (int(round(thing.cx)), int(round(thing.cy)))
        cv2.circle(ids, c, r, ident, -1)
        cv2.circle(img, c, r, dark, -1, cv2.LINE_AA)
        for k, f in enumerate((0.85, 0.65, 0.45, 0.25)):
            mix = tuple(int(d + (lt - d) * (k + 1) / 4) for d, lt in zip(dark, light, strict=True))
            off = int(r * (1 - f) * 0.6)
            cv2.circle(img, (c[0] - off, c[1] - off), max(int(r * f), 1), mix, -1, cv2.LINE_AA)
        return float(np.pi * r * r)
    cv2.fillPoly(ids, [pts], ident)
    cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
    cv2.polylines(img, [pts], True, dark, max(int(thing.size / 30), 1), cv2.LINE_AA)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    if thing.class_id == 1:  # crate planks
        t = max(int(thing.size / 20), 1)
        cv2.line(img, (int(x0), int(y0)), (int(x1), int(y1)), dark, t, cv2.LINE_AA)
        cv2.line(img, (int(x0), int(y1)), (int(x1), int(y0)), dark, t, cv2.LINE_AA)
    elif thing.class_id == 2:  # cone stripes
        for f in (0.45, 0.7):
            y = int(y0 + (y1 - y0) * f)
            half = (x1 - x0) / 2 * f
            cx = (x0 + x1) / 2
            cv2.line(
                img,
                (int(cx - half), y),
                (int(cx + half), y),
                (235, 235, 235),
                max(int(thing.size / 14), 1),
            )
    return float(max(cv2.contourArea(pts.astype(np.float32)), 1.0))


def _compose(
    background: np.ndarray, things: list[_Thing], idents: list[int], gain: float
) -> SceneFrame:
    """Paint objects back to front (by their foot's y), then keep those visible enough."""
    height, width = background.shape[:2]
    img = background.copy()
    ids = np.zeros((height, width), np.uint8)  # object i is painted as i + 1 (< 255 objects)
    order = sorted(range(len(things)), key=lambda i: things[i].cy + things[i].size / 2)
    areas: dict[int, float] = {}
    for i in order:
        areas[i] = _draw(img, ids, things[i], i + 1)
    if gain != 1.0:
        img = cv2.convertScaleAbs(img, alpha=gain, beta=0)
    counts = cv2.calcHist([ids], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    boxes, classes, tracks = [], [], []
    for i, thing in enumerate(things):
        if counts[i + 1] == 0 or counts[i + 1] < MIN_VISIBLE * areas[i]:
            continue
        # Full extent of the object (occluded parts included), clipped to the frame.
        pts = _polygon(thing)
        if pts is None:
            r = max(int(round(thing.size / 2)), 1)
            c = np.array([round(thing.cx), round(thing.cy)])
            x0, y0, x1, y1 = c[0] - r, c[1] - r, c[0] + r + 1, c[1] + r + 1
        else:
            (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0) + 1
        boxes.append([max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)])
        classes.append(thing.class_id)
        tracks.append(idents[i])
    return SceneFrame(
        image=img,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        class_ids=np.asarray(classes, np.int64),
        track_ids=np.asarray(tracks, np.int64),
    )


def _random_thing(rng: np.random.Generator, width: int, height: int, size: float) -> _Thing:
    class_id = int(rng.integers(0, len(CLASS_NAMES)))
    aspect = {0: 1.0, 1: rng.uniform(0.8, 1.6), 2: rng.uniform(0.55, 0.8), 3: 1.0}[class_id]
    return _Thing(
        class_id=class_id,
        cx=float(rng.uniform(0.05, 0.95) * width),
        cy=float(rng.uniform(0.15, 0.95) * height),
        size=float(size),
        aspect=float(aspect),
        angle=float(rng.uniform(0, 72)),
        color=_random_color(rng, class_id),
    )


def render_still(seed: int, width: int = 320, height: int = 320) -> SceneFrame:
    """An independent random scene: background, 1-8 objects of varied size, light, blur and noise."""
    if width < 16 or height < 16:
        raise ValueError(f"width and height must be at least 16, got {width}x{height}")
    rng = np.random.default_rng(seed)
    bg = _background(rng, width, height)
    short = min(width, height)
    n = int(rng.integers(1, 9))
    things = [_random_thing(rng, width, height, short * rng.uniform(0.07, 0.45)) for _ in range(n)]
    frame = _compose(bg, things, list(range(n)), gain=float(rng.uniform(0.6, 1.3)))
    img = frame.image
    if rng.random() < 0.3:
        k = int(rng.choice([3, 5]))
        img = cv2.GaussianBlur(img, (k, k), 0)
    sigma = rng.uniform(0, 6)
    if sigma > 1:
        img = cv2.add(img, rng.normal(0, sigma, img.shape).astype(np.int16), dtype=cv2.CV_8U)
    return SceneFrame(img, frame.boxes, frame.class_ids, frame.track_ids)


def _bounce(p0: np.ndarray, v: np.ndarray, t: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Position at time t of points moving at speed v and bouncing between lo and hi (closed form)."""
    span = np.maximum(hi - lo, 1e-6)
    p = np.mod(p0 - lo + v * t, 2 * span)
    return lo + np.where(p > span, 2 * span - p, p)


class SyntheticScene:
    """An animated scene: objects drift, bounce, grow and shrink under slowly changing light.

    `frame(i)` is a pure function of (seed, i): any frame can be rendered in any order.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        seed: int = 0,
        fps: float = 30.0,
        objects: int = 6,
    ) -> None:
        if width < 32 or height < 32:
            raise ValueError(f"synthetic scene must be at least 32x32, got {width}x{height}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if objects < 1:
            raise ValueError(f"objects must be at least 1, got {objects}")
        self.width, self.height, self.fps = width, height, fps
        rng = np.random.default_rng(seed)
        self._bg = _background(rng, width, height)
        short = min(width, height)
        self._things = [
            _random_thing(rng, width, height, short * rng.uniform(0.12, 0.32))
            for _ in range(objects)
        ]
        self._p0 = np.array([[t.cx, t.cy] for t in self._things])
        speed = rng.uniform(20, 90, (objects, 1)) * short / 480  # pixels per second
        heading = rng.uniform(0, 2 * np.pi, (objects, 1))
        self._v = np.hstack([np.cos(heading), np.sin(heading)]) * speed
        self._pulse = rng.uniform(0.2, 0.8, objects)  # size oscillation, rad/s
        self._phase = rng.uniform(0, 2 * np.pi, objects)
        self._spin = rng.uniform(-40, 40, objects)  # star rotation, deg/s

    def frame(self, index: int) -> SceneFrame:
        t = index / self.fps
        sizes = np.array([th.size for th in self._things]) * (
            1 + 0.25 * np.sin(self._pulse * t + self._phase)
        )
        half = sizes[:, None] / 2
        lo = np.hstack([np.full_like(half, 0), np.full_like(half, self.height * 0.15)]) + half * 0.5
        hi = np.array([[self.width, self.height]]) - half * 0.5
        pos = _bounce(self._p0, self._v, t, lo, hi)
        things = [
            _Thing(
                th.class_id, float(x), float(y), float(s), th.aspect, th.angle + sp * t, th.color
            )
            for th, (x, y), s, sp in zip(self._things, pos, sizes, self._spin, strict=True)
        ]
        gain = 1.0 + 0.15 * np.sin(2 * np.pi * t / 12.0)
        return _compose(self._bg, things, list(range(len(things))), gain=float(gain))
