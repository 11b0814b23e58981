"""Frame sources: camera, video file, stream URL, images and the synthetic scene.

    base.py     Source, SourceOptions, SourceStats/SourceEvent, SequentialSource (in order, no thread),
                Drops (a connection that keeps dropping)
    latest.py   LatestFrameSource: a capture thread keeping the newest frame; pacing, reconnects
    capture.py  OpenCV capture: video files, cameras, stream URLs
    images.py   images, folders and globs, with YOLO ground truth (edge.sources.labels)
    open.py     open_source(spec): picks the kind from the spec

A new kind of source is a function returning a `Source` (usually a `SequentialSource` or a
`LatestFrameSource` around a reader function) and one line in `open_source`.
"""

from edge.sources.base import (
    Drops,
    Reader,
    SequentialSource,
    Source,
    SourceEvent,
    SourceOptions,
    SourceStats,
    Stalled,
)
from edge.sources.latest import LatestFrameSource
from edge.sources.open import open_source

__all__ = [
    "Drops",
    "LatestFrameSource",
    "Reader",
    "SequentialSource",
    "Source",
    "SourceEvent",
    "SourceOptions",
    "SourceStats",
    "Stalled",
    "open_source",
]
