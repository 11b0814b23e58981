"""Threads of the loop (reader, finisher) whose exceptions reach the loop instead of being lost."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Workers:
    """Threads whose exceptions are handed to the loop instead of being lost."""

    threads: list[threading.Thread] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def spawn(self, name: str, target: object) -> threading.Thread:
        def run() -> None:
            try:
                target()  # type: ignore[operator]
            except BaseException as exc:
                self.errors.append(exc)

        t = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(t)
        t.start()
        return t

    def raise_first(self) -> None:
        if self.errors:
            raise self.errors[0]
