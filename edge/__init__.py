"""edge: real-time object detection on edge devices.

    import edge
    detector = edge.Detector()              # the bundled model; or edge.Detector("yolo11n.onnx")
    detections = detector.detect(image_bgr)  # -> edge.Detections
    for result in edge.stream("video.mp4"):  # the threaded loop of `edge run`
        ...

Importing this package is cheap and never imports TensorFlow or Keras: the public names load their
modules on first use (module `__getattr__`), and the runtime needs only numpy, OpenCV and ONNX Runtime.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "Detector": "edge.api.detector",
    "Detections": "edge.types",
    "Frame": "edge.types",
    "stream": "edge.api.streaming",
    "EdgeError": "edge.errors",
    "ModelError": "edge.errors",
    "SourceError": "edge.errors",
}

__all__ = [
    "Detections",
    "Detector",
    "EdgeError",
    "Frame",
    "ModelError",
    "SourceError",
    "__version__",
    "stream",
]

if TYPE_CHECKING:
    from edge.api.detector import Detector
    from edge.api.streaming import stream
    from edge.errors import EdgeError, ModelError, SourceError
    from edge.types import Detections, Frame


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


# Modules that moved when the runtime became packages (old path -> new path; several when it was
# split). Importing an old path still works, with a DeprecationWarning naming the new one.
MOVED = {
    "edge.accuracy": "edge.runtime.accuracy",
    "edge.annotate": "edge.runtime.annotate",
    "edge.backbones": "edge.model.backbones",
    "edge.bench": "edge.export.benchmark",
    "edge.bundled": "edge.runtime.bundled",
    "edge.contract": "edge.runtime.contract",
    "edge.detector": "edge.api.detector",
    "edge.feed": "edge.runtime.feed",
    "edge.gate": "edge.runtime.gate",
    "edge.labels": "edge.sources.labels",
    "edge.loop": "edge.runtime.loop",
    "edge.loop_state": "edge.runtime.stream_state",
    "edge.machine": "edge.runtime.machine",
    "edge.observe": "edge.runtime.observe",
    "edge.plots": "edge.evaluation.plots",
    "edge.postprocess": "edge.runtime.postprocess",
    "edge.preprocess": "edge.runtime.preprocess",
    "edge.progress": "edge.outputs.progress",
    "edge.providers": "edge.runtime.providers",
    "edge.serve": "edge.outputs.serve",
    "edge.serve_page": "edge.outputs.serve_page",
    "edge.session": "edge.runtime.session",
    "edge.sinks": "edge.outputs.sinks",
    "edge.siteconfig": "edge.cli.siteconfig",
    "edge.streaming": "edge.api.streaming",
    "edge.synthetic": "edge.sources.synthetic",
    "edge.telemetry": "edge.outputs.telemetry_file edge.runtime.stats edge.runtime.timing",
    "edge.telemetry_plot": "edge.outputs.telemetry_plot",
    "edge.timing": "edge.runtime.timing",
    "edge.trace": "edge.outputs.trace",
    "edge.tracking": "edge.runtime.tracking",
    "edge.analytics.report": "edge.analytics.count_report",
    "edge.export.images": "edge.export.sample_images",
    "edge.export.options": "edge.export.export_options",
    "edge.export.report": "edge.export.summary",
    "edge.training.feed": "edge.training.pydataset",
    "edge.training.loop": "edge.training.fit",
    "edge.training.options": "edge.training.train_options",
}


class _Moved(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module path as a module that forwards every name to the new module(s)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec: Any) -> ModuleType:
        new = MOVED[spec.name].split()
        warnings.warn(
            f"{spec.name} moved to {' and '.join(new)}: import from there",
            DeprecationWarning,
            stacklevel=2,
        )
        targets = [importlib.import_module(name) for name in new]
        module = ModuleType(spec.name, f"Moved to {', '.join(new)}.")

        def forward(name: str) -> Any:
            for target in targets:
                if hasattr(target, name):
                    return getattr(target, name)
            raise AttributeError(f"{spec.name} moved to {' and '.join(new)}, which lack {name!r}")

        module.__getattr__ = forward  # type: ignore[method-assign]
        return module

    def exec_module(self, module: ModuleType) -> None:
        pass


if not any(isinstance(finder, _Moved) for finder in sys.meta_path):
    sys.meta_path.append(_Moved())
