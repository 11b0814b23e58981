from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]
RACCOON = REPO.parent / "shared" / "datasets" / "raccoon"


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    from onnx_models import fixed_detector

    return fixed_detector(tmp_path / "tiny.onnx")
