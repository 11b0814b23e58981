"""The `edge` package: old module paths (before the runtime became packages) still import, warn
with the new path, and give the very objects of the new modules."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import edge

EDGE = Path(edge.__file__).parent


@pytest.mark.parametrize("old", sorted(edge.MOVED))
def test_an_old_path_is_gone_from_the_tree_and_its_new_one_exists(old: str) -> None:
    assert importlib.util.find_spec(old).loader.__class__.__name__ == "_Moved"
    for new in edge.MOVED[old].split():
        assert importlib.util.find_spec(new) is not None, new


@pytest.mark.parametrize(
    ("statement", "name", "new"),
    [
        ("from edge.detector import Detector", "Detector", "edge.api.detector"),
        ("from edge.streaming import stream", "stream", "edge.api.streaming"),
        ("from edge.loop import Loop", "Loop", "edge.runtime.loop"),
        ("from edge.observe import Observer", "Observer", "edge.runtime.observe"),
        ("from edge.telemetry import Collector", "Collector", "edge.runtime.stats"),
        (
            "from edge.telemetry import TelemetryWriter",
            "TelemetryWriter",
            "edge.outputs.telemetry_file",
        ),
        (
            "from edge.training.options import TrainOptions",
            "TrainOptions",
            "edge.training.train_options",
        ),
        ("from edge.outputs import check_outputs", "check_outputs", "edge.outputs.files"),
    ],
)
def test_old_imports_work_and_name_the_new_path(statement: str, name: str, new: str) -> None:
    # A fresh interpreter, so the old module is really imported (and warns) here.
    code = (
        "import warnings\n"
        "warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        f"    {statement}\n"
        f"import {new} as target\n"
        f"assert {name} is target.{name}, 'not the same object'\n"
        "print('|'.join(str(w.message) for w in seen if w.category is DeprecationWarning))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert new in done.stdout, done.stdout


def test_a_name_the_new_module_lacks_says_where_it_looked() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = importlib.import_module("edge.timing")
    with pytest.raises(AttributeError, match="edge.runtime.timing"):
        old.no_such_name  # noqa: B018


def test_importing_edge_and_the_cli_loads_no_training_framework() -> None:
    code = "import sys, edge, edge.cli, edge.model; print(sorted({'tensorflow', 'keras', 'jax'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
