"""SIGINT and `kill -9` during `edge train`: the run folder only ever holds whole, loadable files,
and `edge train --out OUT --resume` finishes the run with one results.csv row per epoch, in order.

The runs are subprocesses of the real CLI on a tiny YOLO dataset; waits poll the run folder with
a deadline. A process spends most of its time importing and tracing, so the kills are few and
chosen: mid-checkpoint, mid-state, start-up, between the results row and the state, and one at a
random moment. The runs use JAX when it is installed, with a compilation cache shared by this
module's runs: a resumed run then trains after ~8 s instead of ~15 s (the writes under test are
the same on every backend; without JAX the default backend runs them).
"""

from __future__ import annotations

import csv
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edge.errors import EdgeError  # noqa: E402
from edge.model import contract_for, load_detector  # noqa: E402
from edge.training import TrainOptions  # noqa: E402
from edge.training.checkpoint import (  # noqa: E402
    STATE_FILE,
    atomic_write,
    load_state,
    remove_stale_temps,
)
from edge.training.toy import TOY_NAMES, write_toy_yolo  # noqa: E402

BACKEND = ["--backend", "jax"] if find_spec("jax") else []
VISIBLE = {"options.json", "results.csv", "last.keras", "best.keras", STATE_FILE}
TEMP = re.compile(r"\.(last|best|last\.state|results|options)\.\d+\.tmp\.(keras|npz|csv|json)")
# A non-interactive shell starts background jobs with SIGINT ignored, and Python keeps it so;
# give the run the handler that a Ctrl-C in a terminal meets.
LAUNCH = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from edge.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.fixture(scope="module")
def yolo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four train and two val images of coloured boxes, in YOLO layout."""
    return write_toy_yolo(tmp_path_factory.mktemp("yolo") / "data", 4, 2, (64, 64))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The runs' environment: unbuffered output; JAX on the CPU, compiling once for them all."""
    cache = tmp_path_factory.mktemp("jax-cache")
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


class _Run:
    """One `edge train` process, its output in files (a pipe nobody reads can block it)."""

    def __init__(self, out: Path, args: list[str], env: dict[str, str]) -> None:
        logs = out.parent / "logs"
        logs.mkdir(exist_ok=True)
        n = len(list(logs.glob("*.err")))
        self.log = logs / f"{n}.err"
        with open(logs / f"{n}.out", "w") as o, open(self.log, "w") as e:
            self.process = subprocess.Popen(
                [sys.executable, "-c", LAUNCH, "train", "--out", str(out), *BACKEND, *args],
                stdout=o,
                stderr=e,
                env=env,
            )

    def wait_for(self, ready: Callable[[], bool], what: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process.poll() is None, f"edge train exited before {what}: {self.tail()}"
            assert time.monotonic() < deadline, f"no {what} after {timeout} s: {self.tail()}"
            time.sleep(0.002)

    def kill(self) -> None:
        assert self.process.poll() is None, f"edge train had already exited: {self.tail()}"
        self.process.kill()
        self.process.wait(timeout=30)

    def finish(self, timeout: float = 180) -> tuple[int, str]:
        self.process.wait(timeout=timeout)
        return self.process.returncode, self.log.read_text()

    def tail(self) -> str:
        return self.log.read_text()[-3000:]


def _start(out: Path, env: dict[str, str], yolo: Path | None = None, epochs: int = 0) -> _Run:
    if yolo is None:
        return _Run(out, ["--resume"], env)  # the dataset and options saved in OUT
    args = ["--data", str(yolo), "--model", "tiny", "--imgsz", "64", "--epochs", str(epochs)]
    args += ["--batch", "2", "--no-augment", "--workers", "1", "--weights", "none"]
    return _Run(out, args, env)


def _rows(out: Path) -> list[dict[str, str]]:
    path = out / "results.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _writing(run: _Run, out: Path, name: str) -> bool:
    """Whether `run` is writing OUT/name now (its temp file, named as atomic_write names it)."""
    stem, suffix = name.rsplit(".", 1)
    return (out / f".{stem}.{run.process.pid}.tmp.{suffix}").exists()


def _check_run_folder(out: Path, where: str) -> int:
    """Everything in OUT is whole: models load, the state and CSV parse, and agree. Returns the
    epoch a resume starts at (0 with no state yet)."""
    names = {p.name for p in out.iterdir()}
    assert {n for n in names if not n.startswith(".")} <= VISIBLE, where
    stray = [n for n in names if n.startswith(".") and not TEMP.fullmatch(n)]
    assert not stray, f"{where}: unexpected hidden files {stray}"
    if "options.json" in names:
        assert TrainOptions.from_json((out / "options.json").read_text()).model == "tiny", where
    for name in ("last.keras", "best.keras"):
        if name in names:
            assert contract_for(load_detector(out / name)).names == TOY_NAMES, f"{where}: {name}"
    rows = _rows(out)
    assert [int(r["epoch"]) for r in rows] == list(range(len(rows))), where
    for row in rows:
        assert all(np.isfinite(float(v)) for k, v in row.items() if k != "epoch"), (where, row)
    if STATE_FILE not in names:
        assert len(rows) <= 1, where  # a kill in the first epoch's writes, before its state
        return 0
    state = load_state(out / STATE_FILE)
    assert {"last.keras", "best.keras"} <= names, where  # written before the state
    # The state goes last, so the CSV may be one row ahead of it (resume drops that row).
    assert state.epoch <= len(rows) <= state.epoch + 1, (where, state.epoch, len(rows))
    return state.epoch


def _resume_to_the_end(out: Path, env: dict[str, str], epochs: int) -> None:
    code, log = _start(out, env).finish()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log
    assert [int(r["epoch"]) for r in _rows(out)] == list(range(epochs))
    assert load_state(out / STATE_FILE).epoch == epochs
    assert _check_run_folder(out, "after the run") == epochs
    assert not [p.name for p in out.glob(".*")], "temp files left behind"


def test_sigint_stops_promptly_and_resume_finishes_the_run(
    yolo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    out, epochs = tmp_path / "run", 8
    run = _start(out, env, yolo, epochs)
    run.wait_for(lambda: (out / STATE_FILE).is_file() and len(_rows(out)) >= 1, "first epoch")
    done = len(_rows(out))
    run.process.send_signal(signal.SIGINT)
    code, log = run.finish(timeout=120)  # a hang guard; "promptly" is counted in epochs below
    assert code == 130, log[-3000:]
    # It stopped in the epoch it was in: at most that one more row, not the rest of the run.
    assert len(_rows(out)) <= done + 1 < epochs
    assert "Traceback" not in log
    assert log.strip().splitlines()[-1] == "edge train: interrupted"
    assert f"edge train --out {out} --resume" in log
    assert 1 <= _check_run_folder(out, "after SIGINT") < epochs
    _resume_to_the_end(out, env, epochs)


def test_sigterm_stops_like_sigint_with_exit_130_and_whole_files(
    yolo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    # One rule for every command (edge.cli): SIGTERM unwinds as Ctrl-C does, exit 130.
    out, epochs = tmp_path / "run", 8
    run = _start(out, env, yolo, epochs)
    run.wait_for(lambda: (out / STATE_FILE).is_file(), "first epoch")
    run.process.send_signal(signal.SIGTERM)
    code, log = run.finish(timeout=120)
    assert code == 130, log[-3000:]
    assert "Traceback" not in log
    assert log.strip().splitlines()[-1] == "edge train: interrupted"
    assert 1 <= _check_run_folder(out, "after SIGTERM") < epochs
    assert not [p.name for p in out.glob(".*")], "temp files left behind"


@pytest.mark.slow
def test_kill_9_at_any_moment_leaves_whole_files_and_resume_finishes_the_run(
    yolo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    out, epochs = tmp_path / "run", 12
    seed = random.randrange(2**32)
    rng = random.Random(seed)

    def row_added() -> Callable[[], bool]:
        kept = load_state(out / STATE_FILE).epoch  # the rows a resumed run keeps
        return lambda: len(_rows(out)) > kept

    def after(seconds: float, ready: Callable[[], bool] = lambda: True) -> Callable[[], bool]:
        since: list[float] = []

        def check() -> bool:
            if not since and ready():
                since.append(time.monotonic())
            return bool(since) and time.monotonic() - since[0] >= seconds

        return check

    # What to wait for before each kill, made for each new process; all but the first resume.
    moments: list[tuple[str, Callable[[_Run], Callable[[], bool]]]] = [
        (
            "while last.keras is written",
            lambda run: lambda: (out / STATE_FILE).is_file() and _writing(run, out, "last.keras"),
        ),
        ("while the resume state is written", lambda run: lambda: _writing(run, out, STATE_FILE)),
        ("during start-up", lambda run: after(rng.uniform(0.2, 3.0))),
        ("as soon as a results row appears", lambda run: row_added()),
        ("at a random moment of training", lambda run: after(rng.uniform(0, 1), row_added())),
    ]
    for i, (what, when) in enumerate(moments):
        run = _start(out, env, yolo if i == 0 else None, epochs)
        run.wait_for(when(run), f"the moment to kill {what}")
        run.kill()
        _check_run_folder(out, f"kill -9 {what} (seed {seed})")
    _resume_to_the_end(out, env, epochs)


def test_truncated_or_garbled_resume_state_is_an_edge_error(tmp_path: Path) -> None:
    from edge.training.checkpoint import ResumeState, save_state

    good = tmp_path / STATE_FILE
    state = ResumeState(3, 0.5, "{}", {"a": 1}, [np.ones((2, 3))], [np.zeros(4)])
    save_state(good, state)
    data = good.read_bytes()
    for size in (0, 10, len(data) // 3, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{size}.npz"
        bad.write_bytes(data[:size])
        with pytest.raises(EdgeError, match="cannot read resume state"):
            load_state(bad)
    assert load_state(good).epoch == 3


def test_atomic_write_syncs_before_it_replaces_and_keeps_the_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "results.csv"
    path.write_text("old")
    calls: list[str] = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), replace(a, b))[1])

    def fails(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fails, ".csv")
    assert path.read_text() == "old" and calls == [] and not list(tmp_path.glob(".*"))
    atomic_write(path, lambda tmp: tmp.write_text("new"), ".csv")
    assert path.read_text() == "new" and not list(tmp_path.glob(".*"))
    assert calls[:2] == ["fsync", "replace"]  # then the folder, where POSIX allows


@pytest.mark.parametrize(
    ("name", "removed"),
    [
        (".last.12345678.tmp.keras", True),
        (".last.state.12345678.tmp.npz", True),
        (".results.12345678.tmp.csv", True),
        (".options.12345678.tmp.json", True),
        (f".last.{os.getpid()}.tmp.keras", False),  # a live process may be writing it
        (f".last.{os.getppid()}.tmp.keras", False),
        (".last.keras", False),
        ("last.keras", False),
        (".notes.tmp", False),
        (".last.x1.tmp.keras", False),
    ],
)
def test_remove_stale_temps(tmp_path: Path, name: str, removed: bool) -> None:
    (tmp_path / name).write_text("x")
    assert remove_stale_temps(tmp_path) == ([tmp_path / name] if removed else [])
    assert (tmp_path / name).exists() is not removed
