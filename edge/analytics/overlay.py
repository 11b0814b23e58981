"""Drawing lines, zones and their counts on a copy of a frame."""

from __future__ import annotations

import cv2
import numpy as np

from edge.analytics.counting import StreamCounter

_FONT = cv2.FONT_HERSHEY_SIMPLEX
LINE_COLOR = (0, 220, 255)  # BGR amber
ZONE_COLOR = (255, 160, 40)  # BGR blue
BUSY_COLOR = (60, 60, 255)  # a zone with someone in it


def _label(img: np.ndarray, text: str, org: tuple[int, int], color: tuple, scale: float) -> None:
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    h, w = img.shape[:2]
    x = int(np.clip(org[0], 0, max(w - tw - 4, 0)))
    y = int(np.clip(org[1], th + 4, h - base - 2))
    cv2.rectangle(img, (x, y - th - 4), (x + tw + 4, y + base + 2), (0, 0, 0), -1)
    cv2.putText(img, text, (x + 2, y), _FONT, scale, color, 1, cv2.LINE_AA)


def draw_regions(image: np.ndarray, counter: StreamCounter) -> np.ndarray:
    """A new image with the counter's zones (shaded, with occupancy) and lines (with an arrow to
    the "in" side and the in/out counts)."""
    out = image.copy()
    draw_regions_into(out, counter)
    return out


def draw_regions_into(out: np.ndarray, counter: StreamCounter) -> None:
    """`draw_regions` onto `out` itself (the loop's own copy of a frame)."""
    h, w = out.shape[:2]
    counter.resolve(w, h)  # regions given as fractions need the frame size
    scale = max(min(h, w) / 900, 0.4) * 0.9
    thick = max(int(round(min(h, w) / 300)), 1)
    for zone in counter.zones:
        pts = np.round(np.asarray(zone.points)).astype(np.int32)
        count = counter.zone_counts[zone.name]
        color = BUSY_COLOR if count.occupied else ZONE_COLOR
        # Blend only the zone's bounding rectangle: a full-frame copy costs more than the rest.
        x0, y0 = np.clip(pts.min(axis=0), 0, None)
        x1, y1 = np.minimum(pts.max(axis=0) + 1, (w, h))
        if x1 > x0 and y1 > y0:
            patch = out[y0:y1, x0:x1]
            shade = patch.copy()
            cv2.fillPoly(shade, [pts - (x0, y0)], color)
            cv2.addWeighted(shade, 0.25, patch, 0.75, 0, dst=patch)
        cv2.polylines(out, [pts], True, color, thick, cv2.LINE_AA)
        top = pts[np.argmin(pts[:, 1])]
        _label(out, f"{zone.name}: {count.occupied} in zone", (top[0], top[1] - 4), color, scale)
    for line in counter.lines:
        (x1, y1), (x2, y2) = line.points
        p1, p2 = (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2)))
        cv2.line(out, p1, p2, LINE_COLOR, thick + 1, cv2.LINE_AA)
        mid = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
        d = np.array([x2 - x1, y2 - y1]) / max(float(np.hypot(x2 - x1, y2 - y1)), 1e-9)
        normal = np.array([-d[1], d[0]])  # towards the "in" (right-hand) side
        tip = mid + normal * 24 * thick
        cv2.arrowedLine(
            out, tuple(int(v) for v in mid), tuple(int(v) for v in tip), LINE_COLOR, thick,
            cv2.LINE_AA, tipLength=0.35,
        )  # fmt: skip
        n_in, n_out = counter.line_counts[line.name].total
        label = f"{line.name}  in {n_in}  out {n_out}"
        quarter = (3 * np.array([x1, y1]) + np.array([x2, y2])) / 4  # clear of the arrow
        _label(out, label, (int(quarter[0]) + 4, int(quarter[1]) - 6), LINE_COLOR, scale)
    for x, y in counter.anchors():  # the point that decides, of each object seen last frame
        cv2.circle(out, (int(round(x)), int(round(y))), thick + 2, LINE_COLOR, -1, cv2.LINE_AA)
