"""The output policy, end to end: `edge run` with output paths a hostile user would pick.

A property test (hypothesis) draws the target of each output flag from {a new file, an input, another
output, an existing folder, a character device, a FIFO, a missing folder, a folder that takes no new
files, stdout} and optionally a small RLIMIT_FSIZE ("disk full": writes fail with EFBIG). Whatever
is drawn: exit 0 with every named output valid, or exit 2 with one line on stderr; the inputs are
byte-identical; no temporary file is left; a file exists under an output's name only if it is valid.

We run as root in CI, where permission bits stop nothing: the "unwritable folder" is then /sys,
which refuses new files even to root (EACCES). The character device is a symlink to /dev/null
(stat() sees a character device; were the product to replace it, only the link would go).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from onnx_models import fixed_detector

from edge.outputs import files

ENV = {**os.environ, "DISPLAY": "", "WAYLAND_DISPLAY": "", "PYTHONUNBUFFERED": "1"}
FRAMES = 12
FLAGS = {"--save": ".mp4", "--jsonl": ".jsonl", "--telemetry": ".csv", "--trace": ".json"}
KINDS = (
    "new",
    "new",
    "input",
    "other output",
    "folder",
    "device",
    "fifo",
    "missing folder",
    "parent is a file",
    "unwritable folder",
    "stdout",
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("outputs")
    fixed_detector(work / "tiny.onnx")
    writer = cv2.VideoWriter(str(work / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (96, 72))
    for i in range(FRAMES):
        writer.write(np.full((72, 96, 3), 10 + i * 15, np.uint8))
    writer.release()
    return work


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _target(kind: str, flag: str, ex: Path, inputs: Path, chosen: dict[str, str]) -> str | None:
    ext = FLAGS[flag]
    name = flag.strip("-")
    if kind == "input":
        return str(inputs / ("clip.mp4" if flag == "--save" else "tiny.onnx"))
    if kind == "other output":
        named = [p for p in chosen.values() if p not in (None, "-")]
        return named[0] if named else str(ex / f"{name}{ext}")
    if kind == "folder":
        (ex / f"dir{ext}").mkdir(exist_ok=True)
        return str(ex / f"dir{ext}")
    if kind == "device":
        link = ex / f"dev-{name}{ext}"
        if not link.is_symlink():
            os.symlink("/dev/null", link)
        return str(link)
    if kind == "fifo":
        fifo = ex / f"fifo-{name}{ext}"
        if not fifo.exists():
            os.mkfifo(fifo)
        return str(fifo)
    if kind == "missing folder":
        return str(ex / "nodir" / f"{name}{ext}")
    if kind == "parent is a file":
        (ex / "file.txt").write_text("x")
        return str(ex / "file.txt" / f"{name}{ext}")
    if kind == "unwritable folder":
        if os.geteuid() == 0:
            return f"/sys/edge-test-{name}{ext}"
        ro = ex / "ro"
        ro.mkdir(exist_ok=True)
        ro.chmod(0o555)
        return str(ro / f"{name}{ext}")
    if kind == "stdout":
        return "-"
    return str(ex / f"{name}{ext}")


def _limit(fsize: int | None):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return preexec if fsize else None


def _valid(flag: str, path: Path) -> None:
    """Raise AssertionError unless `path` is a complete output of `flag` for FRAMES frames."""
    if flag == "--save":
        cap = cv2.VideoCapture(str(path))
        n = 0
        while cap.grab():
            n += 1
        cap.release()
        assert n == FRAMES, (path, n)
    elif flag == "--jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert [r["frame"] for r in rows] == list(range(FRAMES))
    elif flag == "--telemetry":
        with open(path, newline="") as f:
            assert len(list(csv.DictReader(f))) == FRAMES
    else:
        events = json.loads(path.read_text())
        assert sum(1 for e in events if str(e.get("name", "")).startswith("frame ")) == FRAMES


def _temps(*folders: Path) -> list[Path]:
    return [
        p
        for folder in folders
        for p in folder.rglob(".*")
        if ".partial" in p.name or p.name.endswith(".probe")
    ]


def check_run(inputs: Path, ex: Path, kinds: dict[str, str], fsize: int | None) -> None:
    chosen: dict[str, str | None] = {}
    for flag, kind in kinds.items():
        if kind != "none":
            chosen[flag] = _target(kind, flag, ex, inputs, chosen)
    before = {p: _digest(p) for p in (inputs / "tiny.onnx", inputs / "clip.mp4")}
    fresh = {f: Path(p) for f, p in chosen.items() if p != "-" and not os.path.lexists(p)}
    argv = [sys.executable, "-m", "edge", "run", "--model", str(inputs / "tiny.onnx")]
    argv += ["--source", str(inputs / "clip.mp4"), "--no-show", "-q"]
    for flag, p in chosen.items():
        argv += [flag, p]
    r = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ex,
        timeout=120,
        preexec_fn=_limit(fsize),
    )
    what = f"{kinds} fsize={fsize}: exit {r.returncode}\n{r.stderr}"
    assert r.returncode in (0, 2), what
    assert "Traceback" not in r.stderr, what
    # Where stdout carries rows (an output to "-"), the run's messages go to stderr.
    said = r.stderr if "-" in chosen.values() else r.stdout
    if r.returncode == 0:
        for flag, p in chosen.items():
            if p == "-":
                rows = [json.loads(line) for line in r.stdout.splitlines()]
                assert len(rows) == FRAMES, what
                assert "wrote" not in r.stdout, what
            else:
                _valid(flag, Path(p))
                assert f"wrote {p}" in said, what
    else:
        assert len(r.stderr.strip().splitlines()) == 1, what
        assert "wrote" not in r.stdout, what
    # Whatever the outcome: a file under a new output's name is a valid one.
    for flag, p in fresh.items():
        if p.exists():
            _valid(flag, p)
    assert {p: _digest(p) for p in before} == before, what
    assert os.path.realpath("/dev/null") == "/dev/null" and Path("/dev/null").is_char_device()
    for link in ex.glob("dev-*"):
        assert link.is_symlink() and os.readlink(link) == "/dev/null", what
    assert _temps(ex, inputs) == [], what
    assert not list(Path("/sys").glob("edge-test-*"))


_draw = st.fixed_dictionaries({f: st.sampled_from(("none", *KINDS)) for f in FLAGS})
_fsize = st.sampled_from((None, None, 4096, 40_000))


def _example_dir(inputs: Path) -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix="ex-", dir=inputs))


@settings(
    max_examples=14,
    deadline=None,
    derandomize=True,  # the same examples on every CI run; the slow test below explores
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(kinds=_draw, fsize=_fsize)
# Found by the long run: rows on stdout, so the "wrote trace.json" line is on stderr.
@example(
    kinds={"--save": "none", "--jsonl": "stdout", "--telemetry": "none", "--trace": "new"},
    fsize=None,
)
def test_any_output_paths_end_valid_or_in_one_line(inputs, kinds, fsize):
    check_run(inputs, _example_dir(inputs), kinds, fsize)


@pytest.mark.slow
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(kinds=_draw, fsize=_fsize)
def test_any_output_paths_end_valid_or_in_one_line_long(inputs, kinds, fsize):
    check_run(inputs, _example_dir(inputs), kinds, fsize)


# --- the policy's pieces, each on its own -----------------------------------------------------


@pytest.mark.parametrize(
    ("fsize", "ok"),
    [(None, True), (2048, False)],
    ids=["room", "disk full"],
)
def test_a_full_disk_leaves_no_video_and_says_so_in_one_line(inputs, tmp_path, fsize, ok):
    out = tmp_path / "out.mp4"
    argv = [sys.executable, "-m", "edge", "run", "--model", str(inputs / "tiny.onnx")]
    argv += ["--source", str(inputs / "clip.mp4"), "--no-show", "-q", "--save", str(out)]
    r = subprocess.run(
        argv, capture_output=True, text=True, env=ENV, timeout=120, preexec_fn=_limit(fsize)
    )
    if ok:
        assert r.returncode == 0 and f"wrote {out}" in r.stdout, r.stderr
        _valid("--save", out)
    else:
        assert r.returncode == 2 and not out.exists(), r.stderr
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith(f"edge run: error: --save {out}: "), line
        assert "wrote" not in r.stdout
    assert _temps(tmp_path) == []


def test_all_frames_unreadable_claims_no_video(tmp_path, inputs):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("a.jpg", "b.png"):
        (folder / name).write_bytes(b"not an image")
    out = tmp_path / "out.mp4"
    argv = [sys.executable, "-m", "edge", "run", "--model", str(inputs / "tiny.onnx")]
    argv += ["--source", str(folder), "--no-show", "-q", "--save", str(out)]
    r = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=120)
    # nothing could be processed: bad input (exit 2, one line naming an image), no video
    assert r.returncode == 2 and "wrote" not in r.stdout, r.stderr
    assert (
        r.stderr
        == f"edge run: error: --source imgs: no image could be read ({folder / 'a.jpg'} and 1 more)\n"
    )
    assert not out.exists() and list(tmp_path.glob(".out*")) == []


def test_jsonl_to_stdout_streams_detections_and_keeps_stdout_clean(inputs):
    argv = [sys.executable, "-m", "edge", "run", "--model", str(inputs / "tiny.onnx")]
    argv += ["--source", str(inputs / "clip.mp4"), "--no-show", "--jsonl", "-"]
    r = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["frame"] for row in rows] == list(range(FRAMES))
    assert "frames: 12" in r.stderr  # the summary goes to stderr when stdout carries data


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "new.json", None),
        (lambda d: (d / "dir").mkdir() or d / "dir", "is a folder"),
        (lambda d: os.mkfifo(d / "f") or d / "f", "special file"),
        (lambda d: d / "none" / "x.json", "does not exist"),
    ],
    ids=["new file", "folder", "fifo", "missing folder"],
)
def test_check_target(tmp_path, make, message):
    target = make(tmp_path)
    if message is None:
        files.check_target("--json", target)
        assert list(tmp_path.iterdir()) == []  # the probe file is gone
    else:
        with pytest.raises(files.OutputError, match=message):
            files.check_target("--json", target)


def test_hard_links_and_symlinks_are_the_same_file(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    os.link(model, tmp_path / "hard.jsonl")
    os.symlink(model, tmp_path / "soft.jsonl")
    for name in ("hard.jsonl", "soft.jsonl"):
        with pytest.raises(files.OutputError, match="is the input"):
            files.check_outputs([("--jsonl", tmp_path / name)], [model])
    (tmp_path / "x").mkdir()
    with pytest.raises(files.OutputError, match="also the output of --save"):
        files.check_outputs([("--save", tmp_path / "a"), ("--jsonl", tmp_path / "x" / ".." / "a")])
    assert model.read_bytes() == b"model"


def test_a_failed_check_leaves_nothing(tmp_path):
    target = tmp_path / "r.json"
    with pytest.raises(files.OutputError, match="not valid JSON"):
        files.write_text(target, "--json", "{cut", files.check_json)
    assert list(tmp_path.iterdir()) == [] and not files.was_written(target)
    files.write_text(target, "--json", '{"ok": 1}', files.check_json)
    assert json.loads(target.read_text()) == {"ok": 1} and files.was_written(target)
    mode = target.stat().st_mode & 0o777
    assert mode == 0o666 & ~files._UMASK  # the usual mode, not mkstemp's 0600
