"""Library noise stays out of the terminal unless --verbose: TensorFlow's C++ start-up lines (which
ignore TF_CPP_MIN_LOG_LEVEL since TensorFlow 2.20), library loggers, progress bars on a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.cli.quiet import filtered

REPO = Path(__file__).resolve().parents[1]
# What TensorFlow 2.21 printed on every `import tensorflow` here, TF_CPP_MIN_LOG_LEVEL=3 or not.
TF_START = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796300571.414862    8929 port.cc:153] oneDNN custom operations are on. You may "
    "see slightly different numerical results due to floating-point round-off errors from "
    "different computation orders. To turn them off, set the environment variable "
    "`TF_ENABLE_ONEDNN_OPTS=0`.\n"
    "I0000 00:00:1796300571.415371    8929 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.\n"
    "2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not "
    "find cuda drivers on your machine, GPU will not be used.\n"
    "E0000 00:00:1758131045.203198 3722035 cuda_dnn.cc:8579] Unable to register cuDNN factory\n"
)


def test_filtered_drops_log_records_and_keeps_everything_else():
    kept = (
        "Traceback (most recent call last):\nF0000 00:00:1.5  1 x.cc:1] fatal: kept\nplain line\n"
    )
    assert filtered(TF_START) == ""
    assert filtered(TF_START + kept) == kept


def _python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{cwd}", **env}
    for name in ("TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel"):
        environ.pop(name, None)  # what a user's shell has: nothing
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, cwd=cwd, env=environ, timeout=300,
    )  # fmt: skip


def test_the_first_import_of_a_noisy_module_is_filtered_at_the_descriptor(tmp_path):
    # A stand-in for TensorFlow: its import writes log records and one real line to fd 2 (not
    # sys.stderr), as C++ code does.
    (tmp_path / "noisy.py").write_text(
        f"import os\nos.write(2, {TF_START.encode()!r})\nos.write(2, b'a real problem\\n')\n"
    )
    code = """
        import sys
        from edge.cli import quiet
        quiet.quiet_libraries(verbose=False)
        sys.meta_path.insert(0, quiet.QuietImport(["noisy"]))
        import noisy
        import noisy  # the second import is a no-op, as for any module
        print("imported", noisy.__loader__.__class__.__name__)
    """
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "imported SourceFileLoader\n"  # the module sees its real loader
    assert done.stderr == "a real problem\n"


@pytest.mark.slow
def test_cli_imports_tensorflow_without_its_start_up_lines(tmp_path):
    code = """
        from edge.cli.quiet import quiet_libraries
        quiet_libraries(verbose=False)
        import keras  # imports TensorFlow
        print(keras.backend.backend())
    """
    done = _python(code, tmp_path, KERAS_BACKEND="tensorflow")
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("tensorflow\n", "")


_LATE_RECORDS = r"""
import os, sys, time
from edge.cli.quiet import quiet_libraries
quiet_libraries(verbose=False)
# What TensorFlow's runtime writes to fd 2 long after its import, past TF_CPP_MIN_LOG_LEVEL:
os.write(2, b"E0000 00:00:1796630847.730171   22212 util.cc:131] oneDNN supports DT_INT32 only\n")
os.write(2, b"kept line\nE0000 00:00:1.5   1 cuda_platform.cc:52] failed call to cuInit: (303)\n")
os.write(2, b"W0000 00:00:1.5   1 x.cc:1] part")  # a record in two writes
time.sleep(0.2)
os.write(2, b"ial\n")
print("to stderr from Python", file=sys.stderr)
os.write(2, b"a prompt without its newline: ")
sys.stdout.write("stdout untouched\n")
raise SystemExit(int(sys.argv[1]))
"""


@pytest.mark.parametrize("code", [0, 3])
def test_native_records_written_late_leave_a_piped_stderr_and_the_rest_stays(code: int) -> None:
    r = subprocess.run([sys.executable, "-c", _LATE_RECORDS, str(code)], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == code
    assert r.stdout == "stdout untouched\n"
    assert r.stderr == "kept line\nto stderr from Python\na prompt without its newline: "


def test_an_uncaught_error_still_shows_its_traceback_on_a_piped_stderr() -> None:
    program = _LATE_RECORDS.replace("raise SystemExit(int(sys.argv[1]))", "1 / 0")
    r = subprocess.run([sys.executable, "-c", program, "0"], capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.startswith("kept line\n") and "E0000" not in r.stderr
    assert r.stderr.rstrip().endswith("ZeroDivisionError: division by zero")
