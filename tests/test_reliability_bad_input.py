"""Every case of scripts/bad_input_table.py: exit code 2, one line on stderr, no traceback.

The cases run once per session (two at a time), then each is checked on its own, and against its
row in docs/bad-input.md so that the table stays true.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "bad_input_table", REPO / "scripts" / "bad_input_table.py"
)
table = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = table  # dataclasses look their module up
_spec.loader.exec_module(table)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[tuple[str, ...], object]:
    work = table.prepare(tmp_path_factory.mktemp("bad-input"))
    return {o.case.args: o for o in table.run_all(work)}


def _documented() -> dict[str, tuple[str, str]]:
    """command -> (message, exit code) from the markdown table."""
    rows = {}
    for line in table.DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip().replace("\0", "|") for c in line.replace("\\|", "\0").split("|")]
        if len(cells) == 6 and cells[2].startswith("`edge "):
            rows[cells[2].strip("`")] = (cells[3], cells[4])
    return rows


@pytest.mark.parametrize("case", table.CASES, ids=lambda c: f"{c.group}: {c.what}")
def test_bad_input_is_one_line_and_exit_2(case, outcomes):
    o = outcomes[case.args]
    assert o.code == case.code, (o.command, o.stderr)
    assert "Traceback" not in o.stderr, o.stderr
    assert len(o.lines) == 1, o.stderr
    if case.code == 2:
        assert o.lines[0].startswith(f"edge {case.args[0]}"), o.lines[0]
    # Edge's own words must match the table; details in brackets come from ONNX Runtime, FFmpeg
    # or the JSON parser and vary with their versions.
    message, code = _documented().get(o.command, ("", ""))
    assert (message.split(" (")[0], code) == (o.lines[0].split(" (")[0], str(case.code)), (
        f"docs/bad-input.md is out of date for `{o.command}`: run python scripts/bad_input_table.py"
    )


def test_the_table_lists_exactly_the_cases():
    commands = {" ".join(("edge", *c.args)) for c in table.CASES}
    assert set(_documented()) == commands
    assert len(table.CASES) == len(commands)  # no case twice
