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


def timing_assertions(source: str) -> list[tuple[int, str]]:
    """(line, text) of each assert that bounds a duration from above or a rate from below."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Assert):
            continue
        for cmp in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
            operands = [cmp.left, *cmp.comparators]
            for op, left, right in zip(cmp.ops, operands[:-1], operands[1:], strict=True):
                if isinstance(op, ast.Gt | ast.GtE):  # a > b is b < a
                    left, right = right, left
                elif not isinstance(op, ast.Lt | ast.LtE):
                    continue
                small, big = ast.unparse(left), ast.unparse(right)
                high, low = _constant(right), _constant(left)
                if (
                    high
                    and DURATION.search(small)
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
