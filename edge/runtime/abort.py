"""An abort that waits for what must be whole: `edge run` stops on the first Ctrl-C (or SIGTERM)
and finishes its frames and files; a second one aborts. An abort that lands while the loop's
threads are joined, a video's index is written or files are checked and renamed would leave a
thread writing into a closed file, a video without its index or a group half renamed: inside
`finishing()` blocks it waits for them, then goes on; a third signal aborts at once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)

_finishing = 0
_abort_pending = False
_lock = threading.Lock()  # between threads; the signal handler never takes it


@contextlib.contextmanager
def finishing() -> Iterator[None]:
    """Work that must end whole: an `abort()` meanwhile raises KeyboardInterrupt when the
    outermost such block ends."""
    global _finishing, _abort_pending
    with _lock:
        _finishing += 1
    try:
        yield
    finally:
        with _lock:
            _finishing -= 1
            go = _finishing == 0 and _abort_pending
            if go:
                _abort_pending = False
        if go:
            raise KeyboardInterrupt


def abort() -> None:
    """For a signal handler that aborts: KeyboardInterrupt now, or, while work is `finishing`,
    as soon as it is done (asked again meanwhile: now)."""
    global _abort_pending
    if _finishing and not _abort_pending:
        _abort_pending = True
        log.warning("finishing the output files first; again to abort now")
        return
    raise KeyboardInterrupt


class FinishingStack(contextlib.ExitStack):
    """An ExitStack whose exits (outputs closing, files renamed into place) run inside
    `finishing()`: an abort that lands between two of them waits until all have run."""

    def __exit__(self, *exc: object) -> bool:
        with finishing():
            return super().__exit__(*exc)  # type: ignore[arg-type]
