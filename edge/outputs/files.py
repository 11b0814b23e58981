"""The output policy: every file `edge` writes is checked before work starts and written atomically.

Before any work: the parent folder exists and takes a new file; the target is not a folder or a
device/FIFO/socket; it is not the same file as an input or another output (resolved path and
inode, so symlinks and hard links count). While writing: a temporary name in the same folder;
at the end the file is flushed, fsync'd, checked (JSON parsed, a video re-opened and its frames
counted) and only then renamed into place. Any OSError (disk full, permission, I/O) becomes one
`OutputError` naming the flag and the file; nothing is left under the final name or as a temp file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from edge.errors import EdgeError
from edge.runtime.abort import finishing

STDOUT = "-"  # an output flag that streams (--jsonl) may name stdout

# Paths that passed their check and were renamed into place in this process: the CLI says
# "wrote X" only for these.
_written: set[Path] = set()


def _read_umask() -> int:
    """The process's umask, read without changing it where the kernel says it (Linux >= 4.7):
    os.umask can only be read by setting it, which races with a host program's other threads."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


class OutputError(EdgeError, ValueError):
    """An output cannot be written where asked, or failed while writing (disk full, permission).

    Also a ValueError: a path that cannot take the output is a bad argument of the writer."""


def _describe_os_error(exc: OSError) -> str:
    reasons = {
        errno.ENOSPC: "disk full",
        errno.EDQUOT: "disk quota exceeded",
        errno.EFBIG: "file too large for this disk or limit (disk full?)",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system",
        errno.EIO: "I/O error on the disk",
    }
    return reasons.get(exc.errno or 0, exc.strerror or str(exc))


def os_error(flag: str, path: Path | str, exc: OSError) -> OutputError:
    """One line for an OSError met while writing `path` (the value of `flag`)."""
    return OutputError(
        f"{flag} {path}: cannot write: {_describe_os_error(exc)}; nothing was written"
    )


def mark_written(paths: Iterable[Path]) -> None:
    """Record files renamed into place by a writer outside this module (see `was_written`)."""
    _written.update(Path(os.path.abspath(p)) for p in paths)


def was_written(path: Path | str | None) -> bool:
    """True when `path` was written, checked and renamed into place by this process."""
    return path is not None and Path(os.path.abspath(path)) in _written


# --- checks before work starts --------------------------------------------------------------------


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def check_target(
    flag: str, path: Path | str, *, stdout_ok: bool = False, parents: bool = False
) -> None:
    """Raise OutputError unless a new file can be written at `path` (checked by creating one).

    With `parents`, missing folders above `path` are fine when the nearest existing one takes new
    files: the writer creates them (`make_folders`), as `mkdir -p` would."""
    text = str(path)
    if text == STDOUT:
        if stdout_ok:
            return
        raise OutputError(f"{flag} -: this output cannot go to stdout; give a file name")
    if not text.strip():
        raise OutputError(f"{flag} is empty; give a file name")
    path = Path(text)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        above = next(p for p in path.parents if p.exists())
        raise OutputError(f"{flag} {text}: {above} is not a folder") from None
    except OSError as exc:
        raise OutputError(f"{flag} {text}: cannot check it ({_describe_os_error(exc)})") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{flag} {text}: is a folder; give a file name inside it")
        if not stat.S_ISREG(st.st_mode):
            hint = " (use - for stdout)" if stdout_ok else ""
            raise OutputError(
                f"{flag} {text}: is a device, pipe or other special file, not a regular file{hint}"
            )
    parent = path.parent
    if parents:
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    if not parent.exists():
        raise OutputError(f"{flag} {text}: folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"{flag} {text}: {parent} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        raise OutputError(
            f"{flag} {text}: folder {parent} does not take new files ({_describe_os_error(exc)})"
        ) from None
    os.close(fd)
    os.unlink(probe)


def check_folder(flag: str, path: Path | str) -> None:
    """Raise OutputError unless `path` is, or can become, a folder that takes new files: a
    missing folder is created with its parents by `make_folders`, as run folders are everywhere."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path}: is a file, not a folder; give a folder name")
    if path.is_dir():
        check_target(flag, path / ".edge-probe")
        return
    check_target(flag, path, parents=True)


def make_folders(path: Path | str) -> list[Path]:
    """`mkdir -p path`; the folders it created, innermost first (to remove them on failure)."""
    path = Path(path)
    created = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    return created


def remove_folders(created: Iterable[Path]) -> None:
    """Remove the folders `make_folders` created that are still empty, innermost first."""
    for folder in created:
        with contextlib.suppress(OSError):
            folder.rmdir()


def input_files(specs: Iterable[Path | str | None]) -> list[Path]:
    """The existing files among `specs` (URLs, camera indexes and `synthetic` drop out; a folder
    adds the files directly in it; a glob adds what it matches)."""
    import glob

    files: list[Path] = []
    for spec in specs:
        if spec is None or str(spec).strip() in ("", STDOUT):
            continue
        text = str(spec).strip()
        if "://" in text:
            continue
        p = Path(text)
        if p.is_dir():
            with contextlib.suppress(OSError):
                files += [c for c in p.iterdir() if c.is_file()]
        elif p.exists():
            files.append(p)
        elif any(ch in text for ch in "*?["):
            files += [Path(m) for m in glob.glob(text) if Path(m).is_file()]
    return files


def check_outputs(
    outputs: Sequence[tuple[str, Path | str | None]],
    inputs: Iterable[Path | str | None] = (),
    *,
    stdout_ok: Iterable[str] = (),
    parents: Iterable[str] = (),
) -> None:
    """Check every (flag, path) output before work starts; None paths are skipped. The flags in
    `parents` name files whose missing folders the writer creates (see `check_target`).

    Raises OutputError when a target cannot be written, or is the same file as an input or as
    another output (compared by resolved path and by device + inode).
    """
    streaming, creating = set(stdout_ok), set(parents)
    named = [(flag, p) for flag, p in outputs if p is not None]
    for flag, p in named:
        check_target(flag, p, stdout_ok=flag in streaming, parents=flag in creating)
    files = [(f, Path(os.path.realpath(f)), _identity(f)) for f in input_files(inputs)]
    seen: list[tuple[str, Path, Path, tuple[int, int] | None]] = []
    for flag, p in named:
        if str(p) == STDOUT:
            continue
        real, ident = Path(os.path.realpath(p)), _identity(Path(p))
        for f, f_real, f_ident in files:
            if real == f_real or (ident is not None and ident == f_ident):
                raise OutputError(
                    f"{flag} {p}: is the input {f}; writing it would destroy it. "
                    "Choose another file name"
                )
        for other_flag, other, o_real, o_ident in seen:
            if real == o_real or (ident is not None and ident == o_ident):
                raise OutputError(
                    f"{flag} {p}: is also the output of {other_flag} {other}; "
                    "give each output its own file"
                )
        seen.append((flag, Path(p), real, ident))


# --- writing --------------------------------------------------------------------------------------


def temp_path(path: Path) -> Path:
    """A fresh temporary name beside `path`, keeping its extension last (video backends and
    savefig pick the format from it)."""
    fd, name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent
    )
    try:
        if os.name != "nt":
            os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; an output gets the usual mode
    finally:
        os.close(fd)
    return Path(name)


def discard(tmp: Path | None) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:  # rb+: Windows cannot fsync a read-only handle
        os.fsync(f.fileno())


def fsync_folder(folder: Path) -> None:
    """Make a rename inside `folder` durable (POSIX; elsewhere folders cannot be opened)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


Check = Callable[[Path], None]  # raises OutputError (or ValueError) when the file is not valid


def commit(tmp: Path, path: Path | str, flag: str, check: Check | None = None) -> Path:
    """fsync `tmp`, check it, rename it to `path`. On any failure `tmp` is removed and an
    OutputError names `flag` and `path`; nothing appears under `path`."""
    path = Path(path)
    try:
        with finishing():
            fsync_file(tmp)
            if check is not None:
                check(tmp)
            os.replace(tmp, path)
            fsync_folder(path.parent)
    except OSError as exc:
        discard(tmp)
        raise os_error(flag, path, exc) from None
    except (OutputError, ValueError) as exc:
        discard(tmp)
        raise OutputError(f"{flag} {path}: {exc}; nothing was written") from None
    except KeyboardInterrupt:
        # A second Ctrl-C while the run finishes its files: the data is all there, so this file
        # is finished (checked and renamed) before the abort goes on.
        if tmp.exists():
            commit(tmp, path, flag, check)
        raise
    except BaseException:
        discard(tmp)
        raise
    _written.add(Path(os.path.abspath(path)))
    return path


def write_atomic(
    path: Path | str, flag: str, write: Callable[[Path], object], check: Check | None = None
) -> Path:
    """Write a whole file in one go: `write(tmp)` then `commit`. For reports, plots, manifests."""
    path = Path(path)
    try:
        tmp = temp_path(path)
    except OSError as exc:
        raise os_error(flag, path, exc) from None
    try:
        write(tmp)
    except OSError as exc:
        discard(tmp)
        raise os_error(flag, path, exc) from None
    except BaseException:
        discard(tmp)
        raise
    return commit(tmp, path, flag, check)


def write_text(path: Path | str, flag: str, text: str, check: Check | None = None) -> Path:
    return write_atomic(path, flag, lambda t: t.write_text(text, encoding="utf-8"), check)


# --- checks of written files ----------------------------------------------------------------------


def check_json(tmp: Path) -> None:
    try:
        json.loads(tmp.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise OutputError(f"the written file is not valid JSON ({exc})") from None


def check_jsonl(tmp: Path) -> None:
    with open(tmp, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.endswith("\n"):
                raise OutputError(f"line {n} of the written file is cut off")
            try:
                json.loads(line)
            except ValueError:
                raise OutputError(f"line {n} of the written file is not valid JSON") from None


def check_nonempty(tmp: Path) -> None:
    if tmp.stat().st_size == 0:
        raise OutputError("the written file is empty")


def video_check(frames: int) -> Check:
    """A check that re-opens a video: it must hold all `frames`, and its last frame must decode.

    The container's frame count and one seek to the end cost the same for a minute or an hour of
    video; only a container that states no count is counted frame by frame.
    """

    def check(tmp: Path) -> None:
        import cv2

        cap = cv2.VideoCapture(str(tmp))
        try:
            if not cap.isOpened():
                raise OutputError(
                    f"the written video does not open (0 of {frames} frames; disk full?)"
                )
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            if n == frames and frames > 0:
                cap.set(cv2.CAP_PROP_POS_FRAMES, frames - 1)
                if not cap.grab():
                    n = frames - 1  # the count was written but the frames were not
            elif n <= 0:
                n = 0
                while n <= frames and cap.grab():
                    n += 1
        finally:
            cap.release()
        if n != frames:
            raise OutputError(f"the written video reads back {n} of {frames} frames (disk full?)")

    return check
