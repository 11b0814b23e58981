"""Run folders and exported models go where they are asked, creating missing parent folders as
`mkdir -p` does (as Ultralytics' runs/, tf2onnx's --output and every trainer do); files such as
videos and JSON go into a folder that exists. Nothing is created for an output that fails its
check, and a failure removes the folders it created."""

from __future__ import annotations

import pytest

from edge.cli import main
from edge.outputs.files import (
    OutputError,
    check_folder,
    check_outputs,
    check_target,
    make_folders,
    remove_folders,
)


def test_a_folder_output_may_have_missing_parents(tmp_path):
    check_folder("--out", tmp_path / "runs" / "a" / "b")
    assert list(tmp_path.iterdir()) == []  # checked, nothing made yet
    check_outputs([("--output", tmp_path / "x" / "m.onnx")], parents=("--output",))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("below", "needle"),
    [("file/runs/a", "is not a folder"), ("file", "is a file, not a folder")],
)
def test_a_folder_output_under_a_file_is_refused(tmp_path, below, needle):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=needle):
        check_folder("--out", tmp_path / below)
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_a_file_output_still_needs_its_folder_unless_asked(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        check_target("--json", tmp_path / "no" / "m.json")
    check_target("--json", tmp_path / "no" / "m.json", parents=True)


def test_make_folders_and_remove_what_it_made(tmp_path):
    (tmp_path / "kept").mkdir()
    created = make_folders(tmp_path / "kept" / "a" / "b")
    assert created == [tmp_path / "kept" / "a" / "b", tmp_path / "kept" / "a"]
    assert (tmp_path / "kept" / "a" / "b").is_dir()
    remove_folders(created)
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and not any(
        (tmp_path / "kept").iterdir()
    )


def test_data_synth_into_missing_folders(tmp_path, capsys):
    out = tmp_path / "data" / "synthetic" / "ds"
    assert main(["data", "synth", "--out", str(out), "--images", "3", "--imgsz", "64"]) == 0
    assert (out / "data.yaml").is_file() and len(list((out / "images").rglob("*.jpg"))) == 3
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left
    assert "does not exist" not in capsys.readouterr().err


def test_data_synth_failing_removes_the_folders_it_made(tmp_path, monkeypatch):
    from edge.data import synth

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(synth, "_render_all", broken)
    with pytest.raises(OSError):
        synth.write_synthetic(tmp_path / "a" / "b" / "ds", images=2, imgsz=64)
    assert list(tmp_path.iterdir()) == []
