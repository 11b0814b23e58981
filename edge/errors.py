"""The error family: runtime failures the CLI turns into one line and exit code 2, and the checks
every input file passes before it is read (a regular file, of a size its kind can be)."""

from __future__ import annotations

import os
import stat


class EdgeError(Exception):
    """A failure the user can act on (bad file, unopenable source, unsupported model)."""


class SourceError(EdgeError):
    """A source could not be opened or read."""


class ModelError(EdgeError):
    """A model file could not be loaded or is not one any decoder understands."""


class DataError(EdgeError):
    """A dataset is missing, empty or malformed."""


class ServerLost(EdgeError):
    """A model server (`--device triton://...`) stayed away through every reconnect attempt, or
    the run was stopped while waiting for it."""


# --- reading an input file ------------------------------------------------------------------------
# Every file edge reads is checked here first: a FIFO would block the read for ever, a device
# (/dev/zero) would fill memory, and a file far larger than its kind ever is (a 1 GB site config)
# would take minutes and gigabytes to parse. Each reader names its kind's limit.

CONFIG_BYTES = 1 << 20  # a site config, a --sources list, a class-names file
ANNOTATION_BYTES = 16 << 20  # one annotation file: a YOLO label file, a VOC XML, a data.yaml
LIST_BYTES = 256 << 20  # a dataset's image list (train.txt), a calibration image list
LARGE_BYTES = 2 << 30  # a COCO annotations JSON, a telemetry file or trace of a long run
MODEL_BYTES = 16 << 30  # a model (read by ONNX Runtime or Keras, never by us: only stat'ed)


def _kind(mode: int) -> str | None:
    """What a non-regular file is, or None for a regular one."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device"
    return "is a socket or other special file"


def _size(n: int) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GB"
    return f"{n / (1 << 20):.1f} MB" if n >= 1 << 20 else f"{n:,} bytes"


def _refuse(what: str, st: os.stat_result, limit: int, error: type[Exception]) -> None:
    kind = _kind(st.st_mode)
    if kind is not None:
        raise error(f"{what}: {kind}, not a regular file: give the path of a file")
    if st.st_size > limit:
        raise error(
            f"{what}: {_size(st.st_size)}, more than the {_size(limit)} such a file may be: "
            "is it the right file?"
        )


def check_regular(
    path: str | os.PathLike[str],
    what: str | None = None,
    error: type[Exception] = EdgeError,
    limit: int = MODEL_BYTES,
) -> int:
    """The size of `path`, a regular file of at most `limit` bytes, found without opening it.

    Raises `error` ("WHAT: is a FIFO (named pipe), not a regular file ...") for anything else;
    a missing file raises FileNotFoundError as `os.stat` does. For files that others read
    (models): reading them is theirs to do.
    """
    st = os.stat(path)
    _refuse(what or str(path), st, limit, error)
    return st.st_size


def read_bounded(
    path: str | os.PathLike[str],
    limit: int,
    what: str | None = None,
    error: type[Exception] = EdgeError,
) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes; `error` for anything else.

    Checked before opening (opening a FIFO blocks until a writer comes) and again on the open
    file, which never reads more than `limit` + 1 bytes, whatever its size said. A file that
    cannot be read (permissions, an I/O error) is `error` too ("WHAT: cannot read it (...)");
    only a missing file raises FileNotFoundError, as `open` does: what a missing file means is
    the caller's to say.
    """
    what = what or str(path)
    _refuse(what, os.stat(path), limit, error)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as f:
            _refuse(what, os.fstat(fd), limit, error)  # swapped for a FIFO since the stat?
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise error(f"{what}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise error(
            f"{what}: more than the {_size(limit)} such a file may be: is it the right file?"
        )
    return data


def read_text_bounded(
    path: str | os.PathLike[str],
    limit: int,
    what: str | None = None,
    error: type[Exception] = EdgeError,
) -> str:
    """`read_bounded` decoded as UTF-8; text that is not UTF-8 is `error` ("WHAT: not UTF-8
    text (byte N) ..."), the same line for every text file edge reads."""
    what = what or str(path)
    data = read_bounded(path, limit, what, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{what}: not UTF-8 text (byte {exc.start}): is it the right file? Save it as UTF-8"
        ) from None
