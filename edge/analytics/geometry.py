"""Lines, zones and anchor points: parsing `NAME=x1,y1,...` and the side/inside tests.

Coordinates are pixels, or fractions of the frame when every one of them is in [0, 1]; a region in
fractions is resolved to pixels with `resolve(width, height)` once the frame size is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

# Where on its box an object is: (fraction of the width, fraction of the height) from the top-left.
ANCHORS: dict[str, tuple[float, float]] = {
    "bottom-center": (0.5, 1.0),
    "center": (0.5, 0.5),
    "top-center": (0.5, 0.0),
    "bottom-left": (0.0, 1.0),
    "bottom-right": (1.0, 1.0),
    "top-left": (0.0, 0.0),
    "top-right": (1.0, 0.0),
    "center-left": (0.0, 0.5),
    "center-right": (1.0, 0.5),
}
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_name(name: str, what: str) -> str:
    """A region name: letters, digits, '_' and '-' (it becomes an MQTT topic, a label, a file name)."""
    if not _NAME.match(name):
        raise ValueError(f"{what} name {name!r}: use 1-64 letters, digits, '_' or '-'")
    return name


def check_anchor(anchor: str) -> str:
    if anchor not in ANCHORS:
        raise ValueError(f"--anchor {anchor!r}: expected one of {', '.join(ANCHORS)}")
    return anchor


def anchor_points(xyxy: np.ndarray, anchor: str = "bottom-center") -> np.ndarray:
    """(n, 2) float64 points of boxes (n, 4) at `anchor`."""
    fx, fy = ANCHORS[check_anchor(anchor)]
    b = np.asarray(xyxy, np.float64).reshape(-1, 4)
    return np.stack([b[:, 0] + fx * (b[:, 2] - b[:, 0]), b[:, 1] + fy * (b[:, 3] - b[:, 1])], 1)


def _points(values: tuple[float, ...]) -> tuple[tuple[float, float], ...]:
    return tuple((float(values[i]), float(values[i + 1])) for i in range(0, len(values), 2))


def _is_relative(points: tuple[tuple[float, float], ...]) -> bool:
    return all(0.0 <= v <= 1.0 for p in points for v in p)


@dataclass(frozen=True)
class Line:
    """A directed segment p1 -> p2. Crossing to its right-hand side (as drawn on the image, y down)
    is "in", to its left-hand side "out": for a line drawn left to right, "in" is moving down.
    Swap the end points to swap in and out."""

    name: str
    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        check_name(self.name, "line")
        if len(self.points) != 2:
            raise ValueError(f"line {self.name}: expected 2 points, got {len(self.points)}")
        if self.points[0] == self.points[1]:
            raise ValueError(f"line {self.name}: its two end points are the same")

    @property
    def relative(self) -> bool:
        return _is_relative(self.points)

    def resolve(self, width: int, height: int) -> Line:
        if not self.relative:
            return self
        return Line(self.name, tuple((x * width, y * height) for x, y in self.points))

    def side(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(signed distance in pixels, >0 on the "in" side; position along p1->p2, 0..1 on it)."""
        (x1, y1), (x2, y2) = self.points
        d = np.array([x2 - x1, y2 - y1])
        rel = np.asarray(points, np.float64).reshape(-1, 2) - (x1, y1)
        length = float(np.hypot(*d))
        signed = (d[0] * rel[:, 1] - d[1] * rel[:, 0]) / length
        along = (rel @ d) / (length * length)
        return signed, along


@dataclass(frozen=True)
class Zone:
    """A polygon of three or more points; an object is in it when its anchor is."""

    name: str
    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        check_name(self.name, "zone")
        if len(self.points) < 3:
            raise ValueError(
                f"zone {self.name}: expected at least 3 points, got {len(self.points)}"
            )
        if abs(cv2.contourArea(np.asarray(self.points, np.float32))) == 0:
            raise ValueError(f"zone {self.name}: its points enclose no area")

    @property
    def relative(self) -> bool:
        return _is_relative(self.points)

    def resolve(self, width: int, height: int) -> Zone:
        if not self.relative:
            return self
        return Zone(self.name, tuple((x * width, y * height) for x, y in self.points))

    def depth(self, points: np.ndarray) -> np.ndarray:
        """Signed distance in pixels of each point to the outline: >0 inside, <0 outside."""
        contour = np.asarray(self.points, np.float32).reshape(-1, 1, 2)
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        return np.array(
            [cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in pts], np.float64
        )


def _parse(text: str, flag: str) -> tuple[str, tuple[float, ...]]:
    name, sep, coords = text.partition("=")
    if not sep:
        raise ValueError(f"{flag} {text!r}: expected NAME=x1,y1,x2,y2,...")
    try:
        values = tuple(float(v) for v in coords.replace(" ", "").split(","))
    except ValueError:
        raise ValueError(f"{flag} {text!r}: coordinates must be numbers") from None
    if not all(np.isfinite(values)) or any(v < 0 for v in values):
        raise ValueError(f"{flag} {text!r}: coordinates must be finite and not negative")
    if len(values) % 2:
        raise ValueError(f"{flag} {text!r}: an odd number of coordinates")
    return name.strip(), values


def parse_line(text: str) -> Line:
    """`NAME=x1,y1,x2,y2` (pixels, or fractions of the frame when all are in [0, 1])."""
    name, values = _parse(text, "--line")
    if len(values) != 4:
        raise ValueError(f"--line {text!r}: expected 4 coordinates x1,y1,x2,y2, got {len(values)}")
    try:
        return Line(name, _points(values))
    except ValueError as exc:
        raise ValueError(f"--line {text!r}: {exc}") from None


def parse_zone(text: str) -> Zone:
    """`NAME=x1,y1,x2,y2,x3,y3,...` (pixels, or fractions of the frame when all are in [0, 1])."""
    name, values = _parse(text, "--zone")
    try:
        return Zone(name, _points(values))
    except ValueError as exc:
        raise ValueError(f"--zone {text!r}: {exc}") from None
