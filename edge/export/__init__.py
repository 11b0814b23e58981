"""Export: a trained `.keras` detector -> verified ONNX files (fp32, fp16, int8) with their contract.

Importing this package is cheap: TensorFlow, Keras and tf2onnx load inside `export_model`.
"""

from __future__ import annotations

from edge.export.export_options import (
    DEFAULT_OPSET,
    MAX_OPSET,
    MIN_OPSET,
    PRECISIONS,
    TOLERANCES,
    ExportOptions,
    Tolerance,
)
from edge.export.exporter import (
    ExportResult,
    VariantReport,
    export_model,
    export_preset,
    output_paths,
)
from edge.export.summary import format_report
from edge.export.verify import Parity, VerificationError

__all__ = [
    "DEFAULT_OPSET",
    "MAX_OPSET",
    "MIN_OPSET",
    "PRECISIONS",
    "TOLERANCES",
    "ExportOptions",
    "ExportResult",
    "Parity",
    "Tolerance",
    "VariantReport",
    "VerificationError",
    "export_model",
    "export_preset",
    "format_report",
    "output_paths",
]
