"""Hostile ONNX metadata: `edge.runtime.contract.from_metadata` fuzzed with hypothesis.

A model file comes from anywhere, and its metadata_props are arbitrary strings. Reading them gives a
usable contract or a ModelError with a one-line message, never another exception and never a hang;
a contract that is returned can be fed (finite normalisation, positive std, integer sizes).
"""

from __future__ import annotations

import json
import math
import os

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge.errors import ModelError
from edge.runtime.contract import ModelContract, from_metadata

HUNT = os.environ.get("EDGE_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(HUNT or 200),
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=HUNT is None,
)

KEYS = [
    "edge.contract", "names", "imgsz", "layout", "color", "scale", "mean", "std",
    "output_format", "author", "stride", "task",
]  # fmt: skip
leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
value = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.integers(0, 3), st.text(max_size=2)), inner, max_size=3),
    ),
    max_leaves=8,
)


# What a field may hold: text, JSON (as edge writes), a Python literal (as Ultralytics writes).
field_text = st.one_of(
    st.text(max_size=40),
    value.map(json.dumps),
    value.map(repr),
    st.sampled_from(["1", "NCHW", "NHWC", "RGB", "BGR", "xyxy_scores", "yolov8", "detect", ""]),
)
EDGE = ModelContract(names=("a", "b"), imgsz=(64, 64)).to_metadata()
ULTRA = {"author": "Ultralytics", "task": "detect", "stride": "32", "names": "{0: 'a'}"}


@st.composite
def metadata(draw: st.DrawFn) -> dict[str, str]:
    base = draw(st.sampled_from([{}, EDGE, ULTRA]))
    meta = dict(base)
    for key in draw(st.lists(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), max_size=4)):
        meta[key] = draw(field_text)
    return meta


def _check(meta: dict[str, str]) -> None:
    try:
        c = from_metadata(meta, source="model m.onnx")
    except ModelError as exc:
        message = str(exc)
        assert message.startswith("model m.onnx: ") and "\n" not in message, repr(message)
        return
    assert c.names and all(isinstance(n, str) for n in c.names)
    assert all(type(v) is int and v >= 0 for v in c.imgsz), c.imgsz
    assert all(math.isfinite(v) for v in (c.scale, *c.mean, *c.std))
    assert min(c.std) > 0


DEEP = "[" * 100_000 + "]" * 100_000


@FUZZ
@given(meta=metadata())
@example(meta={**EDGE, "names": DEEP})  # RecursionError in json
@example(meta={**ULTRA, "names": "-" * 100_000 + "1"})  # MemoryError in the Python parser
@example(meta={**ULTRA, "names": "(" * 300 + ")" * 300})
@example(meta={**ULTRA, "imgsz": "9" * 5000})  # past the int-conversion limit
@example(meta={**EDGE, "imgsz": "true"})
@example(meta={**EDGE, "imgsz": "-1"})
@example(meta={**ULTRA, "names": "[]"})
@example(meta={**EDGE, "imgsz": "[1e400, 3]"})
@example(meta={**EDGE, "std": "[0, 0, 0]"})
@example(meta={**EDGE, "mean": "[NaN, 0, 0]"})
@example(meta={**EDGE, "scale": "inf"})
@example(meta={**ULTRA, "names": "{0: 'a', 'x': 'b'}"})
@example(meta={**ULTRA, "names": "{0: 'a', [1]: 'b'}"})
def test_from_metadata(meta):
    _check(meta)


@FUZZ
@given(meta=st.dictionaries(st.text(max_size=12), st.text(max_size=60), max_size=8))
def test_from_metadata_random_strings(meta):
    _check(meta)


def test_a_model_with_hostile_metadata_is_refused_cleanly(tmp_path):
    # End to end: the session reads the metadata of a real ONNX file.
    from onnx_models import fixed_detector

    from edge.runtime.session import ModelSession

    model = fixed_detector(tmp_path / "deep.onnx", metadata={**EDGE, "names": DEEP})
    with pytest.raises(ModelError, match="unreadable model metadata"):
        ModelSession(model)
