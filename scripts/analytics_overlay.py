"""The README's picture of the analytics overlay: the bundled model on the synthetic scene with two
lines and a zone, tracked, after `--frames` frames. Writes docs/analytics.png."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from edge.analytics import Analytics, RegionOptions, parse_line, parse_zone
from edge.api.detector import Detector
from edge.runtime.annotate import draw
from edge.runtime.tracking import Tracker
from edge.sources.synthetic import SyntheticScene
from edge.types import Frame

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--frames", type=int, default=420)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("-o", "--out", type=Path, default=REPO / "docs" / "analytics.png")
    args = p.parse_args()
    det = Detector(REPO / "models" / "default.onnx", device="cpu")
    regions = RegionOptions(
        lines=(parse_line("mid=0,0.6,1,0.6"), parse_line("gate=0.75,1,0.75,0.15")),
        zones=(parse_zone("bay=0,0.3,0.4,0.3,0.4,1,0,1"),),
        dwell_alert_s=5,
    )
    scene, tracker = SyntheticScene(640, 480, seed=args.seed, fps=30), Tracker()
    analytics = Analytics(default=regions, names=det.names, fps={"synthetic": 30.0})
    for i in range(args.frames):
        f = scene.frame(i)
        dets = tracker.update(det.detect(f.image))
        analytics.update(Frame(f.image, i, 0, "synthetic"), dets)
    image = analytics.draw(draw(f.image, dets, det.names), "synthetic")
    cv2.imwrite(str(args.out), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out}\n{analytics.summary()}")


if __name__ == "__main__":
    main()
