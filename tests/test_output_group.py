"""OutputGroup: the files of one output are checked before work and renamed into place together,
or none of them (edge/outputs/group.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.outputs.files import OutputError, check_nonempty
from edge.outputs.group import OutputGroup


def _targets(tmp_path: Path) -> list[tuple[str, Path]]:
    return [
        ("-o", tmp_path / "m.onnx"),
        ("-o", tmp_path / "m_fp16.onnx"),
        ("-o", tmp_path / "r.json"),
    ]


def _write(text: str):
    return lambda tmp: tmp.write_text(text)


def _listing(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir()) if p.is_file()}


def test_all_files_appear_together_and_replace_the_old_ones(tmp_path):
    (tmp_path / "m.onnx").write_text("old")
    with OutputGroup(_targets(tmp_path)) as group:
        for _, path in _targets(tmp_path):
            group.write_atomic(path, "-o", _write(f"new {path.name}"))
        visible = {k: v for k, v in _listing(tmp_path).items() if not k.startswith(".")}
        assert visible == {"m.onnx": "old"}  # only temporaries beside it until the commit
        group.commit()
    assert _listing(tmp_path) == {
        "m.onnx": "new m.onnx", "m_fp16.onnx": "new m_fp16.onnx", "r.json": "new r.json"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: (t / "m_fp16.onnx").mkdir(), "m_fp16.onnx: is a folder"),
        (lambda t: None, "is also the output of"),  # the same path twice (see below)
        (lambda t: (t / "in.keras").write_text("k"), "is the input"),
    ],
)
def test_every_target_is_checked_before_any_work(tmp_path, make, message):
    make(tmp_path)
    targets = _targets(tmp_path)
    inputs = [tmp_path / "in.keras"]
    if message == "is also the output of":
        targets[2] = ("-o", tmp_path / "m.onnx")
    if message == "is the input":
        targets[2] = ("-o", tmp_path / "in.keras")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(OutputError, match=message):
        OutputGroup(targets, inputs)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_failure_before_the_commit_leaves_nothing(tmp_path):
    (tmp_path / "m.onnx").write_text("old")
    with pytest.raises(RuntimeError), OutputGroup(_targets(tmp_path)) as group:
        group.write_atomic(tmp_path / "m.onnx", "-o", _write("new"))
        group.write_atomic(tmp_path / "m_fp16.onnx", "-o", _write("new"))
        raise RuntimeError("the last variant failed verification")
    assert _listing(tmp_path) == {"m.onnx": "old"}  # no temporaries left either


def test_a_check_that_fails_at_the_commit_renames_nothing(tmp_path):
    empty = "r.json: the written file is empty"
    with pytest.raises(OutputError, match=empty), OutputGroup(_targets(tmp_path)) as group:
        group.write_atomic(tmp_path / "m.onnx", "-o", _write("a"), check_nonempty)
        group.write_atomic(tmp_path / "m_fp16.onnx", "-o", _write("b"), check_nonempty)
        group.write_atomic(tmp_path / "r.json", "-o", _write(""), check_nonempty)
        group.commit()
    assert list(tmp_path.iterdir()) == []


def test_the_last_rename_failing_undoes_the_others(tmp_path):
    # A late failure: after everything was written and checked, the last target cannot take its
    # file (a folder appeared there). The files renamed before it are undone, the old one is back.
    (tmp_path / "m.onnx").write_text("old")
    with pytest.raises(OutputError, match="r.json"), OutputGroup(_targets(tmp_path)) as group:
        for _, path in _targets(tmp_path):
            group.write_atomic(path, "-o", _write("new"))
        (tmp_path / "r.json").mkdir()
        (tmp_path / "r.json" / "keep").write_text("theirs")
        group.commit()
    assert _listing(tmp_path) == {"m.onnx": "old"}
    assert (tmp_path / "r.json" / "keep").read_text() == "theirs"


def test_folders_the_group_created_go_when_it_fails(tmp_path):
    out = tmp_path / "a" / "b" / "m.onnx"
    with pytest.raises(RuntimeError), OutputGroup([("-o", out)], parents=("-o",)) as group:
        group.write_atomic(out, "-o", _write("x"))
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def _two_stream_videos(tmp_path: Path, in_the_way: bool) -> None:
    """What `edge run --source A --source B --save v.mp4` does with its per-stream videos."""
    import contextlib

    import numpy as np

    from edge.outputs.sinks import VideoFile

    paths = [tmp_path / "v.0.mp4", tmp_path / "v.1.mp4"]
    with contextlib.ExitStack() as stack:
        group = OutputGroup([("--save", p) for p in paths])
        stack.push(group.exit_with)
        videos = [stack.enter_context(VideoFile(p, 30.0, group)) for p in paths]
        for i in range(5):
            for v in videos:
                v.write(None, None, np.full((48, 64, 3), 40 * i, np.uint8))  # type: ignore[arg-type]
        if in_the_way:  # a late failure: the last video cannot be renamed into place
            paths[1].mkdir()


def test_per_stream_videos_appear_together(tmp_path):
    _two_stream_videos(tmp_path, in_the_way=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.0.mp4", "v.1.mp4"]


def test_a_per_stream_video_that_cannot_be_committed_takes_the_others_with_it(tmp_path):
    with pytest.raises(OutputError, match="--save .*v.1.mp4: cannot write"):
        _two_stream_videos(tmp_path, in_the_way=True)
    assert [p.name for p in tmp_path.iterdir()] == ["v.1.mp4"]  # only the folder in the way
