"""`OutputGroup`: the files of one output, checked before work and renamed into place together.

The single-file policy (checks before work, temporary name, verified, renamed) is edge.outputs.files;
this applies it to several files that only make sense together, all or none.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.outputs import files
from edge.runtime.abort import finishing


class OutputGroup:
    """Files that are one output (export variants, eval metrics with their plots, a Triton model
    folder beside the ONNX file): every target checked before work starts (`check_outputs`: no
    folder in the way, a parent that takes new files, no path twice, none an input), each written
    under a temporary name (`write_atomic`, as the module-level one, or `stage`), and all renamed
    into place together by `commit`, or none of them.

    `commit` checks every staged file before it renames any; a rename that still fails puts back
    what it had replaced and removes what it had added. Leaving the `with` block on an error (or
    an interrupt) before `commit` removes the temporaries: nothing new appears, nothing old is
    overwritten. Folders the group had to create are removed too. A staged folder (`folder=True`)
    replaces the whole folder of that name, as a Triton model folder is replaced.
    """

    def __init__(
        self,
        outputs: Sequence[tuple[str, Path | str | None]],
        inputs: Iterable[Path | str | None] = (),
        *,
        parents: Iterable[str] = (),
    ) -> None:
        files.check_outputs(outputs, inputs, parents=parents)
        self.flags = {Path(os.path.abspath(p)): f for f, p in outputs if p is not None}
        self._staged: list[_Staged] = []
        self._created: list[Path] = []

    def add(self, flag: str, path: Path | str, folder: bool = False) -> None:
        """One more target found during the work (a plot per class): checked like the others."""
        path = Path(os.path.abspath(path))
        if path in self.flags:
            raise files.OutputError(f"{flag} {path}: named twice in one output")
        if folder:
            files.check_folder(flag, path)
        else:
            files.check_target(flag, path, parents=True)
        self.flags[path] = flag

    def stage(
        self, path: Path | str, flag: str, check: files.Check | None = None, folder: bool = False
    ) -> Path:
        """A temporary file (or, with `folder`, an empty folder) beside `path` to write its
        content to; renamed to `path` by `commit`."""
        key = Path(os.path.abspath(path))
        if key not in self.flags:
            self.add(flag, key, folder)
        if any(s.path == key for s in self._staged):
            raise files.OutputError(f"{flag} {path}: written twice in one output")
        self._created += files.make_folders(key.parent)
        try:
            if folder:
                tmp = Path(
                    tempfile.mkdtemp(prefix=f".{key.name}.", suffix=".partial", dir=key.parent)
                )
            else:
                tmp = files.temp_path(key)
        except OSError as exc:
            raise files.os_error(flag, path, exc) from None
        self._staged.append(_Staged(flag, tmp, key, check, folder))
        return tmp

    def adopt(self, tmp: Path, path: Path | str, flag: str, check: files.Check | None) -> None:
        """A finished temporary written by its own writer (a video): renamed to `path` by `commit`
        instead of at once (what `files.commit(tmp, path, flag, check)` would do alone)."""
        key = Path(os.path.abspath(path))
        if key not in self.flags:
            try:
                self.add(flag, key)
            except files.OutputError:
                files.discard(tmp)
                raise
        self._staged.append(_Staged(flag, tmp, key, check, False))

    def exit_with(self, exc_type: type[BaseException] | None, *_: object) -> None:
        """For an ExitStack (`stack.push(group.exit_with)`) where the writers close themselves: a
        failed run (an Exception) leaves nothing; a clean stop or Ctrl-C commits what they wrote."""
        if exc_type is not None and issubclass(exc_type, Exception):
            self.discard()
        else:
            self.commit()

    def temporary(self, path: Path | str) -> Path:
        """Where `path`'s staged content is until `commit` (to read it back, or copy it)."""
        key = Path(os.path.abspath(path))
        return next(s.tmp for s in self._staged if s.path == key)

    def write_atomic(
        self,
        path: Path | str,
        flag: str,
        write: Callable[[Path], object],
        check: files.Check | None = None,
    ) -> Path:
        """`write(tmp)` now for `path` (as edge.outputs.files.write_atomic); renamed by `commit`."""
        tmp = self.stage(path, flag, check)
        try:
            write(tmp)
        except OSError as exc:
            raise files.os_error(flag, path, exc) from None
        return Path(path)

    def commit(self) -> list[Path]:
        """Check every staged file, then rename them all into place (or none); returns the paths.
        On failure every temporary is removed, as by `discard`."""
        try:
            with finishing():  # an abort (a second Ctrl-C) waits for the renames
                self._check_all()
                trash = self._rename_all()
        except BaseException:
            self.discard()
            raise
        for hidden in trash:
            _remove(hidden)
        paths = [s.path for s in self._staged]
        files.mark_written(paths)
        self._staged, self._created = [], []
        return paths

    def _check_all(self) -> None:
        for s in self._staged:
            try:
                _fsync(s.tmp)
                if s.check is not None:
                    s.check(s.tmp)
            except OSError as exc:
                raise files.os_error(s.flag, s.path, exc) from None
            except (files.OutputError, ValueError) as exc:
                raise files.OutputError(f"{s.flag} {s.path}: {exc}; nothing was written") from None

    def _rename_all(self) -> list[Path]:
        """Every staged file to its place; on failure the ones done are undone. Returns the old
        files kept aside, to delete."""
        done: list[tuple[Path, Path | None]] = []  # (path, what it replaced, kept aside, or None)
        trash: list[Path] = []
        try:
            for s in self._staged:
                old = None
                try:
                    if os.path.lexists(s.path) and s.path.is_dir() == s.folder:
                        old, hidden = _aside(s.path)
                        trash.append(hidden)
                    os.replace(s.tmp, s.path)
                except OSError as exc:
                    if old is not None:
                        os.replace(old, s.path)
                    raise files.os_error(s.flag, s.path, exc) from None
                done.append((s.path, old))
            for folder in {s.path.parent for s in self._staged}:
                files.fsync_folder(folder)
        except BaseException:
            for path, old in reversed(done):  # undo: the new ones gone, the old ones back
                _remove(path)
                if old is not None:
                    os.replace(old, path)
            for hidden in trash:
                _remove(hidden)  # emptied by the undo (a folder's hidden parent is left)
            raise
        return trash

    def discard(self) -> None:
        """Remove every temporary (and the folders the group created): nothing was written."""
        for s in self._staged:
            _remove(s.tmp)
        files.remove_folders(sorted(set(self._created), key=lambda p: len(p.parts), reverse=True))
        self._staged, self._created = [], []

    def __enter__(self) -> OutputGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()  # after `commit` there is nothing left to remove


@dataclass(frozen=True)
class _Staged:
    flag: str
    tmp: Path
    path: Path
    check: files.Check | None
    folder: bool


def _fsync(path: Path) -> None:
    if path.is_dir():
        files.fsync_folder(path)  # its files are the writer's to flush
    else:
        files.fsync_file(path)


def _aside(path: Path) -> tuple[Path, Path]:
    """Move what is at `path` (a file, or a folder being replaced) to a hidden name beside it;
    returns where it went and what to delete once the commit is done."""
    if path.is_dir():
        hidden = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.replace(path, hidden / path.name)
        return hidden / path.name, hidden
    old = files.temp_path(path)
    os.replace(path, old)
    return old, old


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)
