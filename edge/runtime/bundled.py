"""Where the bundled model lives: inside the installed package (a wheel ships it as package data,
see setup.py), else the repository's models/ folder (a source checkout or an editable install)."""

from __future__ import annotations

from pathlib import Path

BUNDLED_FILE = "default.onnx"
PACKAGE_DIR = "_bundled"  # edge/_bundled/ in a wheel; setup.py copies models/default.onnx there
# What the bundled model knows: the synthetic demo scene's four shapes, nothing from real cameras.
BUNDLED_NOTE = "the bundled model knows only the demo scene's four shapes"


def bundled_model() -> Path | None:
    """The bundled model file, or None when neither the package nor a checkout has one."""
    package = Path(__file__).resolve().parents[1]  # edge/
    for folder in (package / PACKAGE_DIR, package.parent / "models", Path.cwd() / "models"):
        candidate = folder / BUNDLED_FILE
        if candidate.is_file():
            return candidate
    return None
