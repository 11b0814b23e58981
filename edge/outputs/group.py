"""`OutputGroup`: the files of one output, checked before work and renamed into place together.

The single-file policy (checks before work, temporary name, verified, renamed) is edge.outputs.files;
this applies it to several files that only make sense together, all or none.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from edge.outputs import files


class OutputGroup:
    """Files that are one output (export variants, eval metrics with their plots): every target
    checked before work starts (`check_outputs`: no folder in the way, a parent that takes new
    files, no path twice, none an input), each written under a temporary name (`write_atomic`, as
    the module-level one), and all renamed into place together by `commit`, or none of them.

    `commit` checks every staged file before it renames any; a rename that still fails puts back
    what it had replaced and removes what it had added. Leaving the `with` block on an error (or
    an interrupt) before `commit` removes the temporaries: nothing new appears, nothing old is
    overwritten. Folders the group had to create are removed too.
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
        self._staged: list[
            tuple[str, Path, Path, files.Check | None]
        ] = []  # flag, tmp, path, check
        self._created: list[Path] = []

    def add(self, flag: str, path: Path | str) -> None:
        """One more target found during the work (a plot per class): checked like the others."""
        path = Path(os.path.abspath(path))
        if path in self.flags:
            raise files.OutputError(f"{flag} {path}: named twice in one output")
        files.check_target(flag, path, parents=True)
        self.flags[path] = flag

    def stage(self, path: Path | str, flag: str, check: files.Check | None = None) -> Path:
        """A temporary name beside `path` to write its content to; renamed there by `commit`."""
        key = Path(os.path.abspath(path))
        if key not in self.flags:
            self.add(flag, key)
        if any(p == key for _, _, p, _ in self._staged):
            raise files.OutputError(f"{flag} {path}: written twice in one output")
        self._created += files.make_folders(key.parent)
        try:
            tmp = files.temp_path(key)
        except OSError as exc:
            raise files.os_error(flag, path, exc) from None
        self._staged.append((flag, tmp, key, check))
        return tmp

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
        """Check every staged file, then rename them all into place (or none); returns the paths."""
        for flag, tmp, path, check in self._staged:
            try:
                files.fsync_file(tmp)
                if check is not None:
                    check(tmp)
            except OSError as exc:
                raise files.os_error(flag, path, exc) from None
            except (files.OutputError, ValueError) as exc:
                raise files.OutputError(f"{flag} {path}: {exc}; nothing was written") from None
        done: list[tuple[Path, Path | None]] = []  # (path, the old file kept aside, or None)
        try:
            for flag, tmp, path, _ in self._staged:
                try:
                    old = None
                    if os.path.lexists(path) and not path.is_dir():  # kept aside, for an undo
                        old = files.temp_path(path)
                        os.replace(path, old)
                    done.append((path, old))
                    os.replace(tmp, path)
                except OSError as exc:
                    raise files.os_error(flag, path, exc) from None
            for folder in {p.parent for _, _, p, _ in self._staged}:
                files.fsync_folder(folder)
        except BaseException:
            for path, old in reversed(done):  # undo: the old files back, the new ones gone
                if old is not None:
                    os.replace(old, path)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
            raise
        finally:
            for _, tmp, _, _ in self._staged:
                files.discard(tmp)
        for _, old in done:
            files.discard(old)
        paths = [path for _, _, path, _ in self._staged]
        files.mark_written(paths)
        self._staged, self._created = [], []
        return paths

    def discard(self) -> None:
        """Remove every temporary (and the folders the group created): nothing was written."""
        for _, tmp, _, _ in self._staged:
            files.discard(tmp)
        files.remove_folders(sorted(set(self._created), key=lambda p: len(p.parts), reverse=True))
        self._staged, self._created = [], []

    def __enter__(self) -> OutputGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()  # after `commit` there is nothing left to remove
