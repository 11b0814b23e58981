"""`edge data inspect` / `edge data synth`: exit codes, one-line errors, output, light imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from data_builders import WRITERS

from edge.cli import main

REPO = Path(__file__).parents[1]


def edge(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_missing_dataset_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = edge("data", "inspect", "missing/", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "edge data: error: missing: no such file or folder\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_data_modules_import_nothing_heavy() -> None:
    code = (
        "import sys, edge.cli.data, edge.data, edge.data.inspect, edge.data.synth\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'jax')]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
    cli_only = subprocess.run(
        [sys.executable, "-c", "import sys, edge.cli.data; print('edge.data' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli_only.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("edit", "flags", "code"),
    [
        (None, [], 0),
        ("7 0.5 0.5 0.1 0.1\n", [], 1),  # a problem: reported, exit 1
        ("7 0.5 0.5 0.1 0.1\n", ["--skip-bad"], 0),
    ],
)
def test_inspect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: str | None, flags: list, code: int
) -> None:
    root = WRITERS["yolo"](tmp_path / "ds")
    if edit:
        with open(root / "labels" / "a.txt", "a") as f:
            f.write(edit)
    report = tmp_path / "report.json"
    assert main(["data", "inspect", str(root), "--json", str(report), *flags]) == code
    out, err = capsys.readouterr()
    assert "dataset  " in out and "(yolo)" in out
    data = json.loads(report.read_text())
    assert data["splits"]["train"]["images"] + data["splits"]["val"]["images"] == 3
    assert len(data["problems"]) == (1 if edit else 0)
    if edit:
        assert "a.txt:3: class id 7 is out of range 0..1" in out
        assert ("training refuses" in err) == (code == 1)


def test_synth_then_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "synth"
    args = ["data", "synth", "--out", str(out_dir), "--images", "4", "--imgsz", "48"]
    assert main([*args, "--seed", "1", "--val-fraction", "0.25"]) == 0
    assert f"wrote {out_dir / 'data.yaml'}" in capsys.readouterr().out
    assert len(list((out_dir / "images" / "val").glob("*.jpg"))) == 1
    assert main(["data", "inspect", str(out_dir)]) == 0
    assert "ball" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["data"],
        ["data", "synth", "--images", "3"],  # --out missing
        ["data", "synth", "--out", "x", "--images", "many"],
    ],
)
def test_bad_command_lines_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


def test_bad_synth_value_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["data", "synth", "--out", str(tmp_path / "s"), "--images", "0"]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == "edge data synth: error: argument --images: must be in [1, 1000000], got 0\n"


def test_unwritable_json_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = WRITERS["yolo"](tmp_path / "ds")
    target = tmp_path / "no" / "such" / "report.json"
    assert main(["data", "inspect", str(root), "--json", str(target)]) == 2
    err = capsys.readouterr().err
    assert err == f"edge data: error: --json {target}: folder {target.parent} does not exist\n"
