"""edge's layers: no module imports a layer above its own, read from the source (lazy imports too).

0 runtime    everything `edge run` needs (numpy, OpenCV, ONNX Runtime; never TensorFlow/Keras)
1 data, model    dataset formats and training batches; the Keras detector family
2 evaluation     scoring a model on a dataset
3 training, export, plots
4 bench          model benchmarks (Keras beside ONNX Runtime)
5 cli            the only code that reads argv; nothing in the library imports it
6 __main__
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

EDGE = Path(__file__).resolve().parents[1] / "edge"
LAYER = {
    "data": 1,
    "model": 1,
    "evaluation": 2,
    "training": 3,
    "export": 3,
    "plots": 3,
    "bench": 4,
    "cli": 5,
    "__main__": 6,
}
HEAVY = {"tensorflow", "keras", "tf2onnx", "jax"}  # the training side's frameworks


def _module(path: Path) -> str:
    parts = list(path.relative_to(EDGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _part(module: str) -> str:
    """The layer key of an edge module: its first name below `edge` ("" for edge itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(module: str) -> int:
    return LAYER.get(_part(module), 0)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "edge":  # `from edge import cli` names a module
                found |= {f"edge.{alias.name}" for alias in node.names}
    return found


MODULES = {_module(p): p for p in sorted(EDGE.rglob("*.py"))}


def test_the_table_names_real_parts_of_edge() -> None:
    parts = {_part(m) for m in MODULES}
    assert set(LAYER) <= parts, set(LAYER) - parts


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own(module: str) -> None:
    own = _layer(module)
    above = sorted(
        name
        for name in _imports(MODULES[module])
        if name.split(".")[0] == "edge" and name in MODULES and _layer(name) > own
    )
    assert not above, f"{module} (layer {own}) imports {above}"


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if _layer(m) == 0 or _part(m) == "data")
)
def test_runtime_and_data_never_import_the_training_frameworks(module: str) -> None:
    heavy = sorted(n for n in _imports(MODULES[module]) if n.split(".")[0] in HEAVY)
    assert not heavy, f"{module} imports {heavy}"


def test_layer_one_packages_do_not_import_each_other() -> None:
    crossing = sorted(
        (m, n)
        for m, p in MODULES.items()
        if _layer(m) == 1
        for n in _imports(p)
        if n in MODULES and _layer(n) == 1 and _part(n) != _part(m)
    )
    assert not crossing


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    # A library module importing the CLI inside a function is still an upward import.
    path = tmp_path / "m.py"
    path.write_text(
        "import os\n\ndef f():\n    from edge.cli.info import main\n    from edge import cli\n"
    )
    assert _imports(path) == {"os", "edge.cli.info", "edge", "edge.cli"}
    assert _layer("edge.cli.info") > _layer("edge.bench") > _layer("edge.session") == 0
