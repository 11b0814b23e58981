"""edge's layers: no module imports a layer above its own, read from the source (lazy imports too).

The runtime (layers 0-5: everything `edge run` needs; numpy, OpenCV, ONNX Runtime, never
TensorFlow/Keras/JAX), in the order a frame meets it:
0 types, errors      the shared vocabulary (Detections, Frame, the EdgeError family)
1 sources            frames in: cameras, files, streams, images, the synthetic scene
2 runtime            the model contract, session, pre/post-processing, tracking, the loop
3 outputs            the observers a run hands frames to (sinks, telemetry, trace, live page)
                     and the output policy every written file follows
4 analytics          lines, zones, counts and events (a Processor of the loop)
5 api                edge.Detector and edge.stream (and the `edge` package that exports them)
The build side:
6 data, model        dataset formats and training batches; the Keras detector family
7 evaluation         scoring a model on a dataset, and its plots
8 training, export   fit; ONNX export, verification and model benchmarks
9 cli                the only code that reads argv; nothing in the library imports it
10 __main__
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

EDGE = Path(__file__).resolve().parents[1] / "edge"
LAYER = {
    "types": 0,
    "errors": 0,
    "sources": 1,
    "runtime": 2,
    "outputs": 3,
    "analytics": 4,
    "api": 5,
    "": 5,  # the `edge` package itself: the public API
    "data": 6,
    "model": 6,
    "evaluation": 7,
    "training": 8,
    "export": 8,
    "cli": 9,
    "__main__": 10,
}
RUNTIME = 5  # layers up to this one make up what `edge run` loads
MAX_RUNTIME_LINES = 450
HEAVY = {"tensorflow", "keras", "tf2onnx", "jax"}  # the training side's frameworks


def _module(path: Path) -> str:
    parts = list(path.relative_to(EDGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _part(module: str) -> str:
    """The layer key of an edge module: its first name below `edge` ("" for edge itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(module: str) -> int:
    return LAYER[_part(module)]


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


def test_the_table_names_every_part_of_edge_and_only_those() -> None:
    parts = {_part(m) for m in MODULES}
    assert parts == set(LAYER), parts ^ set(LAYER)


def test_no_two_modules_share_a_name() -> None:
    names: dict[str, list[str]] = {}
    for module, path in MODULES.items():
        if path.name != "__init__.py":
            names.setdefault(path.name, []).append(module)
    assert not {n: m for n, m in names.items() if len(m) > 1}


def test_the_top_of_edge_shows_the_architecture() -> None:
    # Besides the package's own files, `ls edge` shows the two vocabulary modules and the packages.
    own = {"__init__.py", "__main__.py", "py.typed"}
    entries = sorted(
        p.name for p in EDGE.iterdir() if p.name not in own and not p.name.startswith((".", "_"))
    )
    assert len(entries) <= 13, entries
    assert all((EDGE / e).is_dir() for e in entries if e not in ("types.py", "errors.py")), entries


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) <= RUNTIME))
def test_runtime_modules_stay_readable(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_RUNTIME_LINES, f"{module}: {lines} lines"


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
    "module", sorted(m for m in MODULES if _layer(m) <= RUNTIME or _part(m) == "data")
)
def test_runtime_and_data_never_import_the_training_frameworks(module: str) -> None:
    heavy = sorted(n for n in _imports(MODULES[module]) if n.split(".")[0] in HEAVY)
    assert not heavy, f"{module} imports {heavy}"


def test_layer_one_packages_do_not_import_each_other() -> None:
    crossing = sorted(
        (m, n)
        for m, p in MODULES.items()
        if _layer(m) == LAYER["data"]
        for n in _imports(p)
        if n in MODULES and _layer(n) == LAYER["data"] and _part(n) != _part(m)
    )
    assert not crossing


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    # A library module importing the CLI inside a function is still an upward import.
    path = tmp_path / "m.py"
    path.write_text(
        "import os\n\ndef f():\n    from edge.cli.info import main\n    from edge import cli\n"
    )
    assert _imports(path) == {"os", "edge.cli.info", "edge", "edge.cli"}
    assert (
        _layer("edge.cli.info") > _layer("edge.export.benchmark") > _layer("edge.runtime.session")
    )


def test_the_architecture_picture_draws_real_paths_in_their_layers() -> None:
    import importlib.util

    script = EDGE.parent / "scripts" / "draw_architecture.py"
    spec = importlib.util.spec_from_file_location("draw_architecture", script)
    drawing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drawing)
    for label, _colour, rows in drawing.LAYERS:
        number = int(label.split()[0])
        for name, _what in (chip for row in rows for chip in row):
            path = EDGE / name
            assert path.exists(), f"docs/architecture.png draws {name}, which edge/ lacks"
            module = _module(path / "__init__.py" if path.is_dir() else path)
            assert _layer(module) == number, f"{name} is drawn in layer {number}"
