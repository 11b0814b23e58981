"""Outputs: the observers a run hands its frames to, and the one policy every written file follows.

    files.py           the output policy: checked before work, written atomically, verified
    group.py           several files of one output (export variants...), committed all or none
    sinks.py           video file, JSONL detections, window
    telemetry_file.py  per-frame stage times as JSONL or CSV, and reading them back
    telemetry_plot.py  `edge telemetry plot`: stage latencies over time as a PNG
    trace.py           Chrome/Perfetto trace of every frame's stages
    serve.py           the live page (MJPEG, charts, /metrics); its HTML in serve_page.py
    progress.py        done/total, FPS and ETA on a terminal

A new output is one `Observer` subclass (edge.runtime.observe) here and one line in
edge/cli/run_outputs.py (and optionally edge/api/streaming.py).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    # Until the move to a package, `edge.outputs` was the output policy module itself.
    files = importlib.import_module("edge.outputs.files")
    if name.startswith("__") or not hasattr(files, name):
        raise AttributeError(f"module 'edge.outputs' has no attribute {name!r}")
    warnings.warn(
        f"edge.outputs.{name} moved to edge.outputs.files.{name}", DeprecationWarning, stacklevel=2
    )
    return getattr(files, name)
