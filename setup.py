"""Ships the bundled model inside the wheel: models/default.onnx -> edge/_bundled/default.onnx.

The repository keeps it in models/ (beside the Keras model and the other precisions); a wheel has
no repository, so the build copies it into the package. Editable installs and source checkouts
find it in models/ (edge/runtime/bundled.py), so nothing is copied for them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODEL = Path("models") / "default.onnx"


class BuildPyWithModel(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False) or not MODEL.is_file():
            return
        target = Path(self.build_lib) / "edge" / "_bundled"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(MODEL, target / MODEL.name)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if MODEL.is_file() and not getattr(self, "editable_mode", False):
            outputs.append(str(Path(self.build_lib) / "edge" / "_bundled" / MODEL.name))
        return outputs


setup(cmdclass={"build_py": BuildPyWithModel})
