"""Rules for the test suite itself, checked on its source: no wall-clock assertion, and nothing
installed or written under the user's home folder.

Timing belongs in benchmarks (scripts/bench_*.py, `edge bench`, scripts/soak.py), which print
numbers and ratios measured in one run: a test that asserts how fast something ran fails on a
loaded machine. A test may bound how long it *waits* for something that otherwise never happens
(a deadline in a poll loop, a subprocess timeout: a hang guard) and may check a lower bound on a
wait it asked for (load only makes it longer); it may not assert an upper bound on a duration or
a lower bound on a rate.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# Names and calls that are durations (upper bounds are speed claims) or rates (lower bounds are).
DURATION = re.compile(
    r"monotonic|perf_counter|time\.time|elapsed|latency|seconds|\bp(50|9[059])\b|_ms\b|_s\b"
)
RATE = re.compile(r"(?<![a-z])(fps|throughput|per_s|speedup|ratio)", re.I)
HOME = re.compile(r"Path\.home\(\)|expanduser\(|os\.environ\[.HOME.\]|getenv\(.HOME.\)")


def _constant(node: ast.expr) -> float | None:
    """The value of a numeric constant expression (1000 / 30 + 5), else None."""
    try:
        value = eval(compile(ast.Expression(node), "<expr>", "eval"), {"__builtins__": {}})  # noqa: S307
    except Exception:
        return None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _timed_names(tree: ast.Module) -> set[str]:
    """Names in the module that hold a duration without saying so: functions whose body reads a
    clock, and variables assigned (or appended to) from a clock or such a function's result."""
    names: set[str] = set()

    def timed(node: ast.AST) -> bool:
        text = ast.unparse(node)
        return bool(DURATION.search(text)) or any(
            isinstance(n, ast.Name) and n.id in names for n in ast.walk(node)
        )

    for _ in range(3):  # a few rounds carry the tag through helpers and variables
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(r, ast.Return) and r.value is not None and timed(r.value)
                for r in ast.walk(node)
            ):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign) and node.value:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if timed(node.value):
                    names.update(t.id for t in targets if isinstance(t, ast.Name))
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("append", "extend")
                and isinstance(node.func.value, ast.Name)
                and any(timed(a) for a in node.args)
            ):
                names.add(node.func.value.id)
    return names


def timing_assertions(source: str) -> list[tuple[int, str]]:
    """(line, text) of each assert that bounds a duration from above or a rate from below; a
    duration is a clock reading or a name that holds one (`_timed_names`)."""
    found = []
    tree = ast.parse(source)
    timed = _timed_names(tree)

    def duration(node: ast.expr) -> bool:
        return bool(DURATION.search(ast.unparse(node))) or any(
            isinstance(n, ast.Name) and n.id in timed for n in ast.walk(node)
        )

    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        for cmp in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
            operands = [cmp.left, *cmp.comparators]
            for op, left, right in zip(cmp.ops, operands[:-1], operands[1:], strict=True):
                if isinstance(op, ast.Gt | ast.GtE):  # a > b is b < a
                    left, right = right, left
                elif not isinstance(op, ast.Lt | ast.LtE):
                    continue
                big = ast.unparse(right)
                high, low = _constant(right), _constant(left)
                if (
                    high
                    and duration(left)
                    and low is None
                    or low
                    and RATE.search(big)
                    and high is None
                ):
                    found.append((node.lineno, ast.unparse(node)))
    return sorted(set(found))


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("assert time.monotonic() - t0 < 0.05", True),
        ("assert 0.04 < time.monotonic() - started < 1.0", True),
        ("assert metric(text, 'edge_fps') > 5", True),
        ("assert report['p95_ms'] <= 12.5", True),
        ("assert s.stats('age_ms').p50 < 1000 / 30 + 5", True),
        ("assert time.monotonic() < deadline", False),  # a hang guard in a poll loop
        ("assert gaps[0] >= 0.045", False),  # a wait it asked for: load only lengthens it
        ("assert time.monotonic() - started >= 0.05", False),
        ("assert r.p50_ms <= r.p95_ms <= r.p99_ms", False),  # consistency, not speed
        ("assert v.latency_ms > 0 and stats['steps_per_s'] > 0", False),
        ("assert len(parts) >= 10", False),
        ("assert 0.2 < r.map50 < 1.0 and _saturation(px) > 80", False),  # not timing words
        # a duration under another name: a helper that times a call, a list of its results
        (
            "def slowest(f):\n    t0 = time.perf_counter()\n    f()\n    return time.perf_counter() - t0\n"
            "worst = [slowest(g)]\nworst.append(slowest(h))\nassert max(worst) < 20",
            True,
        ),
        ("def count(xs):\n    return len(xs)\nn = count(a)\nassert n < 20", False),
    ],
)
def test_the_timing_rule_itself(source: str, flagged: bool) -> None:
    assert bool(timing_assertions(source)) == flagged


def test_no_wall_clock_assertion_in_the_suite() -> None:
    found = [
        f"{path.name}:{line}: {text}"
        for path in sorted(TESTS.glob("*.py"))
        for line, text in timing_assertions(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "timing belongs in scripts/ (bench, soak):\n" + "\n".join(found)


def test_no_test_writes_under_the_home_folder() -> None:
    found = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted(TESTS.glob("*.py"))
        if path.name != Path(__file__).name
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if HOME.search(line)
    ]
    assert found == [], "keep what a test installs under its temporary folder:\n" + "\n".join(found)
