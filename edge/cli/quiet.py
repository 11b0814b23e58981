"""Library noise stays out of the terminal unless --verbose: the one place the CLI sets the
environment and the loggers of the libraries it loads.

TensorFlow 2.20+ prints its start-up lines (oneDNN, the cudart stub, CPU features) through absl
before absl is initialised, and those ignore TF_CPP_MIN_LOG_LEVEL. So the first `import
tensorflow` in a CLI process, whoever asks for it (Keras, tf2onnx), runs with the process's stderr
(fd 2) going to a temporary file, and every line that is not a TensorFlow/absl log record is
written back to stderr afterwards. This is the CLI's own process, the swap lasts for that one
import on the importing thread, and the library (edge.Detector, edge.stream) never does it.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

# Read by native libraries when they load, so set before any of them is imported.
ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ INFO/WARNING/ERROR after absl starts
    "GLOG_minloglevel": "3",  # absl/glog in native libraries
    "GRPC_VERBOSITY": "ERROR",
    "OPENCV_LOG_LEVEL": "SILENT",
    # FFmpeg inside OpenCV prints its own errors ("moov atom not found") around our one line;
    # it reads this once, before its first use. -8 is AV_LOG_QUIET.
    "OPENCV_FFMPEG_LOGLEVEL": "-8",
}
# Modules whose first import prints native start-up lines.
NOISY_IMPORTS = ("tensorflow",)
# A TensorFlow / absl log record, in absl's format ("I0000 00:00:1796.5  8929 port.cc:153] ..."),
# TensorFlow's older one ("2025-09-17 14:44:05.157831: I external/...") or absl's pre-init notice.
_RECORD = re.compile(
    r"[IWE]\d{4} [\d:.]+\s+\d+ \S+:\d+\] "
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
)
_NOTICE = b"WARNING: All log messages before absl::InitializeLog()"
_RECORD_START = re.compile(rb"[IWE](?:\d|$)|\d{1,4}(?:-|$)")  # "E0000 ...", "2025-09-17 ..."


def _may_become_record(partial: bytes) -> bool:
    """A line begun but not ended that a record could still be: held back until it ends."""
    return bool(_RECORD_START.match(partial)) or _NOTICE.startswith(partial[: len(_NOTICE)])


def quiet_libraries(verbose: bool, whole_process: bool = True) -> None:
    """Before anything heavy is imported: native libraries' log levels, the filter on
    TensorFlow's first import, and library loggers at ERROR (edge's own stay at INFO)."""
    if verbose:
        return
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    if not any(isinstance(f, QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, QuietImport(NOISY_IMPORTS))
    if whole_process:
        filter_native_stderr()
    logging.captureWarnings(True)  # Keras/TF UserWarnings become log records...
    for name in ("py.warnings", "absl", "tensorflow", "tf2onnx", "jax", "keras", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)  # ...which only show with --verbose
    logging.getLogger("matplotlib").setLevel(logging.ERROR)


def library_log_level(verbose: bool) -> int:
    """The root logger's level: libraries say only errors unless --verbose (edge logs at INFO)."""
    return logging.DEBUG if verbose else logging.ERROR


def filtered(text: str) -> str:
    """`text` without the TensorFlow/absl log records."""
    return "".join(ln for ln in text.splitlines(keepends=True) if not _RECORD.match(ln))


@contextlib.contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """fd 2 to a temporary file for the duration; what is not a log record is written back."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = filtered(sink.read().decode("utf-8", "replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


_LIVE: list[Any] = []  # the process's one StderrFilter, once installed


def filter_native_stderr() -> None:
    """When stderr is not a terminal (a pipe, a log file): TensorFlow's native log records are
    taken out of it for the rest of the process, not only at import. Its runtime logs them past
    TF_CPP_MIN_LOG_LEVEL too ("oneDNN supports DT_INT32 only on platforms with AVX-512", the
    cuInit failure when it first looks for a GPU). A terminal keeps its fd 2 (a pipe there would
    turn every progress bar off); there only the import is filtered."""
    if _LIVE or not _is_pipe_or_file(2):
        return
    _LIVE.append(StderrFilter())


def _is_pipe_or_file(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:  # fd 2 closed
        return False
    return not os.isatty(fd)


class StderrFilter:
    """fd 2 into a pipe; a thread passes on to the real stderr every line that is not a
    TensorFlow/absl record, and at once a partial line that cannot start one (a prompt, a
    bar's carriage return). `close` (at exit) puts fd 2 back and waits for the rest."""

    def __init__(self) -> None:
        sys.stderr.flush()
        self.real = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self.thread = threading.Thread(
            target=self._pass_on, args=(read,), name="edge-stderr-filter", daemon=True
        )
        self.thread.start()
        atexit.register(self.close)

    def _pass_on(self, read: int) -> None:
        pending = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(read, 65536):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if not _RECORD.match(line.decode("utf-8", "replace")):
                        self._write(line + b"\n")
                if pending and not _may_become_record(pending):
                    self._write(pending)
                    pending = b""
        if pending and not _RECORD.match(pending.decode("utf-8", "replace")):
            self._write(pending)
        os.close(read)

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            while data:
                data = data[os.write(self.real, data) :]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(self.real, 2)  # the pipe's last writer closed: the thread reads to its end
        self.thread.join(timeout=10)


class QuietImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Runs the first import of each module in `names` inside `native_stderr_filtered`."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = set(names)
        self.loaders: dict[str, Any] = {}

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in self.names:
            return None
        self.names.discard(name)  # once: later imports find the module in sys.modules
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        self.loaders[name] = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec: Any) -> ModuleType | None:
        return self.loaders[spec.name].create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        loader = self.loaders.pop(module.__name__)
        module.__loader__ = loader  # the module sees its real loader
        if module.__spec__ is not None:
            module.__spec__.loader = loader
        with native_stderr_filtered():
            loader.exec_module(module)
            if module.__name__ == "tensorflow":
                _devices_found(module)


def _devices_found(tf: ModuleType) -> None:
    """TensorFlow looks for a GPU (cuInit) when devices are first asked for, not at import, and
    on a machine with CUDA's libraries but no driver logs "failed call to cuInit ... (303)" as
    an error then, past TF_CPP_MIN_LOG_LEVEL: asked here, inside the filter, it is said once
    where nobody sees it (seen in a README command's output, intermittently)."""
    with contextlib.suppress(Exception):  # a TensorFlow without tf.config: nothing to ask
        tf.config.list_physical_devices()
