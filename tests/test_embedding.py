"""edge inside a host program: loading a Detector leaves the process's stdout/stderr alone, and
one Detector serves several threads. Each case runs in a child interpreter, so the file
descriptors are the real ones a host program has."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import edge
from edge.sources.synthetic import SyntheticScene

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


# A host thread printing 300 numbered lines (t) while the program goes on; `PRINTER` in a
# program passed to `_python` stands for it.
PRINTER = """
import threading, time

def printer():
    started.set()
    for i in range(300):
        print(f"line {i}", flush=True)
        time.sleep(0.002)

started = threading.Event()
t = threading.Thread(target=printer)
t.start()
started.wait()
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(code)
    if "PRINTER\n" in code:
        code = code.replace("PRINTER\n", PRINTER.lstrip("\n"))
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
        check=False,
    )


def test_a_thread_printing_while_detectors_load_loses_no_line():
    r = _python(
        """
        import edge

        PRINTER
        loads = 0
        while t.is_alive() or loads < 3:  # loading the whole time the thread prints
            edge.Detector(device="auto").close()
            loads += 1
        t.join()
        """
    )
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("line ")]
    assert lines == [f"line {i}" for i in range(300)]


def test_detectors_created_by_eight_threads_at_once_leave_stdout_and_stderr_working():
    r = _python(
        """
        import sys, threading
        import edge

        errors = []

        def load():
            try:
                edge.Detector(device="auto").close()
            except Exception as exc:
                errors.append(repr(exc))

        for _ in range(3):  # three rounds of eight
            threads = [threading.Thread(target=load) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        print("stdout works", errors, flush=True)
        print("stderr works", file=sys.stderr, flush=True)
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "stdout works []"
    # and ONNX Runtime's provider chatter (CUDA/TensorRT not starting here) is not in it
    assert r.stderr.strip() == "stderr works"


def _calls(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name):
                names.append(f"{owner.id}.{node.func.attr}")
    return names


def test_no_library_module_swaps_file_descriptors():
    """Only the CLI, which owns its process, may point fd 1/2 elsewhere (edge/cli/quiet.py)."""
    offenders = []
    for path in sorted((REPO / "edge").rglob("*.py")):
        if path.relative_to(REPO / "edge").parts[0] == "cli":
            continue
        calls = _calls(ast.parse(path.read_text(encoding="utf-8")))
        offenders += [f"{path.relative_to(REPO)}: {c}" for c in calls if c in ("os.dup", "os.dup2")]
    assert offenders == []
    assert "os.dup2" in _calls(ast.parse((REPO / "edge/cli/quiet.py").read_text()))  # can fail


@pytest.mark.parametrize("bind", ["on", "off"])
def test_one_detector_serves_four_threads_with_the_single_thread_results(bind):
    """ "on" is the IO binding a GPU session runs with (fixed input buffer, bound outputs),
    here on the CPU; "off" the plain run."""
    detector = edge.Detector(device="cpu", bind=bind)
    assert (detector.session.binding is not None) == (bind == "on")
    scene = SyntheticScene(320, 240, seed=3)
    images = [scene.frame(i).image for i in range(16)]
    expect = [detector.detect(image) for image in images]
    assert len({len(d) for d in expect}) > 1  # the images really differ in what is found
    wrong: list[tuple[int, int]] = []

    def work(k: int) -> None:
        for j in range(100):
            i = (7 * j + k) % len(images)
            got, want = detector.detect(images[i]), expect[i]
            same = np.array_equal(got.xyxy, want.xyxy) and np.array_equal(got.score, want.score)
            if not (same and np.array_equal(got.class_id, want.class_id)):
                wrong.append((k, i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_a_thread_printing_while_metrics_are_computed_loses_no_line():
    """pycocotools prints progress; muting it must not swallow the host's other threads."""
    r = _python(
        """
        import numpy as np
        from edge.evaluation.metrics import coco_metrics
        from edge.types import Detections

        box = np.array([[10.0, 10.0, 50.0, 60.0]], np.float32)
        truth = Detections(box, np.array([0.9], np.float32), np.array([0]))
        guess = Detections(box + 2, np.array([0.8], np.float32), np.array([0]))
        PRINTER
        runs = 0
        while t.is_alive() or runs < 3:
            result = coco_metrics([guess] * 20, [truth] * 20, ["a"])
            runs += 1
        t.join()
        print(f"map50 {result.map50:.3f}")
        """
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [ln for ln in lines if ln.startswith("line ")] == [f"line {i}" for i in range(300)]
    assert lines[-1] == "map50 1.000"  # computed for real, nothing of pycocotools' printed
    assert len(lines) == 301


def test_the_output_policy_reads_the_umask_without_setting_it():
    """os.umask can only be read by setting it: a host thread creating a file meanwhile would get
    the wrong mode. On Linux the kernel reports it in /proc/self/status instead."""
    r = _python(
        """
        import os
        os.umask(0o027)
        calls = []
        real = os.umask
        os.umask = lambda mask: calls.append(mask) or real(mask)
        from edge.outputs import files
        print(oct(files._UMASK), calls)
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0o27", "[]"]
